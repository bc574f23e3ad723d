"""The `GraceQueue` contract, against the memory and the Redis backends alike."""

from __future__ import annotations

import pytest

from gateway.signaling.grace import GraceQueue, MemoryGraceQueue, PushResult, Queued
from gateway.signaling.redis import RedisGraceQueue
from tests.contract.conftest import StoreBackend

R = "6f9c1f7e-0000-4000-8000-000000000001"


@pytest.fixture
def grace(store_backend: StoreBackend) -> GraceQueue:
    if store_backend.client is None:
        return MemoryGraceQueue()
    return RedisGraceQueue(store_backend.client, wall=store_backend.clock)


def item(n: int) -> Queued:
    return Queued("alice", "offer", b'{"sdp":"v=0 %d"}' % n)


async def test_push_needs_an_open_grace_period(grace: GraceQueue) -> None:
    assert await grace.push(R, "bob", item(1), 10) is PushResult.ABSENT
    assert await grace.claim(R, "bob") == []


async def test_queued_messages_are_claimed_in_order_once(
    grace: GraceQueue, store_backend: StoreBackend
) -> None:
    now = store_backend.clock()
    await grace.open(R, "bob", now + 30)
    for n in range(3):
        assert await grace.push(R, "bob", item(n), 10) is PushResult.QUEUED

    assert await grace.claim(R, "bob") == [item(0), item(1), item(2)]
    assert await grace.claim(R, "bob") == []
    assert await grace.push(R, "bob", item(9), 10) is PushResult.ABSENT


async def test_queue_is_bounded(grace: GraceQueue, store_backend: StoreBackend) -> None:
    await grace.open(R, "bob", store_backend.clock() + 30)
    assert [await grace.push(R, "bob", item(n), 2) for n in range(3)] == [
        PushResult.QUEUED,
        PushResult.QUEUED,
        PushResult.FULL,
    ]
    assert await grace.claim(R, "bob") == [item(0), item(1)]


async def test_expire_only_after_the_deadline(
    grace: GraceQueue, store_backend: StoreBackend
) -> None:
    now = store_backend.clock()
    await grace.open(R, "bob", now + 10)
    await grace.push(R, "bob", item(1), 10)

    assert await grace.expire(R, "bob", now + 5) is None
    await grace.open(R, "bob", now + 20)  # extended; the queue is kept
    assert await grace.expire(R, "bob", now + 15) is None
    assert await grace.expire(R, "bob", now + 20) == [item(1)]
    assert await grace.expire(R, "bob", now + 25) is None
    assert await grace.push(R, "bob", item(2), 10) is PushResult.ABSENT


async def test_open_never_shortens_and_slots_are_per_room_and_user(
    grace: GraceQueue, store_backend: StoreBackend
) -> None:
    now = store_backend.clock()
    await grace.open(R, "bob", now + 20)
    await grace.open(R, "bob", now + 5)
    await grace.open("other-room", "bob", now + 20)
    await grace.push(R, "bob", item(1), 10)

    assert await grace.expire(R, "bob", now + 10) is None
    assert await grace.claim("other-room", "bob") == []
    assert await grace.push(R, "carol", item(1), 10) is PushResult.ABSENT
    assert await grace.expire(R, "bob", now + 21) == [item(1)]
