"""A WebSocket's ends without a network: what a `WebSocketSink` writes to, what the frame
parser reports flow control to, and the bytes a client sends."""

from __future__ import annotations


class MemoryTransport:
    """Keeps every write, in order; never pushes back (nothing stays unsent)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class ParserProtocol:
    """The parser's view of its connection: it pauses reading while its queue is full."""

    def __init__(self) -> None:
        self._reading_paused = False

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False


def client_text_frame(text: bytes) -> bytes:
    """A client's text frame (RFC 6455 section 5.2) with an all-zero mask, so the payload stays
    as it is."""
    n = len(text)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + bytes(4) + text
