"""The `PresenceStore` contract, against the memory and the Redis backends alike."""

from __future__ import annotations

import asyncio

import pytest

from gateway.presence.memory import MemoryPresenceStore
from gateway.presence.redis import RedisPresenceStore
from gateway.presence.state import Diff
from gateway.presence.store import PresenceStore, TrackResult
from tests.contract.conftest import StoreBackend

T = "room:6f9c1f7e-0000-4000-8000-000000000001"


@pytest.fixture
def store(store_backend: StoreBackend) -> PresenceStore:
    if store_backend.client is None:
        return MemoryPresenceStore(clock=store_backend.clock)
    return RedisPresenceStore(store_backend.client)


def meta(ref: str, **extra: object) -> dict[str, object]:
    return {"phx_ref": ref, **extra}


async def test_track_state_get_count(store: PresenceStore) -> None:
    assert await store.track(T, "u1", meta("r1", device="phone"), "n1") == TrackResult(True, 1)
    assert await store.track(T, "u2", meta("r2"), "n2") == TrackResult(True, 2)
    assert await store.track(T, "u1", meta("r3", device="laptop"), "n2") == TrackResult(True, 2)

    assert await store.state(T) == {
        "u1": {"metas": [meta("r1", device="phone"), meta("r3", device="laptop")]},
        "u2": {"metas": [meta("r2")]},
    }
    assert list(await store.state(T)) == ["u1", "u2"]
    assert await store.get(T, "u1") == [meta("r1", device="phone"), meta("r3", device="laptop")]
    assert await store.get(T, "nobody") == []
    assert await store.count(T) == 2
    assert await store.state("room:other") == {}
    assert await store.count("room:other") == 0


async def test_key_cap_refuses_new_keys_only(store: PresenceStore) -> None:
    assert (await store.track(T, "a", meta("1"), "n1", max_keys=2)).tracked
    assert (await store.track(T, "b", meta("2"), "n1", max_keys=2)).tracked
    assert await store.track(T, "c", meta("3"), "n1", max_keys=2) == TrackResult(False, 2)
    # A second meta for a key already present is no new key.
    assert await store.track(T, "a", meta("4"), "n2", max_keys=2) == TrackResult(True, 2)
    assert sorted(await store.state(T)) == ["a", "b"]


async def test_cap_holds_under_concurrent_tracks(store: PresenceStore) -> None:
    results = await asyncio.gather(
        *(store.track(T, f"u{i}", meta(f"r{i}"), "n1", max_keys=5) for i in range(20))
    )
    assert sum(r.tracked for r in results) == 5
    assert await store.count(T) == 5


async def test_untrack_gives_the_leave_once(store: PresenceStore) -> None:
    await store.track(T, "u1", meta("r1", s="x"), "n1")
    await store.track(T, "u1", meta("r2"), "n1")

    assert await store.untrack(T, "u1", "r1") == Diff(leaves={"u1": {"metas": [meta("r1", s="x")]}})
    assert await store.untrack(T, "u1", "r1") == Diff()
    assert await store.count(T) == 1
    assert await store.untrack(T, "u1", "r2") == Diff(leaves={"u1": {"metas": [meta("r2")]}})
    assert await store.count(T) == 0
    assert await store.state(T) == {}


async def test_update_is_phoenix_update_diff(store: PresenceStore) -> None:
    await store.track(T, "u1", meta("r1", status="here"), "n1")
    await store.track(T, "u1", meta("r2"), "n1")

    diff = await store.update(T, "u1", "r1", meta("r9", status="away"))

    new = {"status": "away", "phx_ref": "r9", "phx_ref_prev": "r1"}
    assert diff == Diff(
        joins={"u1": {"metas": [new]}}, leaves={"u1": {"metas": [meta("r1", status="here")]}}
    )
    assert await store.get(T, "u1") == [new, meta("r2")]  # the new meta took the old one's place
    assert await store.update(T, "u1", "r1", meta("r10")) == Diff()


async def test_a_lapsed_nodes_entries_expire_as_leaves(
    store: PresenceStore, store_backend: StoreBackend
) -> None:
    await store.refresh("alive", 5.0)
    await store.refresh("dying", 0.3)
    await store.track(T, "u1", meta("a1"), "alive")
    await store.track(T, "u2", meta("d1"), "dying")
    await store.track(T, "u1", meta("d2"), "dying")
    await store.track("room:b", "u3", meta("d3"), "dying")

    assert await store.expire() == []
    await store_backend.clock.advance(0.5)
    await store.refresh("alive", 5.0)
    expired = dict(await store.expire())

    assert set(expired) == {T, "room:b"}
    assert expired["room:b"] == Diff(leaves={"u3": {"metas": [meta("d3")]}})
    leaves = expired[T].leaves
    assert leaves == {"u2": {"metas": [meta("d1")]}, "u1": {"metas": [meta("d2")]}} or leaves == {
        "u1": {"metas": [meta("d2")]},
        "u2": {"metas": [meta("d1")]},
    }
    assert await store.state(T) == {"u1": {"metas": [meta("a1")]}}
    assert await store.expire() == []  # a dead node's leaves are handed out once


async def test_refreshed_node_keeps_its_entries(
    store: PresenceStore, store_backend: StoreBackend
) -> None:
    await store.refresh("n1", 0.4)
    await store.track(T, "u1", meta("r1"), "n1")
    for _ in range(3):
        await store_backend.clock.advance(0.2)
        await store.refresh("n1", 0.4)
        assert await store.expire() == []
    assert await store.count(T) == 1


async def test_refresh_says_whether_the_store_still_knew_the_node(
    store: PresenceStore, store_backend: StoreBackend
) -> None:
    assert await store.refresh("n1", 0.3) is False  # first sight
    assert await store.refresh("n1", 0.3) is True
    await store.refresh("n2", 5.0)
    await store_backend.clock.advance(0.5)
    await store.expire()  # n1 lapsed (a stall) and was expired by another node
    assert await store.refresh("n1", 0.3) is False  # so n1 must track its entries again
    assert await store.refresh("n2", 5.0) is True
