"""What a channel sees of the runtime that runs it, typed here so channels never import it.

`runtime/channel_process.py` implements `ChannelContext` (one per joined topic) and
`runtime/connection.py` implements `ChannelSocket`; both are checked structurally by mypy.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from gateway.pubsub.core import PubSub, Subscriber


class SocketInfo(msgspec.Struct, kw_only=True):
    """What channels may know about their socket: Phoenix's `socket.assigns` and friends."""

    conn_id: str
    user_id: str
    authenticated: bool
    transport: str
    serializer_vsn: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    peer: str = ""
    socket_id: str | None = None
    claims: dict[str, Any] = msgspec.field(default_factory=dict)
    assigns: dict[str, Any] = msgspec.field(default_factory=dict)


class ChannelParts(Protocol):
    """The node's parts a channel may use."""

    @property
    def pubsub(self) -> PubSub: ...


class ChannelSocket(Protocol):
    """The connection a channel belongs to."""

    @property
    def info(self) -> SocketInfo: ...

    @property
    def parts(self) -> ChannelParts: ...


class ChannelContext(Subscriber, Protocol):
    """The process running one joined channel: its topic, its socket, its client."""

    @property
    def topic(self) -> str: ...

    @property
    def conn(self) -> ChannelSocket: ...

    def push(self, event: str, payload: Any) -> None: ...

    def reply(self, ref: Any, status: str, response: Any) -> None: ...

    def subscribe_extra(self, key: str) -> None: ...

    def send_info(self, message: Any) -> None: ...
