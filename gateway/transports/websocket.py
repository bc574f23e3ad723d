"""`/socket/websocket`: the upgrade checks, then frames in and out of one `Connection`.

Order of checks before the upgrade follows Phoenix (docs/wire.md, "Endpoints and handshake"): method, origin,
auth token from `Sec-WebSocket-Protocol`, subprotocols, vsn and connect; a refusal is an HTTP
status with an empty body. After the upgrade nothing is sent until the client speaks.

The listener (`listener.py`) serves the usual upgrade itself with the pieces here
(`connect_socket`, `WebSocketSink`, `open_socket`); the aiohttp route below serves the requests
it hands over (another method, an absolute target, a handshake aiohttp refuses), and apps run
on a plain aiohttp site.
"""

from __future__ import annotations

import asyncio
import functools
import struct
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import structlog
from aiohttp import WSMsgType, web

from gateway.channels.context import SocketInfo
from gateway.errors import CLOSE_INTERNAL, CLOSE_TRY_AGAIN
from gateway.observability import metrics
from gateway.observability.tally import WS_BYTES_IN, WS_BYTES_OUT
from gateway.protocol.messages import Frame
from gateway.protocol.serializers import Serializer
from gateway.recording import SessionRecorder
from gateway.runtime.connection import Connection
from gateway.transports.connect import (
    ConnectRefused,
    connect_socket,
    request_head,
    split_subprotocols,
)
from gateway.transports.outbound_budget import DEBTOR_BYTES, OutboundBudget
from gateway.transports.recording import RecordingSink
from gateway.transports.ws_reader import DirectWebSocketResponse

if TYPE_CHECKING:
    from gateway.transports.parts import TransportParts

log = structlog.get_logger("gateway.websocket")

TEXT, BINARY, PING = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING
# Sends the close frame (code, reason) and ends the socket; a task if the caller must await it.
CloseWith = Callable[[int, bytes], "asyncio.Task[bool] | None"]
_DATA = frozenset({WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG})


_HEAD2 = struct.Struct("!BB").pack  # first byte, length under 126
_HEAD4 = struct.Struct("!BBH").pack  # first byte, 126, a 16-bit length


def ws_frame(frame: Frame) -> bytes:
    """The unmasked server-to-client WebSocket framing of a frame (RFC 6455 section 5.2)."""
    data = frame.data
    first = 0x81 if frame.text else 0x82
    n = len(data)
    if n < 126:
        return _HEAD2(first, n) + data
    if n < 65536:
        return _HEAD4(first, 126, n) + data
    return bytes((first, 127)) + n.to_bytes(8, "big") + data


class WebSocketSink:
    """Writes frames to the transport at the end of the loop step that sent them; the
    transport buffer is the outbound queue.

    A send holds the framed bytes (a broadcast hands the same bytes to every subscriber,
    without a task per write), and `flush_held` writes each socket's frames in one write when
    the step ends: the reply to a push and the signal its peer sent in the same step, or a
    join's reply and its presence_state, cost the kernel one write. The busier the loop, the
    more each step reads and the more writes this saves. A client whose unsent bytes pass the
    limit is a slow consumer: it is closed with 1013 instead of being allowed to grow memory.
    """

    transport = "websocket"
    __slots__ = (
        "_budget",
        "_close_with",
        "_closed",
        "_conn",
        "_limit",
        "_pending",
        "_session",
        "_transport",
        "_watch",
        "closing",
    )

    def __init__(
        self,
        close_with: CloseWith,
        transport: asyncio.Transport,
        limit: int,
        budget: OutboundBudget,
    ):
        self._close_with = close_with
        self._transport = transport
        self._limit = limit
        self._budget = budget
        self._watch = min(limit, DEBTOR_BYTES)  # past this, a write looks at limit and budget
        self._closed = False
        self._conn: Connection | None = None
        self._session: SessionRecorder | None = None  # the socket's recording, if recorded
        # What the loop step sent: one frame as it is, several as a list.
        self._pending: bytes | list[bytes] | None = None
        self.closing: asyncio.Task[bool] | None = None  # the close handshake, when it is a task

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, frame: Frame) -> None:
        if self._closed:
            return
        data = frame.ws
        if data is None:
            body = frame.data
            n = len(body)
            if n < 65536 and frame.text:  # `ws_frame`'s common cases, without the call
                data = (_HEAD2(0x81, n) if n < 126 else _HEAD4(0x81, 126, n)) + body
            else:
                data = ws_frame(frame)
            frame.ws = data
        pending = self._pending
        if pending is None:
            self._pending = data
            _held.append(self)
            if len(_held) == 1:
                asyncio.get_running_loop().call_soon(flush_held)
        elif isinstance(pending, list):
            pending.append(data)
        else:
            self._pending = [pending, data]

    def on_message(self, msg: Any) -> None:
        """A data frame of this socket, called by the parser as it reads it (a method of the
        sink rather than a closure: nothing more kept per socket)."""
        conn = self._conn
        if conn is None or conn.closed:
            return
        conn.last_seen = monotonic()
        kind, data = msg[0], msg[1]
        session = self._session
        try:
            if kind is TEXT:
                WS_BYTES_IN.value += len(data)
                if session is not None:
                    session.frame("in", data.encode(), True)
                conn.receive_text(data)
            elif kind is BINARY:
                WS_BYTES_IN.value += len(data)
                if session is not None:
                    session.frame("in", data, False)
                conn.receive_binary(data)
            elif kind is PING:
                self.pong(data)
        except Exception:
            # A bug must not escape into the parser: this socket ends, the others go on.
            log.exception("frame_handling_failed", conn_id=conn.id)
            conn.close(CLOSE_INTERNAL, "internal error")

    def uncork(self) -> None:
        """Write what this socket holds (at the step's end, or before a close frame)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if self._closed:
            return
        transport = self._transport
        if transport.is_closing():
            return
        data = b"".join(pending) if isinstance(pending, list) else pending
        transport.write(data)
        WS_BYTES_OUT.value += len(data)
        if transport.get_write_buffer_size() > self._watch:
            self._owes()

    def ended(self) -> None:
        """The connection is over: drop the reference back to it (a cycle otherwise)."""
        self._closed = True
        self._conn = None

    def _owes(self) -> None:
        if self._transport.get_write_buffer_size() > self._limit:
            metrics.SLOW_CONSUMER_DISCONNECTS.inc()
            self.cut("outbound limit")
        else:
            self._budget.note(self)

    def owed(self) -> int:
        """Bytes written but not yet taken by the kernel."""
        return self._transport.get_write_buffer_size()

    def cut(self, reason: str) -> None:
        """Close as a slow consumer (1013): the client reconnects and rejoins."""
        if self._closed:
            return
        transport = self._transport
        log.warning(
            "slow_consumer_disconnected",
            conn_id=self._conn.id if self._conn else None,
            reason=reason,
            owed=transport.get_write_buffer_size(),
        )
        if self._conn is not None:
            self._conn.close(CLOSE_TRY_AGAIN, "slow consumer")
        else:
            self.close(CLOSE_TRY_AGAIN, "slow consumer")
        # The close frame sits behind the backlog; do not wait for a reader who is not reading.
        asyncio.get_running_loop().call_later(1.0, transport.abort)

    def pong(self, data: bytes) -> None:
        """Answer a ping (control frames carry at most 125 bytes, RFC 6455 section 5.5)."""
        transport = self._transport
        if not self._closed and not transport.is_closing():
            transport.write(bytes((0x8A, len(data))) + data)

    def close(self, code: int, reason: str = "") -> None:
        if self._closed:
            return
        self.uncork()  # what was answered before the close goes out before it
        self._closed = True
        self.closing = self._close_with(code, reason.encode())


_held: list[WebSocketSink] = []  # sinks holding frames until the loop step ends


def flush_held() -> None:
    """Write what every socket was sent since the loop step began (scheduled by `send`)."""
    if not _held:
        return
    held = _held[:]
    _held.clear()
    for sink in held:
        try:
            sink.uncork()
        except Exception:
            # A bug must not leave the other sockets unwritten: this one ends, they go on.
            conn = sink._conn
            log.exception("socket_write_failed", conn_id=conn.id if conn else None)
            sink._transport.abort()


class WebSocketMount(NamedTuple):
    path: str  # `{socket_path}/websocket`
    parts: TransportParts


# Where the app serves sockets: the listener (`listener.py`) serves their upgrades itself.
WEBSOCKET_MOUNT: Final = web.AppKey("websocket_mount", WebSocketMount)


def add_websocket(app: web.Application, parts: TransportParts, path: str) -> None:
    """Mount the WebSocket transport at `path` (`{socket_path}/websocket`)."""

    # A partial rather than a wrapper coroutine: no extra frame kept per open socket.
    app.router.add_route("*", path, functools.partial(websocket_handler, parts=parts))
    app[WEBSOCKET_MOUNT] = WebSocketMount(path, parts)


def open_socket(
    parts: TransportParts, sink: WebSocketSink, info: SocketInfo, serializer: Serializer
) -> Connection:
    """The `Connection` of an upgraded socket, opened, recorded if the recorder picks it, and
    watched for idleness; whoever owns the socket undoes that at its end (unwatch, `shutdown`,
    the recording's close)."""
    recorder = parts.recorder
    session = (
        recorder.maybe_start(info.conn_id, info.params, serializer.vsn)
        if recorder is not None
        else None
    )
    conn = Connection(
        parts.connection,
        sink if session is None else RecordingSink(sink, session),
        serializer,
        info,
    )
    sink._conn = conn
    sink._session = session
    conn.opened()
    parts.idle.watch(conn)
    return conn


def _close_task(ws: web.WebSocketResponse, code: int, message: bytes) -> asyncio.Task[bool]:
    return asyncio.get_running_loop().create_task(ws.close(code=code, message=message))


async def websocket_handler(request: web.Request, parts: TransportParts) -> web.StreamResponse:
    limits = parts.limits
    if request.method != "GET":
        return web.Response(status=400)
    header = request.headers.get("Sec-WebSocket-Protocol")
    auth_token, offered = split_subprotocols(header)
    try:
        conn_info, serializer = connect_socket(
            parts, request_head(request), auth_token, "websocket"
        )
    except ConnectRefused as refusal:
        metrics.count_connect("websocket", refusal.result)
        return web.Response(status=refusal.status)
    if offered and "phoenix" not in offered:
        log.info("socket_refused", reason="subprotocols", offered=offered)
        metrics.count_connect("websocket", "vsn")
        return web.Response(status=403)
    ws = DirectWebSocketResponse(
        protocols=("phoenix",) if offered else (),
        compress=False,
        max_msg_size=limits.max_frame_bytes,
        autoping=False,
        timeout=5.0,
    )
    try:
        await ws.prepare(request)  # the handshake is checked before anything is written
    except web.HTTPException:
        return web.Response(
            status=400,
            text="'connection' header must contain 'upgrade' and 'upgrade' must be 'websocket'",
        )
    metrics.count_connect("websocket", "ok")
    transport = request.transport
    assert transport is not None
    sink = WebSocketSink(
        functools.partial(_close_task, ws),
        transport,  # type: ignore[arg-type]
        limits.outbound_limit_bytes,
        parts.outbound,
    )
    conn = open_socket(parts, sink, conn_info, serializer)
    session = sink._session
    # Data frames reach the connection through `on_message`, called by the parser as it reads
    # them; this task only waits for the end (a close frame, an error, end of stream, or our
    # own close). Inline rather than a helper coroutine: one frame less per connection.
    idle = parts.idle
    try:
        ws.attach(sink.on_message, sink)
        while not conn.closed:
            msg = await ws.receive()
            if msg.type in _DATA:
                sink.on_message(msg)  # not reached: data goes through on_message
                continue
            break
    finally:
        idle.unwatch(conn)
        conn.shutdown("closed")
        try:
            if sink.closing is not None:
                await sink.closing
            elif not ws.closed:
                await ws.close()  # writes what the sink holds first
        finally:
            if session is not None:
                session.close()
    return ws
