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

from aiohttp import WSMsgType, web
from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
from aiohttp.helpers import DEFAULT_CHUNK_SIZE

OnMessage = Callable[[Any], None]
_DIRECT = frozenset({WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG})


class DirectQueue(WebSocketDataQueue):  # type: ignore[misc]
    """Data messages go to `on_message`; the rest queue up for `receive()` and `close()`."""

    def __init__(self, protocol: Any, limit: int, *, loop: Any) -> None:
        super().__init__(protocol, limit, loop=loop)
        self.on_message: OnMessage | None = None
        self.early: list[Any] = []  # data messages parsed before `on_message` was set

    def feed_data(self, data: Any, size: int) -> None:
        if data[0] in _DIRECT:
            on_message = self.on_message
            if on_message is None:
                self.early.append(data)
            else:
                on_message(data)
            return
        super().feed_data(data, size)

    def attach(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        early, self.early = self.early, []
        for data in early:
            on_message(data)


class Corkable(Protocol):
    def cork(self) -> None: ...
    def uncork(self) -> None: ...


class CorkingReader(WebSocketReader):  # type: ignore[misc]
    """aiohttp's frame parser, with the connection's writes held while one read is parsed:
    the replies to pipelined pushes that arrived together leave in one write."""

    def __init__(self, queue: Any, max_msg_size: int, *, compress: bool, decode_text: bool):
        super().__init__(queue, max_msg_size, compress=compress, decode_text=decode_text)
        self.sink: Corkable | None = None

    def feed_data(self, data: Any) -> Any:
        sink = self.sink
        if sink is None:
            return super().feed_data(data)
        sink.cork()
        try:
            return super().feed_data(data)
        finally:
            sink.uncork()


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
        self._parser = CorkingReader(
            self._reader,
            self._max_msg_size,
            compress=bool(self._compress),
            decode_text=self._decode_text,
        )
        request.protocol.set_parser(self._parser)
        request.protocol.keep_alive(False)

    def attach(self, on_message: OnMessage, sink: Corkable) -> None:
        """Send data messages to `on_message` from now on (and any that came before), with
        `sink` corked while each read is parsed."""
        parser = self._parser
        assert isinstance(parser, CorkingReader)
        parser.sink = sink
        reader = self._reader
        assert isinstance(reader, DirectQueue)
        reader.attach(on_message)
