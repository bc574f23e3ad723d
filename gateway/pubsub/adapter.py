"""The cross-node part of pub/sub: what a backend must do, and the envelope it ferries.

Local subscribe and dispatch live in `core.PubSub`; an adapter only carries broadcasts to other
nodes and hands the ones it receives back to the core (phoenix_pubsub's split).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import msgspec


class Envelope(msgspec.Struct, array_like=True, gc=False):
    """One broadcast crossing nodes. `payload` stays encoded JSON (or raw binary) end to end."""

    node: str
    key: str  # the subscription key (a topic, or a private key such as a user's room inbox)
    topic: str  # the topic written on the wire
    event: str
    payload: bytes
    binary: bool = False
    exclude: str | None = None  # a subscriber id to skip (broadcast_from)


Deliver = Callable[[Envelope], None]


class PubSubAdapter(Protocol):
    """A transport of envelopes between nodes."""

    async def start(self, deliver: Deliver) -> None:
        """Begin receiving; `deliver` is called for each envelope from another node."""

    async def stop(self) -> None:
        """Stop receiving and release connections."""

    def subscribe(self, key: str) -> None:
        """This node now has local subscribers for `key`."""

    def unsubscribe(self, key: str) -> None:
        """This node no longer has local subscribers for `key`."""

    def publish(self, envelope: Envelope) -> None:
        """Send to the other nodes; never blocks the caller."""

    def settling(self, keys: Iterable[str]) -> Awaitable[None] | None:
        """What to await until broadcasts other nodes make for `keys` reach this node (the
        backend has confirmed those subscriptions); None when there is nothing to wait for."""

    @property
    def healthy(self) -> bool:
        """False while the backend is unreachable."""


class LocalAdapter:
    """One node: nothing crosses, nothing can fail."""

    async def start(self, deliver: Deliver) -> None:
        return None

    async def stop(self) -> None:
        return None

    def subscribe(self, key: str) -> None:
        return None

    def unsubscribe(self, key: str) -> None:
        return None

    def publish(self, envelope: Envelope) -> None:
        return None

    def settling(self, keys: Iterable[str]) -> Awaitable[None] | None:
        return None

    @property
    def healthy(self) -> bool:
        return True
