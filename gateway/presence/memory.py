"""The in-memory presence backend: one process's topics, each a `PresenceTopic`."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.presence.state import Diff, Entries, Meta, PresenceTopic
from gateway.presence.store import TrackResult


def _no_ref() -> str:
    # Every meta reaching the store already has its phx_ref (made by the tracker).
    raise AssertionError("the store never makes phx_refs")


class MemoryPresenceStore:
    """`PresenceStore` for one node; `refresh`/`expire` keep the contract for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._topics: dict[str, PresenceTopic] = {}
        # phx_ref -> (topic, node): which entries a lapsed node takes with it.
        self._owners: dict[str, tuple[str, str]] = {}
        self._deadlines: dict[str, float] = {}

    async def track(
        self, topic: str, key: str, meta: Meta, node: str, *, max_keys: int = 0
    ) -> TrackResult:
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = PresenceTopic(_no_ref)
        if max_keys and key not in state and len(state) >= max_keys:
            return TrackResult(False, len(state))
        state.track(key, meta, ref=meta["phx_ref"])
        self._owners[meta["phx_ref"]] = (topic, node)
        return TrackResult(True, len(state))

    async def untrack(self, topic: str, key: str, phx_ref: str) -> Diff:
        state = self._topics.get(topic)
        if state is None:
            return Diff()
        diff = state.untrack(key, phx_ref)
        self._owners.pop(phx_ref, None)
        if not len(state):
            del self._topics[topic]
        return diff

    async def update(self, topic: str, key: str, old_ref: str, meta: Meta) -> Diff:
        state = self._topics.get(topic)
        if state is None:
            return Diff()
        diff = state.update(key, old_ref, meta, ref=meta["phx_ref"])
        owner = self._owners.pop(old_ref, None)
        if owner is not None and not diff.is_empty():
            self._owners[meta["phx_ref"]] = owner
        return diff

    async def state(self, topic: str) -> Entries:
        state = self._topics.get(topic)
        return state.list() if state is not None else {}

    async def get(self, topic: str, key: str) -> list[Meta]:
        state = self._topics.get(topic)
        return state.get(key) if state is not None else []

    async def count(self, topic: str) -> int:
        state = self._topics.get(topic)
        return len(state) if state is not None else 0

    async def refresh(self, node: str, ttl_s: float) -> bool:
        known = node in self._deadlines
        self._deadlines[node] = self._clock() + ttl_s
        return known

    async def expire(self) -> list[tuple[str, Diff]]:
        now = self._clock()
        lapsed = {node for node, deadline in self._deadlines.items() if deadline <= now}
        if not lapsed:
            return []
        for node in lapsed:
            del self._deadlines[node]
        by_topic: dict[str, list[str]] = {}
        for ref, (topic, node) in list(self._owners.items()):
            if node in lapsed:
                by_topic.setdefault(topic, []).append(ref)
                del self._owners[ref]
        out: list[tuple[str, Diff]] = []
        for topic, refs in by_topic.items():
            state = self._topics[topic]
            diff = state.remove_refs(refs)
            if not len(state):
                del self._topics[topic]
            if not diff.is_empty():
                out.append((topic, diff))
        return out
