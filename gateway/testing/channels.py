"""Channel tests without sockets, like Phoenix's `ChannelTest`.

`ChannelTest` builds a node's real services (the real `Connection`, `ChannelProcess`, router,
pub/sub and room stores) and connects clients whose transport is a `RecordingSink`: frames
go in as the client would send them and come out as decoded lists, with nothing on the
network. The lifecycle rules under test are the runtime's own, so a channel tested here
behaves the same over WebSocket and long-poll. See docs/channels.md.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.channels.base import Channel
from gateway.channels.context import SocketInfo
from gateway.errors import CLOSE_GOING_AWAY
from gateway.protocol.messages import Frame
from gateway.protocol.serializers import select_serializer
from gateway.runtime.connection import Connection

if TYPE_CHECKING:
    from gateway.app import Node

Match = Callable[[list[Any]], bool]


class RecordingSink:
    """A transport that keeps every frame written to it, in order."""

    __slots__ = ("close_code", "close_reason", "frames", "transport")

    def __init__(self, transport: str = "websocket") -> None:
        # One of the transports the metrics know: what the channel sees as `socket.transport`.
        self.transport = transport
        self.frames: list[Frame] = []
        self.close_code: int | None = None
        self.close_reason = ""

    def send(self, frame: Frame) -> None:
        self.frames.append(frame)

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason

    @property
    def closed(self) -> bool:
        return self.close_code is not None


def decode_frame(frame: Frame) -> list[Any]:
    """A V2 frame as `[join_ref, ref, topic, event, payload]`; binary payloads stay bytes."""
    if frame.text:
        decoded: list[Any] = json.loads(frame.data)
        return decoded
    data = frame.data
    kind = data[0]
    if kind == 2:  # broadcast: kind, len(topic), len(event)
        lengths, start = [0, 0, data[1], data[2]], 3
    elif kind == 0:  # push: kind, len(join_ref), len(topic), len(event)
        lengths, start = [data[1], 0, data[2], data[3]], 4
    else:  # reply: kind, len(join_ref), len(ref), len(topic), len(status)
        lengths, start = [data[1], data[2], data[3], data[4]], 5
    fields: list[str | None] = []
    for length in lengths:
        fields.append(data[start : start + length].decode() if length else None)
        start += length
    join_ref, ref, topic, event = fields
    if kind == 1:
        return [join_ref, ref, topic, "phx_reply", {"status": event, "response": data[start:]}]
    return [join_ref, ref, topic, event, data[start:]]


class Client:
    """One socket of a `ChannelTest`: sends frames as phoenix.js would and reads the replies."""

    def __init__(self, test: ChannelTest, conn: Connection, sink: RecordingSink) -> None:
        self.test = test
        self.conn = conn
        self.sink = sink
        self.join_refs: dict[str, str] = {}
        self._refs = itertools.count(1)
        self._read = 0  # frames before this index were consumed by `next`

    @property
    def frames(self) -> list[list[Any]]:
        """Every frame this client received, decoded, oldest first."""
        return [decode_frame(f) for f in self.sink.frames]

    # -- sending ----------------------------------------------------------------------------
    def send(self, frame: list[Any]) -> None:
        """One V2 text frame, as given."""
        self.conn.receive_text(json.dumps(frame))

    def send_text(self, data: str) -> None:
        """Text exactly as a client could write it, malformed or not."""
        self.conn.receive_text(data)

    def join(self, topic: str, payload: Any = None) -> str:
        """Send `phx_join` with a fresh join_ref; returns its ref (also the join_ref)."""
        ref = self._ref()
        self.join_refs[topic] = ref
        self.send([ref, ref, topic, "phx_join", {} if payload is None else payload])
        return ref

    def push(self, topic: str, event: str, payload: Any = None) -> str:
        """A push on `topic` with its current join_ref; returns the push's ref."""
        ref = self._ref()
        body = {} if payload is None else payload
        self.send([self.join_refs.get(topic), ref, topic, event, body])
        return ref

    def push_binary(self, topic: str, event: str, payload: bytes) -> str:
        """A kind 0 binary push."""
        ref = self._ref()
        fields = [(self.join_refs.get(topic) or "").encode(), ref.encode()]
        fields += [topic.encode(), event.encode()]
        header = bytes([0, *(len(f) for f in fields)]) + b"".join(fields)
        self.conn.receive_binary(header + payload)
        return ref

    def leave(self, topic: str) -> str:
        return self.push(topic, "phx_leave")

    def disconnect(self) -> None:
        """The transport went away (no frame is sent, every channel's `terminate` runs)."""
        self.conn.close(CLOSE_GOING_AWAY, "test disconnect")

    def _ref(self) -> str:
        return str(next(self._refs))

    # -- reading ----------------------------------------------------------------------------
    async def reply(self, ref: str, timeout: float = 2.0) -> dict[str, Any]:
        """The `{status, response}` of the reply to `ref`."""
        frame = await self.wait_for(lambda f: f[3] == "phx_reply" and f[1] == ref, timeout)
        reply: dict[str, Any] = frame[4]
        return reply

    async def wait_for(self, match: Match, timeout: float = 2.0) -> list[Any]:
        """The first frame received so far or later that `match`es."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for frame in self.frames:
                if match(frame):
                    return frame
            if loop.time() > deadline:
                raise AssertionError(f"no matching frame in {self.frames!r}")
            await self.test.settle()

    async def next(self, timeout: float = 2.0) -> list[Any]:
        """The oldest frame `next` has not returned yet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.sink.frames) <= self._read:
            if loop.time() > deadline:
                raise AssertionError(f"no frame after {self.frames!r}")
            await self.test.settle()
        self._read += 1
        return decode_frame(self.sink.frames[self._read - 1])

    def events(self, topic: str | None = None) -> list[str]:
        """The event names received (replies as `phx_reply`), for order checks."""
        return [f[3] for f in self.frames if topic is None or f[2] == topic]


class ChannelTest:
    """One node's real parts and any number of clients connected without a network."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.clients: list[Client] = []

    @classmethod
    def build(cls, **settings: Any) -> ChannelTest:
        """The node `python -m gateway serve` would build with these settings (memory
        stores unless a `redis_url` is given); no `GATEWAY_*` environment is read."""
        from gateway.app import build_node  # the composition root, only when asked
        from gateway.config import load_settings

        return cls(build_node(load_settings({"port": 0, **settings}, environ={})))

    def route(self, pattern: str, channel: type[Channel], **options: Any) -> None:
        """Route `pattern` ("prefix*" or a topic) to `channel`, whose channels are built with
        `options` as keyword arguments; earlier routes win."""
        self.node.router.route(pattern, channel, **options)

    def connect(
        self,
        user_id: str = "user",
        *,
        authenticated: bool = True,
        params: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        vsn: str = "2.0.0",
        transport: str = "websocket",
    ) -> Client:
        """A connected socket, as the connect step would make it for this identity."""
        serializer = select_serializer(vsn)
        if serializer is None:
            raise ValueError(f"unsupported vsn {vsn!r}")
        conn_id = Connection.new_id(self.node.settings.node)
        info = SocketInfo(
            conn_id=conn_id,
            user_id=user_id,
            authenticated=authenticated,
            transport=transport,
            serializer_vsn=serializer.vsn,
            params=params or {},
            peer="127.0.0.1",
            claims=claims or {},
        )
        sink = RecordingSink(transport)
        conn = Connection(self.node.connection, sink, serializer, info)
        conn.opened()
        client = Client(self, conn, sink)
        self.clients.append(client)
        return client

    async def settle(self, rounds: int = 20) -> None:
        """Run the event loop until no channel is busy and no frame arrived for `rounds`
        turns in a row: what a channel does without timers or real I/O is done by then
        (the rooms' queued store writes included)."""
        quiet = 0
        seen = self._frame_count()
        for _ in range(10_000):
            await self.node.rooms.bookkeeper.flush()  # queued store writes are made too
            await asyncio.sleep(0)
            count = self._frame_count()
            busy = any(not p.idle for c in self.clients for p in c.conn.channels.values())
            quiet = 0 if busy or count != seen else quiet + 1
            seen = count
            if quiet >= rounds:
                return

    async def close(self) -> None:
        """Disconnect every client and let the channels' `terminate` run."""
        for client in self.clients:
            if not client.conn.closed:
                client.disconnect()
        await self.settle()

    def _frame_count(self) -> int:
        return sum(len(c.sink.frames) for c in self.clients)
