"""The Redis pub/sub adapter against a real redis-server: subscriptions, batching and outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aredis

from gateway.pubsub.core import PubSub
from gateway.pubsub.redis import RedisPubSubAdapter
from tests.contract.conftest import Recorder
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def channels(url: str) -> set[bytes]:
    client = aredis.Redis.from_url(url)
    try:
        return set(await client.pubsub_channels())
    finally:
        await client.aclose()


def node(name: str, url: str, **kwargs: object) -> PubSub:
    return PubSub(name, RedisPubSubAdapter(url, name, backoff_max_s=0.1, **kwargs))  # type: ignore[arg-type]


async def test_only_keys_with_local_subscribers_are_subscribed(redis_server: RedisServer) -> None:
    ps = node("n1", redis_server.url)
    await ps.start()
    try:
        a1, a2, b = Recorder("a1"), Recorder("a2"), Recorder("b")
        ps.subscribe("room:a", a1)
        ps.subscribe("room:a", a2)
        ps.subscribe("room:b", b)
        await ps.adapter.flush()  # type: ignore[attr-defined]
        assert await channels(redis_server.url) == {b"gw:room:a", b"gw:room:b"}

        ps.unsubscribe("room:a", a1)
        await ps.adapter.flush()  # type: ignore[attr-defined]
        assert await channels(redis_server.url) == {b"gw:room:a", b"gw:room:b"}
        ps.unsubscribe("room:a", a2)
        ps.unsubscribe("room:b", b)
        await ps.adapter.flush()  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        assert await channels(redis_server.url) == set()
    finally:
        await ps.stop()


async def test_publishes_of_one_loop_iteration_share_one_pipeline(
    redis_server: RedisServer,
) -> None:
    sender, receiver = node("n1", redis_server.url), node("n2", redis_server.url)
    await sender.start()
    await receiver.start()
    try:
        rec = Recorder("r")
        receiver.subscribe("room:a", rec)
        await receiver.adapter.flush()  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        for n in range(1000):
            sender.broadcast("room:a", "n", {"n": n})
        await rec.wait_for(1000)
        adapter = sender.adapter
        assert isinstance(adapter, RedisPubSubAdapter)
        assert adapter.published == 1000
        assert adapter.batches <= 3, adapter.stats()
        assert [p["n"] for _, _, p in rec.values()] == list(range(1000))
    finally:
        await sender.stop()
        await receiver.stop()


async def test_outage_local_delivery_goes_on_publishes_buffered_and_flushed(
    redis_server: RedisServer,
) -> None:
    a, b = node("n1", redis_server.url), node("n2", redis_server.url)
    await a.start()
    await b.start()
    try:
        local, remote = Recorder("local"), Recorder("remote")
        a.subscribe("room:a", local)
        b.subscribe("room:a", remote)
        await b.adapter.flush()  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        a.broadcast("room:a", "n", {"n": 0})
        await remote.wait_for(1)

        redis_server.kill()
        await until(lambda: not a.adapter.healthy and not b.adapter.healthy)
        for n in range(1, 6):
            assert a.broadcast("room:a", "n", {"n": n}) == 1  # local subscribers still served
        assert [p["n"] for _, _, p in local.values()] == list(range(6))
        adapter = a.adapter
        assert isinstance(adapter, RedisPubSubAdapter)
        assert adapter.backlog == 5

        redis_server.start()
        await until(lambda: a.adapter.healthy and b.adapter.healthy)
        await remote.wait_for(6)
        assert [p["n"] for _, _, p in remote.values()] == list(range(6))
        assert adapter.reconnects >= 1 and adapter.buffered >= 5 and adapter.dropped == 0
        assert isinstance(b.adapter, RedisPubSubAdapter) and b.adapter.received == 6
    finally:
        await a.stop()
        await b.stop()


async def test_outage_buffer_is_bounded_and_drops_the_oldest(redis_server: RedisServer) -> None:
    a, b = node("n1", redis_server.url, buffer_limit=3), node("n2", redis_server.url)
    await a.start()
    await b.start()
    try:
        remote = Recorder("remote")
        b.subscribe("room:a", remote)
        await b.adapter.flush()  # type: ignore[attr-defined]
        redis_server.kill()
        await until(lambda: not a.adapter.healthy)
        for n in range(8):
            a.broadcast("room:a", "n", {"n": n})
        redis_server.start()
        await remote.wait_for(3)
        await asyncio.sleep(0.1)
        assert [p["n"] for _, _, p in remote.values()] == [5, 6, 7]
        assert isinstance(a.adapter, RedisPubSubAdapter) and a.adapter.dropped == 5
    finally:
        await a.stop()
        await b.stop()


async def test_redis_down_at_start_then_up(redis_server: RedisServer) -> None:
    redis_server.kill()
    a, b = node("n1", redis_server.url), node("n2", redis_server.url)
    await a.start()
    await b.start()
    try:
        assert not a.adapter.healthy
        remote = Recorder("remote")
        b.subscribe("room:a", remote)
        a.broadcast("room:a", "early", {})
        redis_server.start()
        await until(lambda: a.adapter.healthy and b.adapter.healthy)
        await b.adapter.flush()  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        a.broadcast("room:a", "late", {})
        await remote.wait_for(1)
        # "early" may or may not have beaten b's SUBSCRIBE; "late" must arrive.
        assert [e for _, e, _ in remote.got][-1] == "late"
    finally:
        await a.stop()
        await b.stop()
