"""A small Phoenix-speaking aiohttp server for the load tester's tests, on 127.0.0.1 only.

It answers heartbeats, joins (`{user_id}` taken from the `token` connect param), and:
- `echo:*`: any event is replied `{status:"ok", response:<payload>}` (binary as a kind-1 reply);
  `broadcast` also broadcasts the payload to the topic;
- `room:*`: `new_msg` is broadcast and replied ok; `offer`/`answer`/`ice-candidate` with a `to`
  are pushed to that user only (with `from` added) and replied ok.
Replies are sent after `delay` seconds, so a test can check the measured latency. With
`room_replies=False` room events are relayed but never replied, like the usual Phoenix app
whose handlers `broadcast_from!` and return `{:noreply, socket}`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from gateway.protocol.jsonenc import encode
from gateway.protocol.serializers import V2, select_serializer

SIGNALS = ("offer", "answer", "ice-candidate")


class Conn:
    def __init__(self, ws: web.WebSocketResponse, serializer: Any, user_id: str) -> None:
        self.ws = ws
        self.serializer = serializer
        self.user_id = user_id
        self.topics: dict[str, Any] = {}
        # One writer per connection keeps frames in order without a task per frame.
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()

    async def writer(self) -> None:
        while True:
            frame = await self.outbox.get()
            if self.ws.closed:
                return
            if frame.text:
                await self.ws.send_str(frame.data.decode())
            else:
                await self.ws.send_bytes(frame.data)


class PhoenixTestServer:
    def __init__(
        self,
        delay: float = 0.0,
        refuse_joins: bool = False,
        answer_heartbeats: bool = True,
        room_replies: bool = True,
    ) -> None:
        self.delay = delay
        self.room_replies = room_replies
        self.refuse_joins = refuse_joins
        self.answer_heartbeats = answer_heartbeats
        self.conns: list[Conn] = []
        self.subscribers: dict[str, set[Conn]] = {}
        self.users: dict[str, Conn] = {}
        self.frames_in = 0
        self.connects = 0
        self.params_seen: list[dict[str, str]] = []
        self.topics_joined: list[str] = []
        self.signals: list[tuple[str, str, str]] = []  # (event, from user, to user)
        self.arrivals: list[tuple[float, str, str]] = []  # (monotonic time, user, event)
        self._anon = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/socket"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/socket/websocket", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        # Close sockets first: runner cleanup would otherwise wait on clients that stay open.
        for conn in self.conns:
            if not conn.ws.closed:
                await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params = {k: v for k, v in request.query.items()}
        serializer = select_serializer(params.get("vsn"))
        if serializer is None:
            return web.Response(status=403)
        ws = web.WebSocketResponse(compress=False, max_msg_size=0)
        await ws.prepare(request)
        self.connects += 1
        self.params_seen.append(params)
        user_id = params.get("token") or f"anon-{next(self._anon)}"
        conn = Conn(ws, serializer, user_id)
        self.users[user_id] = conn
        self.conns.append(conn)
        writer = asyncio.create_task(conn.writer())
        try:
            async for msg in ws:
                self.frames_in += 1
                if msg.type == WSMsgType.TEXT:
                    self._dispatch(conn, serializer.decode_text(msg.data))
                elif msg.type == WSMsgType.BINARY:
                    self._dispatch(conn, serializer.decode_binary(msg.data))
        finally:
            writer.cancel()
            for topic in conn.topics:
                self.subscribers.get(topic, set()).discard(conn)
            if self.users.get(user_id) is conn:
                del self.users[user_id]
        return ws

    def _later(self, conn: Conn, data: Any) -> None:
        if self.delay > 0:
            asyncio.get_running_loop().call_later(self.delay, self._send, conn, data)
        else:
            self._send(conn, data)

    def _send(self, conn: Conn, frame: Any) -> None:
        if not conn.ws.closed:
            conn.outbox.put_nowait(frame)

    def _reply(self, conn: Conn, msg: Any, status: str, response: Any) -> None:
        jr = msg.join_ref if conn.serializer is V2 else None
        self._later(conn, conn.serializer.reply(jr, msg.ref, msg.topic, status, response))

    def _dispatch(self, conn: Conn, msg: Any) -> None:
        self.arrivals.append((time.monotonic(), conn.user_id, msg.event))
        if msg.topic == "phoenix" and msg.event == "heartbeat":
            if not self.answer_heartbeats:
                return
            self._send(conn, conn.serializer.reply(None, msg.ref, "phoenix", "ok", {}))
            return
        if msg.event == "phx_join":
            if self.refuse_joins:
                self._reply(conn, msg, "error", {"reason": "unauthorized"})
                return
            conn.topics[msg.topic] = msg.join_ref
            self.subscribers.setdefault(msg.topic, set()).add(conn)
            self.topics_joined.append(msg.topic)
            self._reply(conn, msg, "ok", {"user_id": conn.user_id})
            return
        if msg.event == "phx_leave":
            conn.topics.pop(msg.topic, None)
            self.subscribers.get(msg.topic, set()).discard(conn)
            self._reply(conn, msg, "ok", {})
            return
        if msg.topic not in conn.topics:
            self._send(
                conn,
                conn.serializer.reply(
                    None, msg.ref, msg.topic, "error", {"reason": "unmatched topic"}
                ),
            )
            return
        payload = msg.payload
        if msg.topic.startswith("echo:"):
            self._reply(conn, msg, "ok", payload)
            if msg.event == "broadcast":
                self._broadcast(msg.topic, "broadcast", payload)
            return
        if msg.event in SIGNALS:
            body = msgspec.json.decode(payload)
            self.signals.append((msg.event, conn.user_id, str(body.get("to"))))
            target = self.users.get(str(body.get("to")))
            if target is not None:
                body["from"] = conn.user_id
                frame = target.serializer.push(
                    target.topics.get(msg.topic), msg.topic, msg.event, msgspec.Raw(encode(body))
                )
                self._later(target, frame)
            if self.room_replies:
                self._reply(conn, msg, "ok", {})
            return
        self._broadcast(msg.topic, msg.event, payload)
        if self.room_replies:
            self._reply(conn, msg, "ok", {})

    def _broadcast(self, topic: str, event: str, payload: Any) -> None:
        frames: dict[int, Any] = {}
        for sub in list(self.subscribers.get(topic, ())):
            key = id(sub.serializer)
            if key not in frames:
                frames[key] = sub.serializer.broadcast(topic, event, payload)
            self._later(sub, frames[key])
