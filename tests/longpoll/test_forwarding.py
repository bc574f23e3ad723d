"""`PubSubSessionLocator` over the Redis pub/sub adapter and a real redis-server: answers, 408,
and owners that are gone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.protocol import longpoll as rules
from gateway.pubsub.core import PubSub
from gateway.pubsub.redis import RedisPubSubAdapter
from gateway.runtime.longpoll_forward import PubSubSessionLocator
from gateway.runtime.longpoll_locator import LocalSessionLocator, Serve
from tests.support.redis_cluster import LocalRedisCluster

pytestmark = pytest.mark.redis

POLL = rules.Forwarded(rules.POLL, "s1", "tok")
POST = rules.Forwarded(rules.POST, "s1", "tok", b'["1","1","t","e",{}]', rules.NDJSON)


async def echo_serve(request: rules.Forwarded) -> rules.Answer:
    await asyncio.sleep(0.05)  # an owner that holds a GET a little, as a poll does
    return rules.Answer(200, request.kind.encode() + b":" + request.body)


async def never_serve(request: rules.Forwarded) -> rules.Answer:
    """Phoenix's test 54: a socket whose message handling never finishes."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


Start = Callable[[str, Serve], Awaitable[PubSubSessionLocator]]


@pytest.fixture
async def node(redis_url: str) -> AsyncIterator[Start]:
    """Starts a node's locator on its own pub/sub (its own Redis connections)."""
    started: list[tuple[PubSub, PubSubSessionLocator]] = []

    async def start(name: str, serve: Serve) -> PubSubSessionLocator:
        pubsub = PubSub(name, RedisPubSubAdapter(redis_url, name))
        await pubsub.start()
        locator = PubSubSessionLocator(pubsub, name, pubsub_timeout_s=0.3)
        await locator.start(serve)
        started.append((pubsub, locator))
        # SUBSCRIBE is sent by the adapter's flusher: wait until Redis has it.
        adapter = pubsub.adapter
        assert isinstance(adapter, RedisPubSubAdapter)
        for _ in range(100):
            with contextlib.suppress(ConnectionError):
                await adapter.flush()
                break
            await asyncio.sleep(0.02)
        return locator

    yield start
    for pubsub, locator in started:
        await locator.stop()
        await pubsub.stop()


async def stop(locator: PubSubSessionLocator) -> None:
    await locator.stop()
    adapter = locator.pubsub.adapter
    assert isinstance(adapter, RedisPubSubAdapter)
    await adapter.flush()  # the UNSUBSCRIBE reaches Redis


async def test_forwarded_requests_get_the_owner_answer(node: Start) -> None:
    requester = await node("requester", echo_serve)
    await node("owner", echo_serve)
    answers = await asyncio.gather(
        *(requester.forward("owner", POST if i % 2 else POLL, 1.0) for i in range(20))
    )
    assert [a.body if a else None for a in answers] == [
        (b"post:" + POST.body) if i % 2 else b"poll:" for i in range(20)
    ]


async def test_post_the_owner_cannot_finish_in_the_window_is_408(node: Start) -> None:
    requester = await node("requester", echo_serve)
    await node("stuck", never_serve)
    started = time.monotonic()
    answer = await requester.forward("stuck", POST, 0.2)
    assert answer == rules.Answer(200, b'{"status":408}')
    assert 0.45 <= time.monotonic() - started < 2.0  # window + pubsub timeout
    assert await requester.forward("stuck", POLL, 0.2) is None  # a GET: session gone


async def test_unknown_or_stopped_owner_is_gone_after_the_pubsub_timeout(node: Start) -> None:
    requester = await node("requester", echo_serve)
    owner = await node("leaving", echo_serve)
    assert await requester.forward("leaving", POLL, 1.0) is not None
    await stop(owner)
    for name in ("leaving", "never-existed"):
        started = time.monotonic()
        assert await requester.forward(name, POST, 1.0) is None
        # Nobody acknowledged within the pubsub timeout (0.3 s), as Phoenix decides it.
        assert 0.25 <= time.monotonic() - started < 1.0


async def test_forwarding_over_a_redis_cluster(redis_cluster: LocalRedisCluster) -> None:
    """With --redis-cluster the locator rides the sharded pub/sub like broadcasts do; the two
    nodes are seeded from different primaries."""
    pairs = []
    for name, port in (("requester", redis_cluster.ports[0]), ("owner", redis_cluster.ports[1])):
        url = f"redis://127.0.0.1:{port}/0"
        pubsub = PubSub(name, RedisPubSubAdapter(url, name, cluster=True))
        await pubsub.start()
        locator = PubSubSessionLocator(pubsub, name, pubsub_timeout_s=1.0)
        await locator.start(echo_serve)
        pairs.append((pubsub, locator))
    try:
        requester = pairs[0][1]
        deadline = time.monotonic() + 10
        answer = None
        while answer is None:  # until both nodes' subscriptions reached their shards
            assert time.monotonic() < deadline, "no answer through the cluster"
            answer = await requester.forward("owner", POST, 1.0)
        assert answer.body == b"post:" + POST.body
        answers = await asyncio.gather(*(requester.forward("owner", POLL, 1.0) for _ in range(10)))
        assert [a.body if a else None for a in answers] == [b"poll:"] * 10
    finally:
        for pubsub, locator in pairs:
            await locator.stop()
            await pubsub.stop()


async def test_local_locator_reaches_no_other_node() -> None:
    local = LocalSessionLocator()
    await local.start(echo_serve)
    assert await local.forward("elsewhere", POST, 1.0) is None
    await local.stop()
