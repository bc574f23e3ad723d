"""Two gateway processes sharing one real redis-server, and the pieces the scale tests share."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aredis

from gateway.pubsub.adapter import Envelope
from gateway.pubsub.redis import CHANNEL_PREFIX, encode_envelope
from tests.scale.proxy import RoundRobinProxy
from tests.support.gateway_proc import GatewayFactory, GatewayProcess
from tests.support.redis_server import RedisServer


def node_env(redis_url: str, node: str, **extra: str) -> dict[str, str]:
    return {
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_NODE_ID": node,
        "GATEWAY_TRUST_TOKEN_AS_USER_ID": "true",
        "GATEWAY_RATE_LIMITS": "false",
        "GATEWAY_PRESENCE_COALESCE_MS": "20",
        "GATEWAY_REDIS_BACKOFF_MAX_MS": "200",
        **extra,
    }


class TwoNodes:
    def __init__(self, a: GatewayProcess, b: GatewayProcess, redis: RedisServer) -> None:
        self.a = a
        self.b = b
        self.redis = redis


@pytest.fixture
async def two_nodes(gateway: GatewayFactory, redis_server: RedisServer) -> TwoNodes:
    """Gateways `a` and `b` on their own ports, sharing rooms through one Redis."""
    a = await gateway(env=node_env(redis_server.url, "node-a", GATEWAY_PRESENCE_TTL_S="2"))
    b = await gateway(env=node_env(redis_server.url, "node-b", GATEWAY_PRESENCE_TTL_S="2"))
    return TwoNodes(a, b, redis_server)


@pytest.fixture
async def proxy(two_nodes: TwoNodes) -> AsyncIterator[RoundRobinProxy]:
    """Both nodes behind one address, round-robin, skipping a node that refuses."""
    p = RoundRobinProxy([two_nodes.a.port, two_nodes.b.port])
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def publish_from_outside(redis_url: str, key: str, event: str, payload: object) -> int:
    """Broadcast as a node without subscribers would (an ops tool, say); Redis receivers."""
    client = aredis.Redis.from_url(redis_url)
    try:
        env = Envelope("ops", key, key, event, msgspec.json.encode(payload))
        return int(await client.publish(CHANNEL_PREFIX + key, encode_envelope(env)))
    finally:
        await client.aclose()


async def wait_subscribed(redis_url: str, key: str, nodes: int, timeout: float = 5.0) -> None:
    """Wait until `nodes` nodes subscribe to `key` in Redis (a join's SUBSCRIBE is async)."""
    import asyncio
    import time

    client = aredis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            [(_, count)] = await client.pubsub_numsub(CHANNEL_PREFIX + key)
            if count >= nodes:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{key}: {count} of {nodes} nodes subscribed")
            await asyncio.sleep(0.02)
    finally:
        await client.aclose()


def scrape(port: int) -> dict[str, float]:
    """Sample name with labels -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def total(samples: dict[str, float], family: str, **labels: str) -> float:
    out = 0.0
    for key, value in samples.items():
        name = key.split("{", 1)[0]
        if name != family:
            continue
        if all(f'{k}="{v}"' in key for k, v in labels.items()):
            out += value
    return out
