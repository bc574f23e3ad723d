"""Faults with real processes: Redis restarted mid-session, a node killed under traffic, workers."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
import uuid

import aiohttp
import pytest

from tests.scale.conftest import TwoNodes, node_env, wait_subscribed
from tests.scale.proxy import RoundRobinProxy
from tests.support.gateway_proc import GatewayFactory
from tests.support.node_client import NodeClientFactory
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.js, pytest.mark.redis]


def readyz(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_redis_restart_mid_session_loses_no_message(
    two_nodes: TwoNodes, node_client: NodeClientFactory
) -> None:
    ann = await node_client(two_nodes.a.ws_url, params={"token": "ann"})
    bob = await node_client(two_nodes.b.ws_url, params={"token": "bob"})
    topic = f"echo:{uuid.uuid4()}"
    await ann.join("e", topic)
    await bob.join("e", topic)
    await wait_subscribed(two_nodes.redis.url, topic, 2)
    for n in range(5):
        await ann.push("e", "broadcast", {"n": n})

    two_nodes.redis.kill()
    await asyncio.sleep(0.3)
    status, body = await asyncio.to_thread(readyz, two_nodes.a.url)
    assert status == 503 and body["status"] == "degraded"
    for n in range(5, 15):  # sent while Redis is down: ann's own node still echoes them
        assert (await ann.push("e", "broadcast", {"n": n}))["status"] == "ok"
    two_nodes.redis.start()
    for n in range(15, 20):
        await ann.push("e", "broadcast", {"n": n})

    for client in (ann, bob):
        got = [await client.expect_ev("message", event="broadcast", timeout=10) for _ in range(20)]
        assert [m["payload"]["n"] for m in got] == list(range(20))
    status, body = await asyncio.to_thread(readyz, two_nodes.a.url)
    assert status == 200 and body["status"] == "ready"


async def test_killed_node_clients_reconnect_to_the_other_and_carry_on(
    two_nodes: TwoNodes, proxy: RoundRobinProxy, node_client: NodeClientFactory
) -> None:
    topic = f"room:{uuid.uuid4()}"
    clients = [
        await node_client(proxy.ws_url, params={"token": f"u{i}"}, fast_reconnect=True)
        for i in range(4)
    ]
    for c in clients:
        assert (await c.join("c", topic))["status"] == "ok"
    for c in clients:
        await c.expect(lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 4, 5)

    # Traffic, then SIGKILL node a mid-stream.
    for n in range(3):
        await clients[n % 4].push("c", "new_msg", {"body": f"before {n}"})
    await two_nodes.a.kill()

    # Everyone whose node died reconnects through the proxy to node b and rejoins.
    for c in clients:
        await c.expect(
            lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 4 and
            all(len(p["metas"]) >= 1 for p in e["list"]), 10
        )  # fmt: skip
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        states = [await c.state() for c in clients]
        if all(s["socket"] == "open" and s["channels"]["c"] == "joined" for s in states):
            break
        assert asyncio.get_running_loop().time() < deadline, states
        await asyncio.sleep(0.1)
    sent = await clients[0].push("c", "new_msg", {"body": "after the crash"})
    assert sent["status"] == "ok"
    for c in clients:
        chat = await c.expect(
            lambda e: e.get("event") == "new_msg" and e["payload"]["body"] == "after the crash", 5
        )
        assert chat["payload"]["from"] == "u0"

    # The dead node's presence entries expire (TTL 2 s here): every list ends with one meta
    # per user, the one made by the rejoin on node b.
    async def settled() -> list[object]:
        return [sorted((p["key"], len(p["metas"])) for p in await c.presence("c")) for c in clients]

    want = [sorted((f"u{i}", 1) for i in range(4))] * 4
    deadline = asyncio.get_running_loop().time() + 10
    while (got := await settled()) != want:
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.2)


async def test_workers_share_one_port_and_rooms(
    gateway: GatewayFactory, redis_server: RedisServer, node_client: NodeClientFactory
) -> None:
    gw = await gateway("--workers", "2", env=node_env(redis_server.url, "w"))
    topic = f"echo:{uuid.uuid4()}"
    clients = [await node_client(gw.ws_url, params={"token": f"u{i}"}) for i in range(6)]
    for c in clients:
        await c.join("e", topic)
    # SO_REUSEPORT spreads connections by a hash of the client's port, and a worker that is
    # still starting gets none: add clients until both workers (nodes w-0 and w-1) have one.
    while len(clients) < 60:
        try:
            await wait_subscribed(redis_server.url, topic, 2, timeout=1)
            break
        except AssertionError:
            extra = await node_client(gw.ws_url, params={"token": f"u{len(clients)}"})
            await extra.join("e", topic)
            clients.append(extra)
    await wait_subscribed(redis_server.url, topic, 2, timeout=10)

    await clients[0].push("e", "broadcast", {"hello": "all"})
    for c in clients:
        assert (await c.expect_ev("message", event="broadcast"))["payload"] == {"hello": "all"}

    # Whichever worker answers a scrape, the page covers the whole host (multiprocess mode),
    # once each worker has folded its tallies into the files (once a second, docs/observability.md).
    expected = [f'gateway_channel_joins_total{{result="ok"}} {len(clients)}.0']

    async def joins(http: aiohttp.ClientSession) -> list[str]:
        async with http.get(f"{gw.url}/metrics") as resp:
            page = await resp.text()
        prefix = 'gateway_channel_joins_total{result="ok"}'
        return [line for line in page.splitlines() if line.startswith(prefix)]

    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 5
        while await joins(http) != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        for _ in range(4):
            assert await joins(http) == expected

    gw.send_signal(signal.SIGTERM)
    assert await gw.wait(15) == 0
