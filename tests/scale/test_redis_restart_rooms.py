"""A Redis restart or pause costs only the cross-node part: room channels on both nodes stay up,
same-node offers keep flowing, presence is back in the restarted Redis within one refresh, and
`/readyz` says degraded while Redis does not answer (two gateway processes, a real Redis killed,
restarted and SIGSTOPped, phoenix.js clients)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.scale.conftest import TwoNodes
from tests.support.node_client import NodeClient, NodeClientFactory

pytestmark = [pytest.mark.js, pytest.mark.redis]


def readyz(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def _offers(sender: NodeClient, to: str, numbers: range) -> None:
    for n in numbers:
        reply = await sender.push("c", "offer", {"sdp": f"v=0 {n}", "to": to}, timeout=10)
        assert reply["status"] == "ok", (n, reply)


async def _received(receiver: NodeClient, count: int) -> list[int]:
    got = [await receiver.expect_ev("message", 10, event="offer") for _ in range(count)]
    return [int(m["payload"]["sdp"].split()[1]) for m in got]


def _no_channel_error(*clients: NodeClient) -> None:
    for client in clients:
        errors = [e for e in client.pending() if e.get("ev") in ("channel_error", "error")]
        assert not errors, errors


async def test_room_channels_survive_a_redis_restart_and_presence_comes_back(
    two_nodes: TwoNodes, node_client: NodeClientFactory
) -> None:
    topic = f"room:{uuid.uuid4()}"
    ann = await node_client(two_nodes.a.ws_url, params={"token": "ann"})
    bob = await node_client(two_nodes.a.ws_url, params={"token": "bob"})
    cat = await node_client(two_nodes.b.ws_url, params={"token": "cat"})
    for c in (ann, bob, cat):
        assert (await c.join("c", topic))["status"] == "ok"
    for c in (ann, bob, cat):
        await c.expect(lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 3, 5)

    await _offers(ann, "bob", range(0, 10))
    two_nodes.redis.kill()
    await asyncio.sleep(0.3)
    # Same-node signaling goes on while Redis is down: every push answered, in order.
    await _offers(ann, "bob", range(10, 40))
    # Cross-node offers acknowledged during the outage wait in the sender's buffer.
    await _offers(cat, "ann", range(300, 310))
    two_nodes.redis.start()
    await _offers(ann, "bob", range(40, 50))
    assert await _received(bob, 50) == list(range(50))
    assert await _received(ann, 10) == list(range(300, 310))
    _no_channel_error(ann, bob, cat)

    # Within one refresh period (ttl 2 s / 3 here) both nodes have put their members back.
    deadline = time.monotonic() + 5
    while True:
        newcomer = await node_client(two_nodes.b.ws_url, params={"token": f"new{time.time_ns()}"})
        await newcomer.join("c", topic)
        sync = await newcomer.expect_ev("presence_sync", 5)
        keys = sorted(p["key"] for p in sync["list"])
        await newcomer.close()
        if {"ann", "bob", "cat"} <= set(keys):
            break
        assert time.monotonic() < deadline, keys
        await asyncio.sleep(0.3)
    # Cross-node offers reach members known again from the restarted Redis.
    await _offers(cat, "ann", range(100, 105))
    assert await _received(ann, 5) == list(range(100, 105))
    await _offers(ann, "cat", range(200, 205))
    assert await _received(cat, 5) == list(range(200, 205))
    _no_channel_error(ann, bob, cat)


async def test_a_paused_redis_stalls_no_reply_and_readyz_says_degraded(
    two_nodes: TwoNodes, node_client: NodeClientFactory
) -> None:
    topic = f"room:{uuid.uuid4()}"
    ann = await node_client(two_nodes.a.ws_url, params={"token": "ann"})
    bob = await node_client(two_nodes.a.ws_url, params={"token": "bob"})
    for c in (ann, bob):
        assert (await c.join("c", topic))["status"] == "ok"
    await bob.expect(lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 2, 5)
    # One offer through before the pause: bob's join (its grace-queue claim, a Redis call) is
    # done, so what follows measures the pause alone.
    await _offers(ann, "bob", range(-1, 0))
    assert await _received(bob, 1) == [-1]
    assert two_nodes.redis.proc is not None
    pid = two_nodes.redis.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        slowest = 0.0
        for n in range(20):
            started = time.monotonic()
            await _offers(ann, "bob", range(n, n + 1))
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 1.0, f"a reply took {slowest:.2f}s with Redis paused"
        # Noticed within two health intervals (1 s each) of silence.
        deadline = time.monotonic() + 5
        while (await asyncio.to_thread(readyz, two_nodes.a.url))[0] != 503:
            assert time.monotonic() < deadline, "still ready 5 s into the pause"
            await asyncio.sleep(0.2)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert await _received(bob, 20) == list(range(20))
    deadline = time.monotonic() + 10
    while (await asyncio.to_thread(readyz, two_nodes.a.url))[0] != 200:
        assert time.monotonic() < deadline, "still not ready 10 s after Redis resumed"
        await asyncio.sleep(0.2)
