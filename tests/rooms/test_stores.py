"""The memory backends and the tracker, driven directly with injected clocks."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from gateway.presence.memory import MemoryPresenceStore
from gateway.presence.state import Diff
from gateway.presence.tracker import PresenceTracker
from gateway.pubsub.core import FrameCache, PubSub
from gateway.signaling.grace import MemoryGraceQueue, PushResult, Queued
from gateway.signaling.sessions import MAX_EVENTS, MemorySessionStore, iso


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Collector:
    sub_id = "collector"

    def __init__(self) -> None:
        self.got: list[tuple[str, str, Any]] = []

    def deliver(self, topic: str, event: str, payload: Any, frames: FrameCache) -> None:
        self.got.append((topic, event, payload))


def meta(ref: str) -> dict[str, Any]:
    return {"online_at": "1", "phx_ref": ref}


async def test_presence_store_caps_keys_atomically() -> None:
    store = MemoryPresenceStore()
    assert (await store.track("t", "a", meta("r1"), "n1", max_keys=2)).tracked
    assert (await store.track("t", "b", meta("r2"), "n1", max_keys=2)).tracked
    refused = await store.track("t", "c", meta("r3"), "n1", max_keys=2)
    assert (refused.tracked, refused.keys) == (False, 2)
    assert (await store.track("t", "a", meta("r4"), "n1", max_keys=2)).tracked
    assert [m["phx_ref"] for m in await store.get("t", "a")] == ["r1", "r4"]
    diff = await store.untrack("t", "b", "r2")
    assert diff.leaves == {"b": {"metas": [meta("r2")]}}
    assert await store.count("t") == 1
    assert (await store.untrack("t", "b", "r2")).is_empty()


async def test_presence_store_expires_a_silent_nodes_entries() -> None:
    clock = Clock()
    store = MemoryPresenceStore(clock)
    await store.refresh("n1", 30)
    await store.refresh("n2", 30)
    await store.track("t", "a", meta("r1"), "n1")
    await store.track("t", "b", meta("r2"), "n2")
    await store.track("u", "b", meta("r3"), "n2")
    clock.now += 20
    await store.refresh("n1", 30)
    assert await store.expire() == []
    clock.now += 15
    expired = dict(await store.expire())
    assert expired == {
        "t": Diff(leaves={"b": {"metas": [meta("r2")]}}),
        "u": Diff(leaves={"b": {"metas": [meta("r3")]}}),
    }
    assert await store.state("t") == {"a": {"metas": [meta("r1")]}}
    assert await store.count("u") == 0


async def test_tracker_coalesces_per_topic_and_flushes() -> None:
    pubsub = PubSub("n1")
    collector = Collector()
    pubsub.subscribe("t", collector)
    tracker = PresenceTracker(MemoryPresenceStore(), pubsub, "n1", coalesce_ms=30)
    refs = []
    for key in ("a", "b", "c"):
        ref, result = await tracker.track("t", key, {"online_at": "1"}, max_keys=10)
        assert ref is not None and result.tracked
        refs.append(ref)
    await tracker.untrack("t", "c", refs[2])
    assert collector.got == []
    await asyncio.sleep(0.08)
    ((topic, event, payload),) = collector.got
    assert (topic, event) == ("t", "presence_diff")
    assert sorted(payload["joins"]) == ["a", "b"] and payload["leaves"] == {}
    new_ref = await tracker.update("t", "a", refs[0], {"online_at": "2"})
    assert new_ref is not None
    tracker.flush_all()
    update = collector.got[-1][2]
    assert update["joins"]["a"]["metas"][0]["phx_ref_prev"] == refs[0]
    assert (tracker.diffs_sent, tracker.diff_deliveries) == (2, 2)
    assert await tracker.present("t", "b") and not await tracker.present("t", "c")


async def test_tracker_without_window_sends_each_diff() -> None:
    pubsub = PubSub("n1")
    collector = Collector()
    pubsub.subscribe("t", collector)
    tracker = PresenceTracker(MemoryPresenceStore(), pubsub, "n1", coalesce_ms=0)
    await tracker.track("t", "a", {"online_at": "1"})
    await tracker.track("t", "b", {"online_at": "1"})
    assert [sorted(p["joins"]) for _, _, p in collector.got] == [["a"], ["b"]]


async def test_grace_queue_fifo_bound_claim_and_expiry() -> None:
    grace = MemoryGraceQueue()
    item = Queued("ann", "offer", b"{}")
    assert await grace.push("r", "bob", item, 2) is PushResult.ABSENT
    await grace.open("r", "bob", deadline=10.0)
    for n in range(2):
        assert await grace.push("r", "bob", Queued("ann", f"e{n}", b"{}"), 2) is PushResult.QUEUED
    assert await grace.push("r", "bob", item, 2) is PushResult.FULL
    assert await grace.expire("r", "bob", now=9.0) is None
    assert [q.event for q in await grace.claim("r", "bob")] == ["e0", "e1"]
    assert await grace.claim("r", "bob") == []
    await grace.open("r", "bob", deadline=10.0)
    await grace.push("r", "bob", item, 2)
    await grace.open("r", "bob", deadline=20.0)  # dropped again: extended, queue kept
    assert await grace.expire("r", "bob", now=15.0) is None
    assert await grace.expire("r", "bob", now=20.0) == [item]
    assert len(grace) == 0


async def test_sessions_bound_history_and_expire_after_retention() -> None:
    clock = Clock()
    store = MemorySessionStore(retention_s=60, wall=clock)
    await store.joined("r", "ann")
    for n in range(MAX_EVENTS + 50):
        await store.record("r", "offer", "ann", f"u{n}")
    session = await store.get("r")
    assert session is not None
    assert len(session.events) == MAX_EVENTS and session.events[0].to == "u50"
    for n in range(120):
        await store.add_chat("r", str(n).encode(), clock())
    assert await store.chat("r", 3) == [b"117", b"118", b"119"]
    assert len(await store.chat("r", 500)) == 100
    await store.left("r", "ann", room_empty=True)
    session = await store.get("r")
    assert session is not None and session.emptied_at == iso(clock.now)
    clock.now += 59
    assert await store.get("r") is not None
    await store.joined("r", "bob")  # back in use: the clock stops
    await store.left("r", "bob", room_empty=True)
    clock.now += 61
    assert await store.get("r") is None


def test_iso_timestamps_match_datetime_to_the_millisecond() -> None:
    from datetime import UTC, datetime

    for ts in (0.0, 1_795_840_438.123, 1_795_840_438.9999996, 1_700_000_000.0005):
        expected = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert iso(ts) == expected


def test_iso_timestamps_in_a_row_match_datetime_at_every_millisecond_edge() -> None:
    from datetime import UTC, datetime

    rng = random.Random(7)
    base = 1_795_840_438.0
    times = []
    for _ in range(3000):
        edge = base + rng.randrange(0, 5000) / 1000  # a millisecond's start, then around it
        times += [edge + rng.uniform(-3e-6, 3e-6), edge + rng.uniform(0, 0.001), edge - 5e-7]
    for ts in times:  # in this order, so each is read against the one before
        expected = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert iso(ts) == expected, ts


async def test_sessions_are_bounded_in_rooms_and_chat_bytes_across_rooms() -> None:
    clock = Clock()
    store = MemorySessionStore(retention_s=3600, wall=clock, max_rooms=3, max_chat_bytes=1000)
    for room in ("a", "b", "c"):
        await store.joined(room, "ann")
    await store.left("b", "ann", room_empty=True)
    await store.joined("d", "ann")  # full: the emptied room goes first
    assert await store.get("b") is None and await store.get("a") is not None
    await store.joined("e", "ann")  # none emptied: the oldest goes
    assert await store.get("a") is None
    assert store.evicted == 2

    # 128-byte messages (unknown fields and all count) into two rooms: 1,000 bytes in all.
    for n in range(20):
        await store.add_chat("d", b"d" * 127 + bytes([48 + n % 10]), clock())
    for _ in range(5):
        await store.add_chat("e", b"e" * 128, clock())
    assert store.chat_bytes <= 1000
    kept = await store.chat("d", 100) + await store.chat("e", 100)
    assert sum(len(m) for m in kept) == store.chat_bytes
    assert await store.chat("d", 1) == [b"d" * 127 + b"9"]  # the newest stays
    assert len(await store.chat("e", 100)) >= 3  # the room with the most chat gave way
