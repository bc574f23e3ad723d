"""Fixtures for the contract suites: each backend interface in memory, on Redis, on a Redis Cluster."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import msgspec
import pytest
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster

from gateway.pubsub.core import FrameCache, PubSub
from gateway.pubsub.redis import RedisPubSubAdapter
from tests.support.redis_cluster import LocalRedisCluster
from tests.support.redis_server import RedisServer


class Recorder:
    """A pub/sub subscriber that keeps what it is given, for assertions."""

    def __init__(self, sub_id: str) -> None:
        self.sub_id = sub_id
        self.got: list[tuple[str, str, Any]] = []
        self._changed = asyncio.Event()

    def deliver(self, topic: str, event: str, payload: Any, frames: FrameCache) -> None:
        self.got.append((topic, event, payload))
        self._changed.set()

    def values(self) -> list[tuple[str, str, Any]]:
        """What arrived, with relayed `msgspec.Raw` payloads decoded to plain values."""
        return [(t, e, decoded(p)) for t, e, p in self.got]

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.sub_id} got {len(self.got)} of {count}: {self.got}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue


def decoded(payload: Any) -> Any:
    if isinstance(payload, msgspec.Raw):
        return msgspec.json.decode(payload)
    return payload


class PubSubNodes:
    """One node (in-memory adapter) or two nodes sharing Redis, as the contract sees them."""

    def __init__(self, nodes: list[PubSub], redis_url: str | None, cluster: bool = False) -> None:
        self.nodes = nodes
        self.redis_url = redis_url
        self.cluster = cluster

    def __getitem__(self, index: int) -> PubSub:
        """Node `index`, wrapping around: with one node every index is that node."""
        return self.nodes[index % len(self.nodes)]

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until Redis knows every node's subscriptions and has every publish so far."""
        if self.redis_url is None:
            return
        adapters = [n.adapter for n in self.nodes]
        assert all(isinstance(a, RedisPubSubAdapter) for a in adapters)
        expected: dict[bytes, int] = {}
        for adapter in adapters:
            assert isinstance(adapter, RedisPubSubAdapter)
            await adapter.flush()
            for key in adapter.keys:
                channel = (adapter.prefix + key).encode()
                expected[channel] = expected.get(channel, 0) + 1
        if self.cluster:
            await _settle_sharded(self.redis_url, expected, timeout)
            return
        client = aredis.Redis.from_url(self.redis_url)
        try:
            deadline = time.monotonic() + timeout
            while True:
                counts = dict(await client.pubsub_numsub(*expected)) if expected else {}
                if all(counts.get(ch, 0) == n for ch, n in expected.items()):
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"subscriptions not settled: {counts} != {expected}")
                await asyncio.sleep(0.01)
        finally:
            await client.aclose()


async def _settle_sharded(url: str, expected: dict[bytes, int], timeout: float) -> None:
    """As `settle`, for sharded channels: each is counted on the primary owning its slot."""
    client = RedisCluster.from_url(url)
    try:
        await client.initialize()
        deadline = time.monotonic() + timeout
        while True:
            counts: dict[bytes, int] = {}
            for channel in expected:
                owner = client.get_node_from_key(channel.decode())
                [(_, n)] = await client.execute_command(
                    "PUBSUB SHARDNUMSUB", channel, target_nodes=owner
                )
                counts[channel] = int(n)
            if counts == expected:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"sharded subscriptions not settled: {counts} != {expected}")
            await asyncio.sleep(0.01)
    finally:
        await client.aclose()


NodesFactory = Callable[[], Awaitable[PubSubNodes]]


@pytest.fixture(params=["memory", "redis", "cluster"])
async def pubsub_nodes(
    request: pytest.FixtureRequest,
) -> AsyncIterator[PubSubNodes]:
    """The pub/sub under contract: `memory` is one node, `redis` two nodes on one redis-server,
    `cluster` two nodes on a 3-primary Redis Cluster (sharded pub/sub)."""
    started: list[PubSub] = []
    url: str | None = None
    cluster = request.param == "cluster"
    if request.param == "memory":
        started.append(PubSub("n1"))
    else:
        if cluster:
            url = cast(LocalRedisCluster, request.getfixturevalue("redis_cluster")).url
        else:
            url = cast(RedisServer, request.getfixturevalue("redis_server")).url
        for name in ("n1", "n2"):
            started.append(PubSub(name, RedisPubSubAdapter(url, name, cluster=cluster)))
    for node in started:
        await node.start()
    try:
        yield PubSubNodes(started, url, cluster)
    finally:
        for node in started:
            await node.stop()


class Clock:
    """Wall time that tests move by hand (memory backends), or real time (Redis backends)."""

    def __init__(self, real: bool) -> None:
        self.real = real
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return time.time() if self.real else self.now

    async def advance(self, seconds: float) -> None:
        if self.real:
            await asyncio.sleep(seconds)
        else:
            self.now += seconds


class StoreBackend:
    """Which backend a store contract runs on, and its clock."""

    def __init__(self, name: str, client: aredis.Redis | RedisCluster | None) -> None:
        self.name = name
        self.client = client
        self.clock = Clock(real=client is not None)


@pytest.fixture(params=["memory", "redis", "cluster"])
async def store_backend(request: pytest.FixtureRequest) -> AsyncIterator[StoreBackend]:
    """A store's backend: memory, one redis-server, or a 3-primary Redis Cluster."""
    async with open_store_backend(request, request.param) as backend:
        yield backend


@contextlib.asynccontextmanager
async def open_store_backend(
    request: pytest.FixtureRequest, name: str
) -> AsyncIterator[StoreBackend]:
    """`store_backend` for one backend name (other fixtures parametrise over more backends)."""
    client: aredis.Redis | RedisCluster
    if name == "memory":
        yield StoreBackend("memory", None)
        return
    if name == "cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        client = RedisCluster.from_url(cluster.url)
        # Read the slot map before the tests' concurrent first commands: redis-py 8.1's lazy
        # initialisation races under asyncio.gather (a command on a connection being replaced
        # fails with AttributeError). The gateway reads it in its startup presence refresh.
        await client.initialize()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        client = aredis.Redis.from_url(server.url)
    try:
        yield StoreBackend(name, client)
    finally:
        await client.aclose()
