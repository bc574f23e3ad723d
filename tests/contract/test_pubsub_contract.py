"""The pub/sub contract, the same for every adapter: what subscribers on any node receive."""

from __future__ import annotations

import msgspec

from gateway.pubsub.core import PubSub
from tests.contract.conftest import PubSubNodes, Recorder


def subscribe_everywhere(nodes: PubSubNodes, key: str, prefix: str) -> list[Recorder]:
    """One subscriber of `key` on each node (node order)."""
    recorders = []
    for i, node in enumerate(nodes.nodes):
        rec = Recorder(f"{prefix}{i}")
        node.subscribe(key, rec)
        recorders.append(rec)
    return recorders


async def test_broadcast_reaches_every_subscriber_on_every_node_once(
    pubsub_nodes: PubSubNodes,
) -> None:
    recs = subscribe_everywhere(pubsub_nodes, "room:a", "s") + subscribe_everywhere(
        pubsub_nodes, "room:a", "t"
    )
    await pubsub_nodes.settle()

    local = pubsub_nodes[0].broadcast("room:a", "new_msg", {"body": "hi", "n": 1})

    assert local == 2  # the two subscribers on the sending node, synchronously
    for rec in recs:
        await rec.wait_for(1)
    await pubsub_nodes.settle()
    for rec in recs:
        assert rec.values() == [("room:a", "new_msg", {"body": "hi", "n": 1})]


async def test_other_keys_are_not_delivered(pubsub_nodes: PubSubNodes) -> None:
    [a0, *others_a] = subscribe_everywhere(pubsub_nodes, "room:a", "a")
    recs_b = subscribe_everywhere(pubsub_nodes, "room:b", "b")
    await pubsub_nodes.settle()

    pubsub_nodes[-1].broadcast("room:b", "ping", {})
    pubsub_nodes[-1].broadcast("room:a", "marker", {})

    for rec in [a0, *others_a]:
        await rec.wait_for(1)
        assert [e for _, e, _ in rec.got] == ["marker"]
    for rec in recs_b:
        await rec.wait_for(1)
        assert [e for _, e, _ in rec.got] == ["ping"]


async def test_unsubscribed_subscribers_get_nothing_more(pubsub_nodes: PubSubNodes) -> None:
    leaving = subscribe_everywhere(pubsub_nodes, "room:a", "l")
    staying = subscribe_everywhere(pubsub_nodes, "room:a", "s")
    await pubsub_nodes.settle()
    pubsub_nodes[0].broadcast("room:a", "first", {})
    for rec in leaving + staying:
        await rec.wait_for(1)

    for i, rec in enumerate(leaving):
        pubsub_nodes[i].unsubscribe("room:a", rec)
    await pubsub_nodes.settle()
    pubsub_nodes[0].broadcast("room:a", "second", {})

    for rec in staying:
        await rec.wait_for(2)
        assert [e for _, e, _ in rec.got] == ["first", "second"]
    await pubsub_nodes.settle()
    for rec in leaving:
        assert [e for _, e, _ in rec.got] == ["first"]
    assert all(node.subscribers("room:a") == 1 for node in pubsub_nodes.nodes)


async def test_broadcast_from_skips_only_the_sender(pubsub_nodes: PubSubNodes) -> None:
    sender = Recorder("sender")
    pubsub_nodes[0].subscribe("room:a", sender)
    others = subscribe_everywhere(pubsub_nodes, "room:a", "o")
    await pubsub_nodes.settle()

    pubsub_nodes[0].broadcast("room:a", "offer", {"sdp": "x"}, exclude=sender)
    pubsub_nodes[0].broadcast("room:a", "marker", {})

    for rec in others:
        await rec.wait_for(2)
        assert [e for _, e, _ in rec.got] == ["offer", "marker"]
    await sender.wait_for(1)
    assert [e for _, e, _ in sender.got] == ["marker"]


async def test_private_key_carries_the_wire_topic(pubsub_nodes: PubSubNodes) -> None:
    inbox = subscribe_everywhere(pubsub_nodes, "room:a#user:42", "u")
    await pubsub_nodes.settle()

    pubsub_nodes[0].broadcast("room:a#user:42", "answer", {"to": "42"}, topic="room:a")

    for rec in inbox:
        await rec.wait_for(1)
        assert rec.values() == [("room:a", "answer", {"to": "42"})]


async def test_payloads_arrive_equal_json_stays_unparsed_across_nodes(
    pubsub_nodes: PubSubNodes,
) -> None:
    recs = subscribe_everywhere(pubsub_nodes, "room:a", "r")
    await pubsub_nodes.settle()
    value = {"unicode": "żółw ✓", "nested": [1, 2.5, None, True, {"k": "v"}], "empty": {}}
    raw = msgspec.Raw(b'{"already":"encoded","n":[1,2]}')

    pubsub_nodes[0].broadcast("room:a", "json", value)
    pubsub_nodes[0].broadcast("room:a", "raw", raw)
    pubsub_nodes[0].broadcast("room:a", "bin", b"\x00\x01\xffbinary")

    for i, rec in enumerate(recs):
        await rec.wait_for(3)
        assert rec.values() == [
            ("room:a", "json", value),
            ("room:a", "raw", {"already": "encoded", "n": [1, 2]}),
            ("room:a", "bin", b"\x00\x01\xffbinary"),
        ]
        if i > 0:  # relayed from another node: the JSON was never parsed on the way
            assert isinstance(rec.got[0][2], msgspec.Raw)
            assert bytes(rec.got[1][2]) == b'{"already":"encoded","n":[1,2]}'
            assert isinstance(rec.got[2][2], bytes)


async def test_order_of_one_senders_broadcasts_is_kept(pubsub_nodes: PubSubNodes) -> None:
    recs = subscribe_everywhere(pubsub_nodes, "room:a", "r")
    await pubsub_nodes.settle()

    for n in range(300):
        pubsub_nodes[0].broadcast("room:a", "n", {"n": n})

    for rec in recs:
        await rec.wait_for(300)
        assert [p["n"] for _, _, p in rec.values()] == list(range(300))


async def test_broadcasts_from_every_node_reach_every_node(pubsub_nodes: PubSubNodes) -> None:
    recs = subscribe_everywhere(pubsub_nodes, "room:a", "r")
    await pubsub_nodes.settle()

    for i, node in enumerate(pubsub_nodes.nodes):
        node.broadcast("room:a", "from", {"node": i})

    count = len(pubsub_nodes.nodes)
    for rec in recs:
        await rec.wait_for(count)
        assert sorted(p["node"] for _, _, p in rec.values()) == list(range(count))


async def test_a_node_without_subscribers_still_reaches_the_others(
    pubsub_nodes: PubSubNodes,
) -> None:
    rec = Recorder("far")
    far: PubSub = pubsub_nodes[-1]
    far.subscribe("room:z", rec)
    await pubsub_nodes.settle()

    assert pubsub_nodes[0].broadcast("room:z", "hello", {}) == (
        1 if len(pubsub_nodes.nodes) == 1 else 0
    )
    await rec.wait_for(1)
    assert rec.values() == [("room:z", "hello", {})]


async def test_a_settled_subscription_gets_the_next_broadcast_of_another_node(
    pubsub_nodes: PubSubNodes,
) -> None:
    # What a join reply waits for: once `settling` is done, a broadcast any node makes
    # reaches the new subscriber, with no other settling of the test's own.
    keys = [f"room:s{i}" for i in range(40)]
    recs = [Recorder(f"r{i}") for i in range(len(keys))]
    listener = pubsub_nodes[1]
    for key, rec in zip(keys, recs, strict=True):
        listener.subscribe(key, rec)
    settling = listener.settling(keys)
    if pubsub_nodes.redis_url is None:
        assert settling is None  # one node: nothing to wait for
    else:
        assert settling is not None
        await settling
        assert listener.settling(keys) is None  # settled keys wait no more

    for i, key in enumerate(keys):
        pubsub_nodes[0].broadcast(key, "hello", {"n": i})

    for i, rec in enumerate(recs):
        await rec.wait_for(1)
        assert rec.values() == [(keys[i], "hello", {"n": i})]
