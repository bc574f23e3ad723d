"""The presence storage interface: what a backend keeps per topic, so the tracker is backend-free.

A backend holds, per topic, entries `(key, meta, node)`; each meta carries its own `phx_ref`.
Entries belong to the node that tracked them and live as long as that node keeps refreshing
them (`refresh`); entries of a node that stopped are handed back by `expire` so some node can
broadcast their leaves. The memory backend serves one process; a Redis backend implements the
same methods with server-side scripts so `track`'s cap check stays atomic across nodes.
"""

from __future__ import annotations

from typing import Final, Protocol

import msgspec
import redis.exceptions

from gateway.presence.state import Diff, Entries, Meta

#: What a store call raises when its server is unreachable, paused past the socket timeout, or
#: restarting: the caller degrades (an error reply, a retry later), it does not crash.
STORE_ERRORS: Final = (OSError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class TrackResult(msgspec.Struct, frozen=True, gc=False):
    """Whether `track` stored the meta, and the number of keys in the topic afterwards."""

    tracked: bool
    keys: int


class PresenceStore(Protocol):
    """Per-topic presence entries with a key cap, node ownership and expiry."""

    async def track(
        self, topic: str, key: str, meta: Meta, node: str, *, max_keys: int = 0
    ) -> TrackResult:
        """Store `meta` (with its `phx_ref`) under `key`.

        Refused (`tracked=False`) when the topic already holds `max_keys` keys and `key` is not
        one of them (`max_keys=0`: no cap). The check and the write are one atomic step.
        """

    async def untrack(self, topic: str, key: str, phx_ref: str) -> Diff:
        """Remove one meta; the diff carries it in `leaves` (empty if it was not there)."""

    async def update(self, topic: str, key: str, old_ref: str, meta: Meta) -> Diff:
        """Replace a meta by `meta` (which carries a new `phx_ref`); Phoenix's update diff."""

    async def state(self, topic: str) -> Entries:
        """The topic's `presence_state` payload."""

    async def get(self, topic: str, key: str) -> list[Meta]:
        """The metas under `key` (empty: not present)."""

    async def count(self, topic: str) -> int:
        """Number of keys in the topic."""

    async def refresh(self, node: str, ttl_s: float) -> bool:
        """Keep `node`'s entries alive for `ttl_s` more seconds. False when the store did not
        know the node any more (it restarted empty, or expired the node after a stall): the
        node must track its entries again."""

    async def expire(self) -> list[tuple[str, Diff]]:
        """Remove the entries of nodes whose refresh lapsed: `(topic, leaves diff)` each."""
