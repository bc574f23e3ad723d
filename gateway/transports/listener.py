"""The listening socket's protocol: WebSocket upgrades served here, every other request by aiohttp.

A socket's upgrade through aiohttp makes a request object, a handler task, a response and a
writer, and keeps the task waiting for the socket's end; that is half of what a connect, join,
leave and close costs. Every accepted connection starts here instead. A request that begins
`GET <socket path>?` or `GET <socket path> ` (what every Phoenix client sends) is parsed by
aiohttp's C HTTP parser, checked as aiohttp's handshake checks it, connected (`connect_socket`),
answered `101` and read by the same frame parser (`ClientFrameReader`) as before, with no task or
response object per socket. Anything else (another path or method, a handshake aiohttp would
refuse, a head the parser rejects) is handed over, with the bytes read so far, to aiohttp's
request handler, which serves it as the app's routes say: the WebSocket route
(`websocket_handler`) included, so a refusal reads the same whichever path took the request.

The close handshake is aiohttp's too: a client's close frame is answered with 1000 and the
connection closed; a server's close waits up to `CLOSE_TIMEOUT_S` for the client's answer; a
protocol error (1002, 1007, 1009) is answered with its code and the connection closed.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import http
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import structlog
from aiohttp import WSMsgType
from aiohttp._websocket.models import WebSocketError
from aiohttp._websocket.reader import WebSocketDataQueue
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import HttpRequestParser  # the C parser, as aiohttp's handler's
from aiohttp.streams import EMPTY_PAYLOAD

from gateway.errors import CLOSE_INTERNAL
from gateway.observability import events, metrics
from gateway.transports.connect import (
    ConnectRefused,
    RequestHead,
    connect_socket,
    split_subprotocols,
)
from gateway.transports.peer import peer_address
from gateway.transports.websocket import WebSocketMount, WebSocketSink, open_socket
from gateway.transports.ws_reader import ClientFrameReader, OnMessage

if TYPE_CHECKING:
    from gateway.runtime.connection import Connection

log = structlog.get_logger("gateway.websocket")

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_VERSIONS: Final = frozenset({"13", "8", "7"})  # what aiohttp's handshake takes
CLOSE_TIMEOUT_S: Final = 5.0  # as the WebSocket route's responses (`websocket_handler`)
_HEAD_LIMIT: Final = 1 << 16  # the parser's limit for a body's buffered bytes (no body here)
# A head is kept whole until it is decided (for a hand-over); one longer than this is handed
# over at once, so a head sent a byte at a time cannot make the copies add up.
_HEAD_KEPT: Final = 16 * 1024
CLOSE = WSMsgType.CLOSE
_DATA = frozenset({WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING})  # the sink's (a ping: pong)

# aiohttp's handler for a connection handed over: (its admitted address, its header deadline).
MakeHandler = Callable[[str | None, float | None], asyncio.Protocol]


class Guard(Protocol):
    """The TCP caps (`tcp_guard.TcpGuard`)."""

    header_timeout_s: float

    def admit(self, address: str) -> str | None: ...
    def release(self, address: str) -> None: ...
    def timed_out(self, address: str) -> None: ...


def close_frame(code: int, reason: bytes = b"") -> bytes:
    """A server's close frame (RFC 6455 section 5.5.1); control frames carry at most 125 bytes."""
    body = code.to_bytes(2, "big") + reason[:123]
    return bytes((0x88, len(body))) + body


_PHRASES: Final = {status.value: status.phrase for status in http.HTTPStatus}


def _response(status: int, headers: str = "") -> bytes:
    """A response head with aiohttp's headers, so both paths answer alike."""
    phrase = _PHRASES[status]
    return (
        f"HTTP/1.1 {status} {phrase}\r\n{headers}"
        f"Date: {rfc822_formatted_time()}\r\nServer: {SERVER_SOFTWARE}\r\n\r\n"
    ).encode()


class Listener:
    """What every connection of one listening socket shares."""

    __slots__ = ("_prefixes", "guard", "handler", "loop", "mount", "upgraded")

    def __init__(
        self,
        guard: Guard,
        handler: MakeHandler,
        mount: WebSocketMount,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.guard = guard
        self.handler = handler  # aiohttp's handler for a connection handed over
        self.mount = mount
        self.loop = loop
        path = mount.path.encode()
        self._prefixes = (b"GET " + path + b"?", b"GET " + path + b" ")
        self.upgraded: set[SocketProtocol] = set()  # open sockets, closed when the site stops

    def verdict(self, data: bytes) -> bool | None:
        """Whether a connection whose first bytes are `data` asks for a socket: None while
        they are too few to tell."""
        if data.startswith(self._prefixes):
            return True
        if any(prefix.startswith(data) for prefix in self._prefixes):
            return None
        return False

    def close_all(self) -> None:
        for socket in list(self.upgraded):
            socket.abort()


class SocketQueue(WebSocketDataQueue):  # type: ignore[misc]
    """Where the frame parser puts what it reads: data to the sink, the rest to the socket,
    nothing queued."""

    __slots__ = ("on_message", "socket")

    def __init__(
        self, socket: SocketProtocol, on_message: OnMessage, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(cast(Any, socket), 0, loop=loop)
        self.socket = socket
        self.on_message = on_message

    def feed_data(self, data: Any, size: int) -> None:
        if data[0] in _DATA:
            self.on_message(data)
        else:
            self.socket.on_control(data)

    def set_exception(self, exc: BaseException, exc_cause: BaseException | None = None) -> None:
        self.socket.on_error(exc)

    def feed_eof(self) -> None:
        pass  # the end of the connection is `connection_lost`'s


class SocketProtocol(asyncio.Protocol):
    """One accepted connection: its request head, then either a socket or aiohttp's handler."""

    __slots__ = (
        "_address",
        "_close_timer",
        "_conn",
        "_deadline",
        "_head",
        "_listener",
        "_parser",
        "_reader",
        "_sink",
        "_transport",
    )

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._transport: asyncio.Transport | None = None
        self._address: str | None = None  # counted by the guard while this owns the connection
        self._deadline: asyncio.TimerHandle | None = None
        self._head = b""  # what was read before the head was complete
        self._parser: Any = None
        self._reader: ClientFrameReader | None = None
        self._sink: WebSocketSink | None = None
        self._conn: Connection | None = None
        self._close_timer: asyncio.TimerHandle | None = None  # set once the close frame is sent

    # -- before the upgrade --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport = transport
        address = peer_address(transport)
        guard = self._listener.guard
        if guard.admit(address) is not None:
            transport.abort()  # a reset: the client retries later
            return
        self._address = address
        self._deadline = self._listener.loop.call_later(guard.header_timeout_s, self._head_late)

    def _head_late(self) -> None:
        self._deadline = None
        transport = self._transport
        if self._address is not None and transport is not None:
            self._listener.guard.timed_out(self._address)
            transport.abort()

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is not None:
            reader.feed_data(data)  # a failure reaches `on_error` through the queue
            return
        if self._address is None:
            return  # refused, or already answered
        head = self._head + data if self._head else data
        if len(head) > _HEAD_KEPT:
            self._hand_over(head)  # an unusual head: aiohttp's parser, which keeps none
            return
        parser = self._parser
        if parser is None:
            verdict = self._listener.verdict(head)
            if verdict is None:
                self._head = head
                return
            if not verdict:
                self._hand_over(head)
                return
            parser = self._parser = HttpRequestParser(
                cast(Any, self), self._listener.loop, _HEAD_LIMIT
            )
            data = head
        try:
            messages, _, tail = parser.feed_data(data)
        except HttpProcessingError:
            self._hand_over(head)  # aiohttp answers it (400, 431...)
            return
        if not messages:
            self._head = head
            return
        message, payload = messages[0]
        if len(messages) > 1 or payload is not EMPTY_PAYLOAD or not self._upgrade(message, tail):
            self._hand_over(head)

    def _hand_over(self, data: bytes) -> None:
        """aiohttp's request handler takes the connection, with `data` as its first read."""
        transport = self._transport
        assert transport is not None
        deadline = self._deadline
        by = None
        if deadline is not None:
            by = deadline.when()
            deadline.cancel()
            self._deadline = None
        handler = self._listener.handler(self._address, by)
        self._address = None  # the handler releases it
        self._parser = None
        self._head = b""
        transport.set_protocol(handler)
        handler.connection_made(transport)
        handler.data_received(data)

    def _upgrade(self, message: Any, tail: bytes) -> bool:
        """Serve `message`, a request for the socket path; False (nothing done) if aiohttp's
        handshake would refuse it, or if it is a form this does not take."""
        headers = message.headers
        if not message.upgrade or headers.get("Upgrade", "").lower().strip() != "websocket":
            return False
        if headers.get("Sec-WebSocket-Version", "") not in _VERSIONS:
            return False
        key = headers.get("Sec-WebSocket-Key")
        try:
            if not key or len(binascii.a2b_base64(key)) != 16:  # what base64.b64decode does
                return False
        except ValueError:  # not base64 (binascii.Error), or not ASCII: aiohttp's to answer
            return False
        host = headers.get("Host")
        if host is None:
            return False  # aiohttp falls back to the socket's name: let it
        transport = self._transport
        address = self._address
        assert transport is not None and address is not None
        # From here on the request is this connection's: it is answered here.
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._parser = None
        self._head = b""
        parts = self._listener.mount.parts
        auth_token, offered = split_subprotocols(headers.get("Sec-WebSocket-Protocol"))
        scheme = "https" if transport.get_extra_info("sslcontext") is not None else "http"
        request = RequestHead(address, headers, message.url.raw_query_string, scheme, host)
        try:
            info, serializer = connect_socket(parts, request, auth_token, "websocket")
        except ConnectRefused as refusal:
            metrics.count_connect("websocket", refusal.result)
            self._refuse(refusal.status)
            return True
        except Exception:
            # A bug (an authenticator that raises, say): a 500 for this request, as aiohttp's
            # handler would answer, and nothing else touched.
            log.exception(events.SOCKET_CONNECT_FAILED, peer=address)
            self._refuse(500)
            return True
        if offered and "phoenix" not in offered:
            log.info("socket_refused", reason="subprotocols", offered=offered)
            metrics.count_connect("websocket", "vsn")
            self._refuse(403)
            return True
        digest = hashlib.sha1(key.encode() + _GUID).digest()
        accept = binascii.b2a_base64(digest, newline=False).decode()
        protocol = "Sec-WebSocket-Protocol: phoenix\r\n" if offered else ""
        transport.write(
            _response(
                101,
                "Upgrade: websocket\r\nConnection: upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n{protocol}",
            )
        )
        metrics.count_connect("websocket", "ok")
        loop = self._listener.loop
        sink = self._sink = WebSocketSink(
            self._close, transport, parts.limits.outbound_limit_bytes, parts.outbound
        )
        reader = ClientFrameReader(
            SocketQueue(self, sink.on_message, loop),
            parts.limits.max_frame_bytes,
            compress=False,
            decode_text=True,
        )
        self._reader = reader
        self._listener.upgraded.add(self)
        self._conn = open_socket(parts, sink, info, serializer)
        if tail:
            reader.feed_data(tail)
        return True

    def _refuse(self, status: int) -> None:
        """Answer with `status` and an empty body, then close: aiohttp reads nothing more of a
        connection once it asked for an upgrade, whatever the answer."""
        transport = self._transport
        assert transport is not None
        transport.write(_response(status, "Content-Length: 0\r\n"))
        transport.close()

    # -- after the upgrade ---------------------------------------------------------------------
    def on_control(self, msg: Any) -> None:
        if msg[0] is CLOSE:
            # The client's close: answered with 1000 (after what this read was answered), and
            # the connection ends.
            self._close(1000, b"")
            self._end()
        # PONG: nothing to do (the gateway sends no pings)

    def on_error(self, exc: BaseException) -> None:
        """The frame parser failed: a protocol error (1002), bad UTF-8 (1007) or a message too
        big (1009) is answered with its code, anything else with 1011; then the end."""
        code = exc.code if isinstance(exc, WebSocketError) else CLOSE_INTERNAL
        self._close(code, b"")
        self._end()

    def _close(self, code: int, reason: bytes) -> None:
        """Send the close frame (once), after whatever this socket holds; the connection ends
        when the client answers, or after `CLOSE_TIMEOUT_S`. The sink's way to close."""
        transport = self._transport
        if self._close_timer is not None or transport is None or transport.is_closing():
            return
        sink = self._sink
        if sink is not None:
            sink.uncork()
        transport.write(close_frame(code, reason))
        self._close_timer = self._listener.loop.call_later(CLOSE_TIMEOUT_S, transport.close)

    def _end(self) -> None:
        transport = self._transport
        if transport is not None:
            transport.close()
        conn = self._conn
        if conn is not None:
            conn.shutdown("closed")

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        listener = self._listener
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._address is not None:
            listener.guard.release(self._address)
            self._address = None
        conn = self._conn
        if conn is not None:
            listener.upgraded.discard(self)
            listener.mount.parts.idle.unwatch(conn)
            conn.shutdown("closed")
            sink = self._sink
            if sink is not None:
                if sink._session is not None:
                    sink._session.close()
                sink.ended()
        # What refers back to this protocol (the sink's close, the parser's queue) is let go.
        self._transport = None
        self._reader = None
        self._sink = None
        self._conn = None
