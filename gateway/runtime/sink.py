"""What a transport gives a connection to write frames to."""

from __future__ import annotations

from typing import Protocol

from gateway.protocol.messages import Frame


class Sink(Protocol):
    """The outbound half of a transport. `send` never blocks; it queues or drops."""

    transport: str

    def send(self, frame: Frame) -> None:
        """Queue one frame for the client."""

    def close(self, code: int, reason: str = "") -> None:
        """End the transport with a WebSocket close code (long-poll ends its session)."""

    @property
    def closed(self) -> bool:
        """True once closing started."""
