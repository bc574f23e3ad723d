"""Official phoenix.js clients on two gateway processes sharing Redis: everything crosses nodes."""

from __future__ import annotations

import uuid

import pytest

from tests.scale.conftest import TwoNodes, publish_from_outside, wait_subscribed
from tests.support.node_client import NodeClientFactory

pytestmark = [pytest.mark.js, pytest.mark.redis]

SDP = "v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"


async def test_echo_broadcast_reaches_the_other_node_in_order(
    two_nodes: TwoNodes, node_client: NodeClientFactory
) -> None:
    ann = await node_client(two_nodes.a.ws_url, params={"token": "ann"})
    bob = await node_client(two_nodes.b.ws_url, params={"token": "bob"})
    topic = f"echo:{uuid.uuid4()}"
    assert (await ann.join("e", topic))["status"] == "ok"
    assert (await bob.join("e", topic))["status"] == "ok"
    await wait_subscribed(two_nodes.redis.url, topic, 2)

    for n in range(20):
        assert (await ann.push("e", "broadcast", {"n": n, "text": "żółw"}))["status"] == "ok"

    for client in (ann, bob):
        got = [await client.expect_ev("message", event="broadcast") for _ in range(20)]
        assert [m["payload"] for m in got] == [{"n": n, "text": "żółw"} for n in range(20)]
        assert all(m["join_ref"] is None and m["ref"] is None for m in got)


async def test_disconnect_by_socket_id_closes_the_users_sockets_on_every_node(
    two_nodes: TwoNodes, node_client: NodeClientFactory
) -> None:
    on_a = await node_client(two_nodes.a.ws_url, params={"token": "bob"})
    on_b = await node_client(two_nodes.b.ws_url, params={"token": "bob"})
    other = await node_client(two_nodes.b.ws_url, params={"token": "ann"})
    for client in (on_a, on_b, other):
        await client.expect_ev("open")
    await wait_subscribed(two_nodes.redis.url, "users_socket:bob", 2)

    # From outside any node, as an admin tool would: every `bob` socket closes with 1001.
    await publish_from_outside(two_nodes.redis.url, "users_socket:bob", "disconnect", {})

    for client in (on_a, on_b):
        closed = await client.expect_ev("close")
        assert closed["code"] == 1001
    assert (await other.state())["socket"] == "open"


async def test_room_chat_signaling_and_presence_across_nodes(
    two_nodes: TwoNodes, node_client: NodeClientFactory
) -> None:
    topic = f"room:{uuid.uuid4()}"
    ann = await node_client(two_nodes.a.ws_url, params={"token": "ann"})
    bob = await node_client(two_nodes.b.ws_url, params={"token": "bob"})
    assert (await ann.join("c", topic, {"tracks": ["audio"]}))["response"] == {"user_id": "ann"}
    assert (await bob.join("c", topic, {"tracks": ["video"]}))["response"] == {"user_id": "bob"}

    # Presence lists agree on both nodes.
    lists = []
    for client in (ann, bob):
        await client.expect(lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 2, 5)
        lists.append({p["key"]: p["metas"] for p in await client.presence("c")})
    assert lists[0] == lists[1]
    assert lists[0]["ann"][0]["tracks"] == ["audio"] and lists[0]["bob"][0]["tracks"] == ["video"]
    await wait_subscribed(two_nodes.redis.url, f"{topic}#user:bob", 1)
    await wait_subscribed(two_nodes.redis.url, f"{topic}#user:ann", 1)

    # Offer, answer and candidates go to the named member only, on the other node.
    assert (await ann.push("c", "offer", {"sdp": SDP, "to": "bob"}))["status"] == "ok"
    offer = await bob.expect_ev("message", event="offer")
    assert offer["payload"]["from"] == "ann" and offer["payload"]["sdp"] == SDP
    assert (await bob.push("c", "answer", {"sdp": SDP, "to": "ann"}))["status"] == "ok"
    assert (await ann.expect_ev("message", event="answer"))["payload"]["from"] == "bob"
    for i in range(3):
        cand = {"candidate": f"candidate:{i} 1 udp 1 127.0.0.1 5000{i} typ host", "sdpMid": "0",
                "sdpMLineIndex": 0, "to": "bob"}  # fmt: skip
        assert (await ann.push("c", "ice-candidate", cand))["status"] == "ok"
    got = [await bob.expect_ev("message", event="ice-candidate") for _ in range(3)]
    assert [g["payload"]["candidate"][:11] for g in got] == [f"candidate:{i}" for i in range(3)]
    assert not [e for e in ann.pending() if e.get("event") in ("offer", "ice-candidate")]

    # Chat reaches both.
    sent = await bob.push("c", "new_msg", {"body": "hi from node b"})
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


async def test_member_cap_and_to_an_absent_member_hold_across_nodes(
    gateway, redis_server, node_client: NodeClientFactory
) -> None:
    from tests.scale.conftest import node_env

    env = {"GATEWAY_ROOM_MAX_MEMBERS": "2"}
    a = await gateway(env=node_env(redis_server.url, "cap-a", **env))
    b = await gateway(env=node_env(redis_server.url, "cap-b", **env))
    topic = f"room:{uuid.uuid4()}"
    ann = await node_client(a.ws_url, params={"token": "ann"})
    bob = await node_client(b.ws_url, params={"token": "bob"})
    eve = await node_client(a.ws_url, params={"token": "eve"})
    assert (await ann.join("c", topic))["status"] == "ok"
    assert (await bob.join("c", topic))["status"] == "ok"

    refused = await eve.join("c", topic)

    assert refused["status"] == "error"
    assert "full" in str(refused["response"])
    nobody = await ann.push("c", "offer", {"sdp": SDP, "to": "zed"})
    assert nobody["status"] == "error"
