"""Two gateway processes on a real 3-primary Redis Cluster (`--redis-cluster`), phoenix.js on each."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster

from gateway.pubsub.redis import CHANNEL_PREFIX
from tests.support.gateway_proc import GatewayFactory, GatewayProcess
from tests.support.node_client import NodeClientFactory
from tests.support.redis_cluster import LocalRedisCluster

pytestmark = [pytest.mark.js, pytest.mark.redis]

SDP = "v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"


class ClusterNodes:
    """Gateways `a` and `b`, each seeded with a different cluster node, and a cluster client."""

    def __init__(
        self, a: GatewayProcess, b: GatewayProcess, cluster: LocalRedisCluster, client: RedisCluster
    ) -> None:
        self.a = a
        self.b = b
        self.cluster = cluster
        self.client = client

    def owner(self, key: str) -> ClusterNode:
        node = self.client.get_node_from_key(key)
        assert node is not None, f"no primary owns the slot of {key!r}"
        return node

    async def wait_subscribed(self, key: str, nodes: int, timeout: float = 5.0) -> None:
        """Wait until `nodes` gateways hold a sharded subscription to `key` on its primary."""
        channel = CHANNEL_PREFIX + key
        owner = self.owner(channel)
        deadline = time.monotonic() + timeout
        while True:
            [(_, count)] = await self.client.execute_command(
                "PUBSUB SHARDNUMSUB", channel, target_nodes=owner
            )
            if int(count) >= nodes:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{channel} on {owner.name}: {count} of {nodes} subscribed")
            await asyncio.sleep(0.02)

    async def keys_by_primary(self, pattern: str) -> dict[str, list[bytes]]:
        """Keys matching `pattern` on each primary that has any."""
        found: dict[str, list[bytes]] = {}
        for node in self.client.get_primaries():
            keys = await self.client.execute_command("KEYS", pattern, target_nodes=node)
            if keys:
                found[node.name] = sorted(keys)
        return found


def cluster_args(url: str, node: str) -> list[str]:
    return ["--redis-url", url, "--redis-cluster", "--node-id", node, "--trust-token-as-user-id"]


TUNING = {
    "GATEWAY_RATE_LIMITS": "false",
    "GATEWAY_PRESENCE_COALESCE_MS": "20",
    "GATEWAY_PRESENCE_TTL_S": "2",
    "GATEWAY_REDIS_BACKOFF_MAX_MS": "200",
    "GATEWAY_REDIS_URL": None,  # the flags say where Redis is
}


@pytest.fixture
async def cluster_nodes(
    gateway: GatewayFactory, redis_cluster: LocalRedisCluster
) -> AsyncIterator[ClusterNodes]:
    # Each gateway is pointed at a different primary: any node is a valid seed for the slot map.
    url_b = f"redis://127.0.0.1:{redis_cluster.ports[1]}/0"
    a = await gateway(*cluster_args(redis_cluster.url, "node-a"), env=TUNING)
    b = await gateway(*cluster_args(url_b, "node-b"), env=TUNING)
    client = RedisCluster.from_url(redis_cluster.url)
    await client.initialize()
    try:
        yield ClusterNodes(a, b, redis_cluster, client)
    finally:
        await client.aclose()


def topics_on_every_primary(nodes: ClusterNodes) -> list[str]:
    """One echo topic per primary, so that every shard's connection carries a subscription."""
    by_owner: dict[str, str] = {}
    while len(by_owner) < len(nodes.cluster.ports):
        topic = f"echo:{uuid.uuid4()}"
        by_owner.setdefault(nodes.owner(CHANNEL_PREFIX + topic).name, topic)
    return list(by_owner.values())


async def test_echo_broadcasts_cross_nodes_on_every_shard_in_order(
    cluster_nodes: ClusterNodes, node_client: NodeClientFactory
) -> None:
    ann = await node_client(cluster_nodes.a.ws_url, params={"token": "ann"})
    bob = await node_client(cluster_nodes.b.ws_url, params={"token": "bob"})
    topics = topics_on_every_primary(cluster_nodes)
    for i, topic in enumerate(topics):
        assert (await ann.join(f"e{i}", topic))["status"] == "ok"
        assert (await bob.join(f"e{i}", topic))["status"] == "ok"
    for topic in topics:
        await cluster_nodes.wait_subscribed(topic, 2)

    # Order holds per publisher (as in Phoenix), so each topic has one sender; the senders
    # alternate between topics so that both directions cross the cluster.
    for n in range(10):
        for i in range(len(topics)):
            sender = ann if i % 2 == 0 else bob
            pushed = await sender.push(f"e{i}", "broadcast", {"n": n, "shard": i, "text": "żółw"})
            assert pushed["status"] == "ok"

    for client in (ann, bob):
        for i in range(len(topics)):
            got = [
                await client.expect_ev("message", event="broadcast", id=f"e{i}") for _ in range(10)
            ]
            assert [m["payload"] for m in got] == [
                {"n": n, "shard": i, "text": "żółw"} for n in range(10)
            ]
    assert not [e for c in (ann, bob) for e in c.pending() if e.get("event") == "broadcast"]


async def test_room_chat_offer_and_presence_across_nodes(
    cluster_nodes: ClusterNodes, node_client: NodeClientFactory
) -> None:
    topic = f"room:{uuid.uuid4()}"
    ann = await node_client(cluster_nodes.a.ws_url, params={"token": "ann"})
    bob = await node_client(cluster_nodes.b.ws_url, params={"token": "bob"})
    assert (await ann.join("c", topic, {"tracks": ["audio"]}))["response"] == {"user_id": "ann"}
    assert (await bob.join("c", topic, {"tracks": ["video"]}))["response"] == {"user_id": "bob"}

    # Presence lists agree on both nodes, read from the cluster's one copy of the room.
    lists = []
    for client in (ann, bob):
        await client.expect(lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 2, 5)
        lists.append({p["key"]: p["metas"] for p in await client.presence("c")})
    assert lists[0] == lists[1]
    assert lists[0]["ann"][0]["tracks"] == ["audio"] and lists[0]["bob"][0]["tracks"] == ["video"]

    # The room's presence keys share one hash tag: all on the primary that owns its slot.
    placed = await cluster_nodes.keys_by_primary(f"gw:p:{{{topic}}}*")
    assert list(placed) == [cluster_nodes.owner(f"gw:p:{{{topic}}}").name]
    assert len(placed[cluster_nodes.owner(f"gw:p:{{{topic}}}").name]) >= 4  # keys, seq, 2 users

    # An offer goes to the named member only, on the other node, through the shards.
    await cluster_nodes.wait_subscribed(f"{topic}#user:bob", 1)
    await cluster_nodes.wait_subscribed(f"{topic}#user:ann", 1)
    assert (await ann.push("c", "offer", {"sdp": SDP, "to": "bob"}))["status"] == "ok"
    offer = await bob.expect_ev("message", event="offer")
    assert offer["payload"]["from"] == "ann" and offer["payload"]["sdp"] == SDP
    assert not [e for e in ann.pending() if e.get("event") == "offer"]

    # Chat reaches both, with the id the sender was given.
    await cluster_nodes.wait_subscribed(topic, 2)
    sent = await bob.push("c", "new_msg", {"body": "hi from node b"})
    assert sent["status"] == "ok"
    for client in (ann, bob):
        chat = await client.expect_ev("message", event="new_msg")
        assert chat["payload"]["body"] == "hi from node b"
        assert chat["payload"]["id"] == sent["response"]["id"]

    # A leave on one node is a leave on the other.
    seen = {id(e) for e in ann.events}
    assert (await bob.leave("c"))["status"] == "ok"
    await ann.expect(
        lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 1 and id(e) not in seen, 5
    )
    assert [p["key"] for p in await ann.presence("c")] == ["ann"]
