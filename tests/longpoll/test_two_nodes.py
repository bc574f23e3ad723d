"""Two gateway processes sharing Redis: requests for one session land on either node."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.longpoll.conftest import LongPollClient
from tests.longpoll.wire import collect, fields
from tests.support.gateway_proc import GatewayFactory, GatewayProcess

pytestmark = pytest.mark.redis

SECRET = "shared-long-poll-secret"
JOIN = ["1", "1", "echo:two", "phx_join", {}]


async def start_node(gateway: GatewayFactory, redis_url: str, node: str) -> GatewayProcess:
    return await gateway(
        "--redis-url", redis_url, "--node-id", node, "--longpoll-secret", SECRET,
        "--longpoll-window-ms", "1000", "--longpoll-pubsub-timeout-ms", "500",
        "--no-rate-limits",
    )  # fmt: skip


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def on(client: LongPollClient, gw: GatewayProcess) -> LongPollClient:
    """The same session (token) spoken to through another node."""
    other = LongPollClient(client.http, f"{gw.url}/socket/longpoll")
    other.token = client.token
    return other


async def test_one_session_served_through_both_nodes(
    gateway: GatewayFactory, redis_url: str, http: aiohttp.ClientSession
) -> None:
    a = await start_node(gateway, redis_url, "node-a")
    b = await start_node(gateway, redis_url, "node-b")
    via_a = LongPollClient(http, f"{a.url}/socket/longpoll")
    await via_a.open()  # the session lives on node-a
    via_b = on(via_a, b)

    assert (await via_b.post(JOIN)).json == {"status": 200}
    [joined] = await collect(via_b, 1)
    assert fields(joined)[1:4] == ("1", "echo:two", "phx_reply")
    empty = await via_a.get()
    assert (empty.status, empty.json["token"]) == (204, via_a.token)

    # A GET held through node-b is completed by a POST that lands on node-a.
    held = asyncio.create_task(via_b.get())
    await asyncio.sleep(0.2)
    assert (await via_a.post(["1", "2", "echo:two", "hi", {"n": 2}])).json == {"status": 200}
    reply = await held
    assert reply.status == 200 and reply.json["token"] == via_a.token
    assert [fields(m)[1:5] for m in reply.messages] == [
        ("2", "echo:two", "phx_reply", {"response": {"n": 2}, "status": "ok"})
    ]

    # Bad input forwarded: the owner's HTTP 400 comes back, and the session goes on.
    bad = await via_b.post_raw(b"!!!")
    assert (bad.http_status, bad.raw) == (400, b"")
    assert (await via_b.post(["1", "3", "echo:two", "hi", {"n": 3}])).json == {"status": 200}
    [three] = await collect(via_a, 1)
    assert fields(three)[1] == "3"


async def test_broadcast_reaches_a_session_polled_through_the_other_node(
    gateway: GatewayFactory, redis_url: str, http: aiohttp.ClientSession
) -> None:
    a = await start_node(gateway, redis_url, "node-a")
    b = await start_node(gateway, redis_url, "node-b")
    first = LongPollClient(http, f"{a.url}/socket/longpoll")
    second = LongPollClient(http, f"{b.url}/socket/longpoll")
    for client in (first, second):
        await client.open()
        await client.post(JOIN)
        await collect(client, 1)
    await asyncio.sleep(0.2)  # both nodes' subscriptions reach Redis
    await on(second, a).post(["1", "5", "echo:two", "broadcast", {"from": "second"}])
    got = [fields(m) for m in await collect(on(first, b), 1)]
    assert got == [(None, None, "echo:two", "broadcast", {"from": "second"})]


async def test_owner_gone_means_session_gone(
    gateway: GatewayFactory, redis_url: str, http: aiohttp.ClientSession
) -> None:
    a = await start_node(gateway, redis_url, "node-a")
    b = await start_node(gateway, redis_url, "node-b")
    via_a = LongPollClient(http, f"{a.url}/socket/longpoll")
    await via_a.open()
    via_b = on(via_a, b)
    assert (await via_b.post(JOIN)).json == {"status": 200}

    # A frozen owner answers nothing: after the pubsub timeout the session counts as gone.
    assert a.proc is not None
    a.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert (await via_b.post(JOIN)).json == {"status": 410}
        assert 0.4 < time.monotonic() - started < 3.0
    finally:
        a.proc.send_signal(signal.SIGCONT)

    # A dead owner acknowledges nothing either: gone after the pubsub timeout, as Phoenix
    # decides it, and a GET opens anew on b.
    await a.kill()
    started = time.monotonic()
    assert (await via_b.post(JOIN)).json == {"status": 410}
    assert time.monotonic() - started < 3.0
    fresh = await via_b.get()
    assert fresh.status == 410 and fresh.json["token"] != via_a.token
