"""A small RFC 6455 WebSocket client on a bare asyncio Protocol, built for many connections.

A general client library spends most of its time in per-message futures and reader tasks; the
load tester only needs "frame arrived" callbacks, so frames are parsed straight out of
`data_received` and handed to a callback. This roughly halves the CPU cost per frame, which is
what lets one core drive tens of thousands of messages per second.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import ssl
import struct
from collections.abc import Callable, Sequence
from typing import cast
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_ABNORMAL = 1006  # no close frame was received (RFC 6455 section 7.1.5)
CLOSE_NO_STATUS = 1005
MAX_FRAME = 64 * 1024 * 1024

FrameHandler = Callable[[bytes, bool], None]


class HandshakeError(Exception):
    """The server refused the upgrade; `status` is the HTTP status (0 when none was read)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"handshake failed: {status} {detail}")
        self.status = status


def _mask(payload: bytes, key: bytes) -> bytes:
    # XOR as one big integer: far faster in CPython than a per-byte loop.
    n = len(payload)
    if n == 0:
        return payload
    repeated = (key * ((n + 3) // 4))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        n, "little"
    )


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (clients MUST mask, RFC 6455 section 5.3)."""
    # The key only has to be unpredictable to web content sharing a proxy; a load tester has
    # none, so a fast PRNG is enough.
    key = random.getrandbits(32).to_bytes(4, "little")
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    return head + key + _mask(payload, key)


class WsClient(asyncio.Protocol):
    """One client connection; frames go to `on_frame(data, is_text)` as they arrive."""

    def __init__(self, on_frame: FrameHandler) -> None:
        self.on_frame = on_frame
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.subprotocol: str | None = None
        self.bytes_in = 0
        self._handshake: asyncio.Future[bytes] | None = None
        self._buf = bytearray()
        self._frag_op = 0
        self._frag = bytearray()
        self._open = False
        self._sent_close = False

    # asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self._buf += data
        if not self._open:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > 65536:
                    self._fail_handshake(0, "oversized response head")
                return
            head = bytes(self._buf[: end + 4])
            del self._buf[: end + 4]
            self._open = True
            if self._handshake is not None and not self._handshake.done():
                self._handshake.set_result(head)
        self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = False
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(HandshakeError(0, "connection closed"))
        if not self.closed.done():
            self.closed.set_result(
                self.close_code if self.close_code is not None else CLOSE_ABNORMAL
            )

    # framing --------------------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self._buf
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:
                head += 4  # servers must not mask; tolerate it anyway
            if length > MAX_FRAME:
                self.close(1009)
                break
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            if b1 & 0x80:
                payload = _mask(payload, bytes(buf[pos + head - 4 : pos + head]))
            pos += head + length
            self._frame(b0 & 0x80 != 0, b0 & 0x0F, payload)
        if pos:
            del buf[:pos]

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                self.on_frame(payload, opcode == OP_TEXT)
            else:
                self._frag_op = opcode
                self._frag = bytearray(payload)
        elif opcode == OP_CONT:
            self._frag += payload
            if fin:
                data, self._frag = bytes(self._frag), bytearray()
                self.on_frame(data, self._frag_op == OP_TEXT)
        elif opcode == OP_PING:
            self._write(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else CLOSE_NO_STATUS
            self.close_code = code
            if not self._sent_close:
                self._write(OP_CLOSE, payload[:2])
                self._sent_close = True
            if self.transport is not None:
                self.transport.close()

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(opcode, payload))

    def _fail_handshake(self, status: int, detail: str) -> None:
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(HandshakeError(status, detail))
        if self.transport is not None:
            self.transport.close()

    # public ---------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._open and not self._sent_close and self.close_code is None

    def send(self, data: bytes, text: bool = True) -> int:
        """Queue one frame; returns the bytes written (0 when the socket is gone)."""
        if not self.is_open or self.transport is None or self.transport.is_closing():
            return 0
        frame = encode_frame(OP_TEXT if text else OP_BINARY, data)
        self.transport.write(frame)
        return len(frame)

    def close(self, code: int = 1000, reason: bytes = b"") -> None:
        """Start the closing handshake; `closed` resolves once the TCP connection ends."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self._sent_close:
            self._sent_close = True
            self.transport.write(encode_frame(OP_CLOSE, struct.pack("!H", code) + reason))
            if self.close_code is None:
                self.close_code = code
        # Don't wait for the server's close frame forever: drop the TCP connection soon after.
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, self.abort)

    def abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def connect(
    url: str,
    on_frame: FrameHandler,
    *,
    subprotocols: Sequence[str] = (),
    headers: Sequence[tuple[str, str]] = (),
    timeout: float = 10.0,
) -> WsClient:
    """Open a WebSocket to `url` (ws:// or wss://, path and query included)."""
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    ctx = ssl.create_default_context() if secure else None
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
    lines.extend(f"{name}: {value}" for name, value in headers)

    async def _open() -> WsClient:
        _, proto = await loop.create_connection(lambda: WsClient(on_frame), host, port, ssl=ctx)
        proto._handshake = loop.create_future()
        assert proto.transport is not None
        proto.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await proto._handshake
        _check_response(proto, head, key)
        return proto

    return await asyncio.wait_for(_open(), timeout)


def _check_response(proto: WsClient, head: bytes, key: str) -> None:
    text = head.decode("latin-1")
    status_line, _, rest = text.partition("\r\n")
    fields = status_line.split(" ", 2)
    status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
    if status != 101:
        proto.abort()
        raise HandshakeError(status, status_line)
    hdrs: dict[str, str] = {}
    for line in rest.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            hdrs[name.strip().lower()] = value.strip()
    expected = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
    if hdrs.get("sec-websocket-accept") != expected:
        proto.abort()
        raise HandshakeError(status, "bad Sec-WebSocket-Accept")
    proto.subprotocol = hdrs.get("sec-websocket-protocol")
