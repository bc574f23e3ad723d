"""The reconnect grace queue end to end: queued while away, delivered in order, or reported."""

from __future__ import annotations

from tests.rooms.conftest import Connect, Member, StartServer

SDP = "v=0\r\n"


async def drop(leaver: Member, watcher: Member) -> None:
    """Close `leaver`'s socket and wait until `watcher` sees its presence leave."""
    await leaver.sock.close()
    while True:
        diff = (await watcher.event("presence_diff"))[4]
        if diff["leaves"]:
            return


async def test_rejoin_inside_the_grace_period_gets_queued_messages_in_order(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(room_grace_ms=400, presence_coalesce_ms=0)
    ann, bob = await member(srv, topic, "ann"), await member(srv, topic, "bob")
    await ann.join()
    await bob.join()
    await drop(bob, ann)
    sent = [
        ("offer", {"sdp": "first", "to": "bob"}),
        ("ice-candidate", {"candidate": "c1", "to": "bob"}),
        ("offer", {"sdp": "second", "to": "bob"}),
    ]
    for event, payload in sent:
        assert await ann.push(event, payload) == {"status": "ok", "response": {"queued": True}}
    back = await member(srv, topic, "bob")
    await back.join()
    frames = [await back.frame(lambda f: f[3] in ("offer", "ice-candidate")) for _ in sent]
    assert [(f[3], f[4].get("sdp") or f[4].get("candidate")) for f in frames] == [
        ("offer", "first"), ("ice-candidate", "c1"), ("offer", "second"),
    ]  # fmt: skip
    assert all(f[0] == back.join_ref and f[4]["from"] == "ann" for f in frames)
    # The state came first, and nothing is reported undeliverable afterwards.
    assert [f[3] for f in back.backlog][:1] == ["presence_state"]
    await ann.nothing("undeliverable", 0.6)
    # Bob is a member again: messages go straight through.
    assert await ann.push("offer", {"sdp": "live", "to": "bob"}) == {"status": "ok", "response": {}}
    assert (await back.event("offer"))[4]["sdp"] == "live"


async def test_after_the_grace_period_the_sender_gets_undeliverable(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(room_grace_ms=150, presence_coalesce_ms=0)
    ann, bob = await member(srv, topic, "ann"), await member(srv, topic, "bob")
    await ann.join()
    await bob.join()
    await drop(bob, ann)
    assert (await ann.push("offer", {"sdp": SDP, "to": "bob"}))["response"] == {"queued": True}
    assert (await ann.push("answer", {"sdp": SDP, "to": "bob"}))["response"] == {"queued": True}
    first = await ann.event("undeliverable", timeout=2.0)
    second = await ann.event("undeliverable", timeout=2.0)
    assert first[0] == ann.join_ref and first[1] is None
    assert [first[4], second[4]] == [
        {"event": "offer", "to": "bob"},
        {"event": "answer", "to": "bob"},
    ]
    # Once the period is over bob is simply not in the room.
    late = await ann.push("offer", {"sdp": SDP, "to": "bob"})
    assert late["response"] == {"reason": "recipient not in room", "field": "to"}
    back = await member(srv, topic, "bob")
    await back.join()
    await back.nothing("offer", 0.3)


async def test_the_queue_is_bounded(room_server: StartServer, member: Connect, topic: str) -> None:
    srv = await room_server(room_grace_ms=5000, room_grace_queue=2, presence_coalesce_ms=0)
    ann, bob = await member(srv, topic, "ann"), await member(srv, topic, "bob")
    await ann.join()
    await bob.join()
    await drop(bob, ann)
    for _ in range(2):
        assert (await ann.push("offer", {"sdp": SDP, "to": "bob"}))["response"] == {"queued": True}
    full = await ann.push("offer", {"sdp": SDP, "to": "bob"})
    assert full == {
        "status": "error",
        "response": {"reason": "recipient queue full", "field": "to"},
    }


async def test_a_member_who_leaves_gets_no_grace(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(room_grace_ms=5000, presence_coalesce_ms=0)
    ann, bob = await member(srv, topic, "ann"), await member(srv, topic, "bob")
    await ann.join()
    await bob.join()
    await bob.sock.send_v2(bob.join_ref, "9", topic, "phx_leave", {})
    await bob.event("phx_close")
    await ann.event("presence_diff")
    reply = await ann.push("offer", {"sdp": SDP, "to": "bob"})
    assert reply["response"] == {"reason": "recipient not in room", "field": "to"}
