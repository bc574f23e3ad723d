"""Presence for channels: tracks metas in a `PresenceStore` and broadcasts coalesced diffs.

The store is the truth (it may be shared by many nodes); this tracker makes the phx_refs,
reads `presence_state` from the store, and sends `presence_diff` through pub/sub, so every
node's subscribers get it. Diffs of one topic are merged over `coalesce_ms` with
`DiffCoalescer`: a join storm into a large room then costs one frame per member per window
instead of one per member per join (Phoenix's cost). `coalesce_ms=0` sends each diff at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import msgspec
import structlog

from gateway.observability import metrics
from gateway.presence.coalesce import DiffCoalescer
from gateway.presence.state import Diff, Entries, Meta, RefGenerator
from gateway.presence.store import STORE_ERRORS, PresenceStore, TrackResult
from gateway.protocol import jsonenc
from gateway.protocol.messages import PRESENCE_DIFF
from gateway.pubsub.core import PubSub

log = structlog.get_logger("gateway.presence")


# Members per base window: up to this many local members a diff goes out every `coalesce_ms`.
MEMBERS_PER_WINDOW = 500
MAX_WINDOW_S = 1.0


class PresenceTracker:
    """One node's view of presence: refs, store calls, coalesced diff broadcasts."""

    def __init__(
        self,
        store: PresenceStore,
        pubsub: PubSub,
        node: str,
        *,
        coalesce_ms: int = 50,
        ttl_s: float = 30.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.pubsub = pubsub
        self.node = node
        self.window_s = max(coalesce_ms, 0) / 1000
        self.ttl_s = ttl_s
        self.new_ref = RefGenerator(node, clock_ns)
        self._pending: dict[str, DiffCoalescer] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._task: asyncio.Task[None] | None = None
        #: Diff frames broadcast and the deliveries they made on this node (for benchmarks).
        self.diffs_sent = 0
        self.diff_deliveries = 0
        #: topic -> key -> phx_refs: who this node knows to be present, from the diffs it
        #: made and the diffs other nodes sent. Answers "is `to` a member?" without a store
        #: read; a miss is checked against the store, so it may lag but never refuses wrongly.
        #: A key's refs are a tuple: nearly always one, and a 1-tuple is a fifth of a set.
        self.members: dict[str, dict[str, tuple[str, ...]]] = {}
        #: phx_ref -> (topic, key, meta) of every entry this node tracked: what it puts back
        #: when the store lost them (a restarted Redis).
        self.mine: dict[str, tuple[str, str, Meta]] = {}
        #: Untracks the store could not take (it was unreachable): retried by the keepalive.
        self.unfinished: list[tuple[str, str, str]] = []
        #: Keepalives that still put this node's entries back after the store had lost them.
        self._retracks_left = 0
        pubsub.on_remote_presence = self.observe_remote

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        await self.store.refresh(self.node, self.ttl_s)
        self._task = asyncio.get_running_loop().create_task(self._keepalive())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for topic in list(self._pending):
            self._flush(topic)

    async def _keepalive(self) -> None:
        # Refresh this node's entries well before they lapse; broadcast leaves of dead nodes.
        period = max(self.ttl_s / 3, 0.05)
        while True:
            await asyncio.sleep(period)
            try:
                if not await self.store.refresh(self.node, self.ttl_s):
                    # Another node may be expiring this one right now (its deadline lapsed
                    # during a stall or a Redis pause) and delete entries as we put them back:
                    # put them back on the next two keepalives as well, after its cleanup.
                    self._retracks_left = 3
                if self._retracks_left:
                    self._retracks_left -= 1
                    if self.mine:
                        await self.retrack()
                while self.unfinished:
                    topic, key, ref = self.unfinished[-1]
                    await self.store.untrack(topic, key, ref)
                    self.unfinished.pop()
                for topic, diff in await self.store.expire():
                    self.publish(topic, diff)
            except Exception:
                log.exception("presence_keepalive_failed")

    async def retrack(self) -> None:
        """Put every entry of this node back into the store, and tell the rooms (a join of a
        phx_ref a client already has changes nothing for phoenix.js)."""
        joins: dict[str, Diff] = {}
        for ref, (topic, key, meta) in list(self.mine.items()):
            if ref not in self.mine:
                continue  # untracked meanwhile
            await self.store.track(topic, key, meta, self.node)
            if ref not in self.mine:  # untracked while we wrote it: take it out again
                await self.store.untrack(topic, key, ref)
                continue
            entry = joins.setdefault(topic, Diff()).joins.setdefault(key, {"metas": []})
            entry["metas"].append(meta)
        for topic, diff in joins.items():
            self.publish(topic, diff)
        log.info("presence_retracked", entries=sum(len(d.joins) for d in joins.values()))

    # -- tracking ---------------------------------------------------------------------------
    async def track(
        self, topic: str, key: str, meta: Meta, *, max_keys: int = 0
    ) -> tuple[str | None, TrackResult]:
        """Track `meta` under `key`; the new phx_ref (None when the cap refused it)."""
        ref = self.new_ref()
        stored = {**meta, "phx_ref": ref}
        result = await self.store.track(topic, key, stored, self.node, max_keys=max_keys)
        if not result.tracked:
            return None, result
        metrics.presence_entries(1)
        self.mine[ref] = (topic, key, stored)
        self.publish(topic, Diff(joins={key: {"metas": [stored]}}))
        return ref, result

    async def untrack(self, topic: str, key: str, ref: str) -> None:
        mine = self.mine.pop(ref, None)
        try:
            diff = await self.store.untrack(topic, key, ref)
        except STORE_ERRORS:
            # Gone as far as the rooms can tell now; the store is told on a later keepalive.
            self.unfinished.append((topic, key, ref))
            if mine is not None:
                metrics.presence_entries(-1)
                self.publish(topic, Diff(leaves={key: {"metas": [mine[2]]}}))
            raise
        if diff.leaves:
            metrics.presence_entries(-1)
        self.publish(topic, diff)

    async def update(self, topic: str, key: str, old_ref: str, meta: Meta) -> str | None:
        """Replace a meta; its new phx_ref (None if `old_ref` was not tracked)."""
        ref = self.new_ref()
        stored = {**meta, "phx_ref": ref}
        diff = await self.store.update(topic, key, old_ref, stored)
        if diff.is_empty():
            return None
        if self.mine.pop(old_ref, None) is not None:
            self.mine[ref] = (topic, key, stored)
        self.publish(topic, diff)
        return ref

    async def state(self, topic: str) -> Entries:
        return await self.store.state(topic)

    async def present(self, topic: str, key: str) -> bool:
        return bool(await self.store.get(topic, key))

    def known_present(self, topic: str, key: str) -> bool:
        """Present as far as the diffs seen here tell (no store read)."""
        keys = self.members.get(topic)
        return keys is not None and key in keys

    def learn(self, topic: str, state: Entries) -> None:
        """Fold a `presence_state` read from the store into `members`: members of other nodes
        that joined before this node subscribed are then known without a store read."""
        if not state:
            return
        keys = self.members.get(topic)
        if keys is not None and state.keys() <= keys.keys():
            # Every member is known here already (on one node, always): `members` answers
            # whether a key is present, and walking a large room's metas on each join would
            # make growing it quadratic.
            return
        self.observe(topic, Diff(joins=state))

    def observe_remote(self, topic: str, payload: bytes) -> None:
        """Another node's presence_diff, as pub/sub received it (a malformed one is ignored)."""
        try:
            diff = Diff.from_payload(jsonenc.decode(payload))
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        self.observe(topic, diff)

    def observe(self, topic: str, diff: Diff) -> None:
        """Fold a diff into `members` (ours as we publish it, others' as they arrive)."""
        keys = self.members.get(topic)
        if keys is not None:
            for key, entry in diff.leaves.items():
                refs = keys.get(key)
                if refs is None:
                    continue
                gone = {meta.get("phx_ref") for meta in entry["metas"]}
                left = tuple(ref for ref in refs if ref not in gone)
                if left:
                    keys[key] = left
                else:
                    del keys[key]
        if diff.joins:
            if keys is None:
                keys = self.members[topic] = {}
            for key, entry in diff.joins.items():
                refs = keys.get(key, ())
                new = tuple(m["phx_ref"] for m in entry["metas"] if m["phx_ref"] not in refs)
                keys[key] = refs + new if refs else new
        if keys is not None and not keys:
            del self.members[topic]

    # -- diffs ------------------------------------------------------------------------------
    def publish(self, topic: str, diff: Diff) -> None:
        """Broadcast `diff` now, or merge it into the topic's open window."""
        if diff.is_empty():
            return
        self.observe(topic, diff)
        if self.window_s <= 0:
            self._broadcast(topic, diff)
            return
        coalescer = self._pending.get(topic)
        if coalescer is None:
            coalescer = self._pending[topic] = DiffCoalescer()
            loop = asyncio.get_running_loop()
            self._timers[topic] = loop.call_later(self.window_for(topic), self._flush, topic)
        coalescer.add(diff)

    def window_for(self, topic: str) -> float:
        """The window grows with the room: each window costs one frame per member, so a room of
        5,000 gets a diff every 0.5 s instead of every 50 ms (capped at `MAX_WINDOW_S`)."""
        members = self.pubsub.subscribers(topic)
        scale = max(1.0, members / MEMBERS_PER_WINDOW)
        return min(self.window_s * scale, max(self.window_s, MAX_WINDOW_S))

    def flush_all(self) -> None:
        """Send every open window now."""
        for topic in list(self._pending):
            self._flush(topic)

    def _flush(self, topic: str) -> None:
        timer = self._timers.pop(topic, None)
        if timer is not None:
            timer.cancel()
        coalescer = self._pending.pop(topic, None)
        if coalescer is None:
            return
        merged = coalescer.take()
        if merged is not None:
            self._broadcast(topic, merged)

    def _broadcast(self, topic: str, diff: Diff) -> None:
        self.diffs_sent += 1
        self.diff_deliveries += self.pubsub.broadcast(topic, PRESENCE_DIFF, diff.to_payload())
