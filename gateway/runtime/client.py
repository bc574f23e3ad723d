"""What the hub and admission see of a connection (implemented by `runtime/connection.py`)."""

from __future__ import annotations

from typing import Protocol

from gateway.channels.context import SocketInfo


class Client(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def info(self) -> SocketInfo: ...

    def close(self, code: int, reason: str = "") -> None: ...
