"""Raw-frame WebSocket client on aiohttp, for wire checks the phoenix client cannot make."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

CLOSING_TYPES = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


class ConnectionClosed(AssertionError):
    """A frame was expected but the server closed the connection."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed with code {code} ({reason!r})")
        self.code = code
        self.reason = reason


class RawSocket:
    """An open WebSocket with helpers to send V1/V2 frames and read frames back."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.close_reason = ""

    @property
    def close_code(self) -> int | None:
        """The close code the server sent (None while open, 1006 when it just dropped)."""
        return self.ws.close_code

    @property
    def protocol(self) -> str | None:
        """The subprotocol the server selected in the handshake."""
        return self.ws.protocol

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def send_v2(
        self, join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any
    ) -> None:
        """Send a V2 JSON text frame ``[join_ref, ref, topic, event, payload]``."""
        await self.ws.send_str(json.dumps([join_ref, ref, topic, event, payload]))

    async def send_v1(
        self, topic: str, event: str, payload: Any, ref: str | None, join_ref: str | None = None
    ) -> None:
        """Send a V1 JSON object frame."""
        message = {"topic": topic, "event": event, "payload": payload, "ref": ref}
        if join_ref is not None:
            message["join_ref"] = join_ref
        await self.ws.send_str(json.dumps(message))

    async def send_text(self, text: str) -> None:
        await self.ws.send_str(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def recv_frame(self, timeout: float = 5.0) -> str | bytes:
        """The next text (str) or binary (bytes) frame; ConnectionClosed if the server closed."""
        msg = await self.ws.receive(timeout)
        if msg.type == aiohttp.WSMsgType.TEXT:
            text: str = msg.data
            return text
        if msg.type == aiohttp.WSMsgType.BINARY:
            data: bytes = msg.data
            return data
        if msg.type in CLOSING_TYPES:
            if isinstance(msg.extra, str):
                self.close_reason = msg.extra
            raise ConnectionClosed(self.close_code, self.close_reason)
        raise AssertionError(f"unexpected WebSocket message {msg.type!r}: {msg.data!r}")

    async def recv_json(self, timeout: float = 5.0) -> Any:
        """The next frame, which must be text, decoded as JSON."""
        frame = await self.recv_frame(timeout)
        if isinstance(frame, bytes):
            raise AssertionError(f"expected a text frame, got binary {frame!r}")
        return json.loads(frame)

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Read and discard frames until the server closes; return its close code."""
        while True:
            try:
                await self.recv_frame(timeout)
            except ConnectionClosed as closed:
                return closed.code

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        await self.ws.close(code=code, message=message)


def socket_url(
    url: str, vsn: str | None = "2.0.0", params: Mapping[str, str] | Sequence[tuple[str, str]] = ()
) -> str:
    """The WebSocket URL for ``url``: ``/websocket`` appended unless present, params then vsn.

    Params come first and ``vsn`` last, as phoenix.js orders them; ``vsn=None`` leaves it out
    (the server then assumes V1).
    """
    parts = urlsplit(url)
    path = (
        parts.path if parts.path.endswith("/websocket") else parts.path.rstrip("/") + "/websocket"
    )
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    if vsn is not None:
        pairs.append(("vsn", vsn))
    query = "&".join(filter(None, [parts.query, urlencode(pairs)]))
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


@asynccontextmanager
async def connect(
    url: str,
    vsn: str | None = "2.0.0",
    params: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
    protocols: Sequence[str] = (),
    **ws_kwargs: Any,
) -> AsyncIterator[RawSocket]:
    """Open a WebSocket to the socket at ``url`` (for example ``gateway.ws_url``).

    A refused upgrade raises ``aiohttp.WSServerHandshakeError`` (its ``.status`` is the HTTP
    status). ``ws_kwargs`` go to ``ClientSession.ws_connect`` (e.g. ``compress=15``).
    """
    ws_kwargs.setdefault("max_msg_size", 0)
    ws_kwargs.setdefault("autoping", True)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            socket_url(url, vsn, params),
            headers=dict(headers or {}),
            protocols=tuple(protocols),
            **ws_kwargs,
        ) as ws,
    ):
        yield RawSocket(ws)
