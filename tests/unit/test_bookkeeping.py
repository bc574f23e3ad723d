"""The Bookkeeper: store writes made later, off the caller's path, in order, bounded."""

from __future__ import annotations

import asyncio

from gateway.signaling.bookkeeping import Bookkeeper


class Log:
    def __init__(self) -> None:
        self.made: list[int] = []

    async def quick(self, n: int) -> None:
        self.made.append(n)

    async def slow(self, n: int) -> None:
        await asyncio.sleep(0.01)  # a store that waits on the network
        self.made.append(n)

    async def broken(self, n: int) -> None:
        raise ConnectionError("store down")


async def test_writes_are_made_later_in_order() -> None:
    keeper, log = Bookkeeper(), Log()
    for n in range(50):
        keeper.add(log.quick, n)
    assert log.made == []  # nothing on the caller's path
    await keeper.flush()
    assert log.made == list(range(50))
    assert len(keeper) == 0


async def test_flush_waits_for_what_is_queued_and_order_holds_across_waits() -> None:
    keeper, log = Bookkeeper(), Log()
    keeper.add(log.slow, 1)
    keeper.add(log.quick, 2)
    keeper.add(log.slow, 3)
    await keeper.flush()
    assert log.made == [1, 2, 3]
    keeper.add(log.quick, 4)
    await keeper.flush()
    assert log.made == [1, 2, 3, 4]
    await keeper.flush()  # nothing queued: returns at once


async def test_a_write_added_while_another_waits_goes_after_it() -> None:
    keeper, log = Bookkeeper(), Log()
    keeper.add(log.slow, 1)
    await asyncio.sleep(0.005)  # the task is in the slow write now
    keeper.add(log.quick, 2)
    await keeper.flush()
    assert log.made == [1, 2]


async def test_failures_are_counted_and_the_rest_is_written() -> None:
    keeper, log = Bookkeeper(), Log()
    keeper.add(log.broken, 1)
    keeper.add(log.quick, 2)
    await keeper.flush()
    assert (keeper.failed, log.made) == (1, [2])


async def test_past_the_limit_the_oldest_writes_are_dropped() -> None:
    keeper, log = Bookkeeper(limit=3), Log()
    for n in range(5):
        keeper.add(log.quick, n)
    await keeper.flush()
    assert (keeper.dropped, log.made) == (2, [2, 3, 4])


async def test_an_inline_write_is_made_at_once_unless_others_are_queued() -> None:
    keeper, log = Bookkeeper(), Log()
    made_now: list[int] = []

    def now(n: int) -> None:
        made_now.append(n)
        log.made.append(n)

    keeper.add(log.quick, 1, inline=now)
    assert made_now == [1] and len(keeper) == 0  # no task, no queue
    keeper.add(log.slow, 2)
    keeper.add(log.quick, 3, inline=now)  # behind the slow write: queued, made in order
    assert made_now == [1]
    await keeper.flush()
    assert log.made == [1, 2, 3]
    keeper.add(log.quick, 4, inline=now)
    assert made_now == [1, 4]


async def test_an_inline_write_that_fails_is_counted_like_a_queued_one() -> None:
    keeper = Bookkeeper()

    def broken(n: int) -> None:
        raise ValueError("bad record")

    keeper.add(Log().quick, 1, inline=broken)
    assert (keeper.failed, keeper.failing) == (1, 1)
    keeper.add(Log().quick, 2, inline=lambda n: None)
    assert (keeper.failed, keeper.failing) == (1, 0)
