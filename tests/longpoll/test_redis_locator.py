"""`RedisSessionLocator` against a real redis-server: answers, 408, and owners that are gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.protocol import longpoll as rules
from gateway.runtime.longpoll_locator import LocalSessionLocator
from gateway.runtime.longpoll_redis import RedisSessionLocator

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


@pytest.fixture
async def requester(redis_url: str) -> AsyncIterator[RedisSessionLocator]:
    locator = RedisSessionLocator(redis_url, "requester", pubsub_timeout_s=0.3)
    await locator.start(echo_serve)
    yield locator
    await locator.stop()


async def test_forwarded_requests_get_the_owner_answer(
    redis_url: str, requester: RedisSessionLocator
) -> None:
    owner = RedisSessionLocator(redis_url, "owner", pubsub_timeout_s=0.3)
    await owner.start(echo_serve)
    try:
        answers = await asyncio.gather(
            *(requester.forward("owner", POST if i % 2 else POLL, 1.0) for i in range(20))
        )
        assert [a.body if a else None for a in answers] == [
            (b"post:" + POST.body) if i % 2 else b"poll:" for i in range(20)
        ]
    finally:
        await owner.stop()


async def test_post_the_owner_cannot_finish_in_the_window_is_408(
    redis_url: str, requester: RedisSessionLocator
) -> None:
    owner = RedisSessionLocator(redis_url, "stuck", pubsub_timeout_s=0.3)
    await owner.start(never_serve)
    try:
        started = time.monotonic()
        answer = await requester.forward("stuck", POST, 0.2)
        assert answer == rules.Answer(200, b'{"status":408}')
        assert 0.45 <= time.monotonic() - started < 2.0  # window + pubsub timeout
        assert await requester.forward("stuck", POLL, 0.2) is None  # a GET: session gone
    finally:
        await owner.stop()


async def test_unknown_or_stopped_owner_is_gone_at_once(
    redis_url: str, requester: RedisSessionLocator
) -> None:
    owner = RedisSessionLocator(redis_url, "leaving", pubsub_timeout_s=0.3)
    await owner.start(echo_serve)
    assert await requester.forward("leaving", POLL, 1.0) is not None
    await owner.stop()
    for node in ("leaving", "never-existed"):
        started = time.monotonic()
        assert await requester.forward(node, POST, 1.0) is None
        assert time.monotonic() - started < 0.25


async def test_local_locator_reaches_no_other_node() -> None:
    local = LocalSessionLocator()
    await local.start(echo_serve)
    assert await local.forward("elsewhere", POST, 1.0) is None
    await local.stop()
