"""A WebSocket response whose data frames reach the connection straight from the parser.

aiohttp's `receive()` puts every parsed message in a queue and wakes the handler task through
a future, one loop round trip per message. Here the same C frame parser (aiohttp's
`WebSocketReader`) hands text and binary messages to a callback as it parses them, inside
`data_received`, so a push is decoded, routed and answered in the same loop step that read it.
Close frames, errors and end of stream still go through the queue, so aiohttp's own close
handshake and error handling (close codes 1002, 1007, 1009) stay as they are. Relies on
aiohttp's reader module; the version is pinned in constraints.txt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp._websocket.models import WebSocketError
from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
from aiohttp.helpers import DEFAULT_CHUNK_SIZE

OnMessage = Callable[[Any], None]
_DIRECT = frozenset({WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG})


class DirectQueue(WebSocketDataQueue):  # type: ignore[misc]
    """Data messages go to `on_message`; the rest queue up for `receive()` and `close()`."""

    __slots__ = ("early", "on_message")  # no instance dict: one of these per connection

    def __init__(self, protocol: Any, limit: int, *, loop: Any) -> None:
        super().__init__(protocol, limit, loop=loop)
        self.on_message: OnMessage | None = None
        self.early: list[Any] | None = None  # data messages parsed before `on_message` was set

    def feed_data(self, data: Any, size: int) -> None:
        if data[0] in _DIRECT:
            on_message = self.on_message
            if on_message is not None:
                on_message(data)
            elif self.early is None:
                self.early = [data]
            else:
                self.early.append(data)
            return
        super().feed_data(data, size)

    def attach(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        early, self.early = self.early, None
        for data in early or ():
            on_message(data)


class Holder(Protocol):
    def uncork(self) -> None: ...


class MaskCheck:
    """Follows frame boundaries across reads to see every client frame's MASK bit, which
    aiohttp's parser does not check (RFC 6455 section 5.1: a server must close on an unmasked
    client frame). Reads only the two to fourteen header bytes of each frame."""

    __slots__ = ("head", "skip")

    def __init__(self) -> None:
        self.skip = 0  # payload bytes of the current frame still to come
        self.head = b""  # a header cut by the end of the last read

    def masked(self, data: bytes) -> bool:
        n = len(data)
        skip = self.skip
        if skip >= n:
            self.skip = skip - n
            return True
        pos = skip
        if self.head:
            data = self.head + data[pos:]
            self.head = b""
            pos, n = 0, len(data)
        while pos < n:
            if n - pos < 2:
                self.head, self.skip = data[pos:], 0
                return True
            second = data[pos + 1]
            if second < 0x80:
                return False
            length = second & 0x7F
            if length < 126:
                pos += 6 + length  # 2 header bytes, 4 mask bytes, the payload
                continue
            header = 8 if length == 126 else 14
            if n - pos < header:
                self.head, self.skip = data[pos:], 0
                return True
            pos += header + int.from_bytes(data[pos + 2 : pos + header - 4], "big")
        self.skip = pos - n
        return True


_parse = WebSocketReader.feed_data
_ERROR = (True, b"")  # what aiohttp's parser returns once it has failed


class ClientFrameReader(WebSocketReader):  # type: ignore[misc]
    """aiohttp's frame parser, with unmasked client frames refused with 1002."""

    __slots__ = ("_masks", "_queue", "sink")

    def __init__(self, queue: Any, max_msg_size: int, *, compress: bool, decode_text: bool):
        super().__init__(queue, max_msg_size, compress=compress, decode_text=decode_text)
        self.sink: Holder | None = None  # writes what it holds before a close frame
        self._queue = queue
        self._masks: MaskCheck | None = MaskCheck()

    def feed_data(self, data: Any) -> Any:
        masks = self._masks
        if masks is None:
            return _ERROR
        # Nearly every read is one whole masked frame: the second byte is the mask bit plus
        # the length (`n - 6` under 126 bytes), or 254 and a 16-bit length (`n - 8`).
        n = len(data)
        whole = (
            n > 5
            and (
                data[1] == n + 122
                if n < 132
                else data[1] == 254 and data[2] << 8 | data[3] == n - 8
            )
            and not masks.skip
            and not masks.head
        )
        if not whole and not masks.masked(data):
            self._masks = None
            self._queue.set_exception(
                WebSocketError(WSCloseCode.PROTOCOL_ERROR, "unmasked client frame")
            )
            return _ERROR
        return _parse(self, data)


class DirectWebSocketResponse(web.WebSocketResponse):
    """`WebSocketResponse` with a `DirectQueue` under its parser."""

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        # aiohttp's own `_post_start`, with the queue type changed and no heartbeat callback
        # (the gateway runs no server-side heartbeat: Phoenix clients send theirs).
        self._ws_protocol = protocol
        self._writer = writer
        self._reset_heartbeat()
        loop = self._loop
        assert loop is not None
        self._reader = DirectQueue(request._protocol, DEFAULT_CHUNK_SIZE, loop=loop)
        self._parser = ClientFrameReader(
            self._reader,
            self._max_msg_size,
            compress=bool(self._compress),
            decode_text=self._decode_text,
        )
        request.protocol.set_parser(self._parser)
        request.protocol.keep_alive(False)

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        # Every close frame goes out through here (aiohttp's answer to the client's close
        # too): the frames the sink holds for this socket must precede it.
        parser = self._parser
        if isinstance(parser, ClientFrameReader) and parser.sink is not None:
            parser.sink.uncork()
        return await super().close(code=code, message=message, drain=drain)

    def attach(self, on_message: OnMessage, sink: Holder) -> None:
        """Send data messages to `on_message` from now on (and any that came before); what
        `sink` holds is written before any close frame."""
        parser = self._parser
        assert isinstance(parser, ClientFrameReader)
        parser.sink = sink
        reader = self._reader
        assert isinstance(reader, DirectQueue)
        reader.attach(on_message)
