"""RoomChannel's events, refusals and ordering through the socket-less harness (memory
stores, the runtime the server runs); tests/rooms covers the same channel over real sockets."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from gateway.signaling.sessions import MemorySessionStore, iso
from gateway.testing import ChannelTest, Client

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def room() -> str:
    return f"room:{uuid.uuid4()}"


async def joined(t: ChannelTest, topic: str, user: str, **kw: Any) -> Client:
    client = t.connect(user, **kw)
    reply = await client.reply(client.join(topic))
    assert reply["status"] == "ok", reply
    await t.settle()
    return client


async def test_the_join_reply_comes_first_then_presence_state() -> None:
    t, topic = ChannelTest.build(), room()
    ann = t.connect("ann")
    ann.join(topic)
    await t.settle()
    reply, state = ann.frames[0], ann.frames[1]
    assert reply == ["1", "1", topic, "phx_reply", {"status": "ok", "response": {"user_id": "ann"}}]
    assert state[:4] == ["1", None, topic, "presence_state"]
    assert list(state[4]) == ["ann"]


async def test_join_refusals() -> None:
    t = ChannelTest.build(room_max_members=1)
    bad = t.connect("ann")
    assert await bad.reply(bad.join("room:lobby")) == {
        "status": "error",
        "response": {"reason": "invalid room id"},
    }
    topic = room()
    nobody = t.connect("")
    assert (await nobody.reply(nobody.join(topic)))["response"] == {"reason": "unauthorized"}
    invalid = t.connect("ann")
    reply = await invalid.reply(invalid.join(topic, {"history": 101}))
    assert reply["response"]["reason"] == "invalid field"
    assert reply["response"]["field"] == "history"
    await joined(t, topic, "ann")
    full = t.connect("bob")
    assert (await full.reply(full.join(topic)))["response"] == {"reason": "room full"}


async def test_an_offer_reaches_its_recipient_as_a_push_with_its_join_ref() -> None:
    t, topic = ChannelTest.build(), room()
    ann = await joined(t, topic, "ann")
    bob = await joined(t, topic, "bob")
    ref = ann.push(topic, "offer", {"to": "bob", "sdp": SDP})
    assert await ann.reply(ref) == {"status": "ok", "response": {}}
    offer = await bob.wait_for(lambda f: f[3] == "offer")
    assert offer[:3] == [bob.join_refs[topic], None, topic]
    assert offer[4]["from"] == "ann" and offer[4]["type"] == "offer" and offer[4]["sdp"] == SDP
    assert "offer" not in ann.events()


async def test_a_relay_is_the_push_with_the_stamps_each_once() -> None:
    t, topic = ChannelTest.build(), room()
    room_id = topic.removeprefix("room:")
    ann = await joined(t, topic, "ann")
    bob = await joined(t, topic, "bob")
    cases = [
        {"to": "bob", "sdp": SDP, "call": {"id": 7}},  # relayed as its own bytes, stamped
        {"to": "bob", "sdp": SDP, "type": "offer"},
        {"to": "bob", "sdp": SDP, "type": None},  # these two are decoded and re-encoded
        {"to": "bob", "sdp": SDP, "from": "ann", "room_id": room_id, "timestamp": "noon"},
    ]
    for sent in cases:
        assert (await ann.reply(ann.push(topic, "offer", sent)))["status"] == "ok"
        raw = bob.sink.frames[-1].data
        payload = json.loads(raw)[4]
        stamp = payload.pop("timestamp")
        stamped = {**sent, "type": "offer", "room_id": room_id, "from": "ann"}
        stamped.pop("timestamp", None)
        assert payload == stamped, sent
        assert stamp != "noon" and datetime.fromisoformat(stamp).tzinfo is not None
        for key in (b'"from"', b'"room_id"', b'"timestamp"', b'"type"'):
            assert bytes(raw).count(key) == 1, (key, sent)
    ice = {"to": "bob", "candidate": "", "sdpMid": "0", "type": "kept as sent"}
    assert (await ann.reply(ann.push(topic, "ice-candidate", ice)))["status"] == "ok"
    payload = json.loads(bob.sink.frames[-1].data)[4]
    assert payload["type"] == "kept as sent" and payload["from"] == "ann"
    # Raw UTF-8, not escapes, as a browser's JSON.stringify writes it: relayed as it came.
    label = {"to": "bob", "sdp": SDP, "label": "caméra 📷"}
    ann.send_text(
        json.dumps([ann.join_refs[topic], "99", topic, "offer", label], ensure_ascii=False)
    )
    assert (await ann.reply("99"))["status"] == "ok"
    raw = bytes(bob.sink.frames[-1].data)
    assert "caméra 📷".encode() in raw and json.loads(raw)[4]["label"] == "caméra 📷"


async def test_signaling_refusals() -> None:
    t, topic = ChannelTest.build(), room()
    ann = await joined(t, topic, "ann")
    cases = [
        ("offer", {"to": "bob", "sdp": SDP, "from": "eve"}, {"reason": "from mismatch", "field": "from"}),
        ("offer", {"to": "nobody", "sdp": SDP}, {"reason": "recipient not in room", "field": "to"}),
        ("dance", {}, {"reason": "unknown event"}),
    ]  # fmt: skip
    for event, payload, response in cases:
        reply = await ann.reply(ann.push(topic, event, payload))
        assert reply == {"status": "error", "response": response}, event
    assert (await ann.reply(ann.push(topic, "new_msg", {"body": "still here"})))["status"] == "ok"


async def test_the_sdp_limit_is_in_utf8_bytes_whatever_the_json_spelling() -> None:
    """65,536 bytes of SDP: 32,768 two-byte characters pass and one more is refused, whether
    the client sends them as UTF-8 or as `\\u` escapes (a payload of 196 KB, too large)."""
    t, topic = ChannelTest.build(), room()
    ann = await joined(t, topic, "ann")
    await joined(t, topic, "bob")
    jr = ann.join_refs[topic]

    def offer(ref: str, sdp: str, ascii_only: bool = False) -> str:
        payload = {"to": "bob", "sdp": sdp}
        ann.conn.receive_text(
            json.dumps([jr, ref, topic, "offer", payload], ensure_ascii=ascii_only)
        )
        return ref

    assert (await ann.reply(offer("1", "é" * 32_768)))["status"] == "ok"
    too_large = {"reason": "field too large", "field": "sdp"}
    refused = await ann.reply(offer("2", "é" * 32_769))
    assert refused["status"] == "error" and refused["response"].items() >= too_large.items()
    escaped = await ann.reply(offer("3", "é" * 32_769, ascii_only=True))
    assert escaped["response"]["reason"] == "payload too large"


async def test_signaling_requires_auth_refuses_guests_only() -> None:
    t, topic = ChannelTest.build(signaling_requires_auth=True), room()
    guest = await joined(t, topic, "guest", authenticated=False)
    member = await joined(t, topic, "member")
    refused = await guest.reply(guest.push(topic, "offer", {"to": "member", "sdp": SDP}))
    assert refused == {"status": "error", "response": {"reason": "unauthorized"}}
    accepted = await member.reply(member.push(topic, "offer", {"to": "guest", "sdp": SDP}))
    assert accepted["status"] == "ok"
    tracks = await guest.reply(guest.join(room(), {"tracks": ["audio"]}))
    assert tracks["response"] == {"reason": "unauthorized", "field": "tracks"}


async def test_guests_may_signal_by_default() -> None:
    t, topic = ChannelTest.build(), room()
    guest = await joined(t, topic, "guest", authenticated=False)
    await joined(t, topic, "member")
    reply = await guest.reply(guest.push(topic, "offer", {"to": "member", "sdp": SDP}))
    assert reply["status"] == "ok"


async def test_chat_is_broadcast_with_an_id_to_everyone() -> None:
    t, topic = ChannelTest.build(), room()
    ann = await joined(t, topic, "ann")
    bob = await joined(t, topic, "bob")
    reply = await ann.reply(ann.push(topic, "new_msg", {"body": "hi"}))
    message = await bob.wait_for(lambda f: f[3] == "new_msg")
    assert message[:2] == [None, None]
    assert message[4]["id"] == reply["response"]["id"]
    assert message[4]["body"] == "hi" and message[4]["from"] == "ann"
    assert "new_msg" in ann.events()


class StampedStore(MemorySessionStore):
    """The memory store, noting the instant each chat write carries."""

    def __init__(self) -> None:
        super().__init__(retention_s=3600)
        self.ats: list[float] = []

    def add_chat_now(self, room: str, message: bytes, at: float) -> None:
        self.ats.append(at)  # both ways in: the bookkeeper's inline one and `add_chat`
        super().add_chat_now(room, message, at)


async def test_chat_is_kept_at_the_instant_it_was_stamped() -> None:
    # The write is made off the reply's path; it carries the stamp's time, not its own.
    t, topic = ChannelTest.build(), room()
    rooms = t.node.rooms
    ticks = iter(range(1_000_000))
    rooms.wall = lambda: 1_700_000_000 + next(ticks)  # a clock that moves on every reading
    rooms.sessions = store = StampedStore()
    ann = await joined(t, topic, "ann")
    await ann.reply(ann.push(topic, "new_msg", {"body": "hi"}))
    message = await ann.wait_for(lambda f: f[3] == "new_msg")
    await rooms.bookkeeper.flush()
    assert store.ats and iso(store.ats[-1]) == message[4]["timestamp"]


async def test_a_member_who_leaves_is_seen_leaving() -> None:
    # Diffs sent at once: in a 50 ms window ann's join and leave would cancel out.
    t, topic = ChannelTest.build(presence_coalesce_ms=0), room()
    ann = await joined(t, topic, "ann")
    bob = await joined(t, topic, "bob")
    ann.leave(topic)
    await t.settle()
    assert ann.events()[-2:] == ["phx_reply", "phx_close"]

    def bob_left(frame: list[Any]) -> bool:
        return frame[3] == "presence_diff" and "ann" in frame[4]["leaves"]

    await bob.wait_for(bob_left)
    assert await t.node.rooms.presence.store.count(topic) == 1
    await t.close()
    assert await t.node.rooms.presence.store.count(topic) == 0


async def test_many_grace_periods_ending_together_each_tell_the_sender_in_order() -> None:
    t = ChannelTest.build(
        room_grace_ms=1500, room_max_members=500, rate_signaling=10**6, burst_signaling=10**6
    )
    topic = room()
    ann = await joined(t, topic, "ann")
    names = [f"peer{i}" for i in range(250)]  # more than one turn's worth of endings
    peers = [await joined(t, topic, name) for name in names]
    for peer in peers:
        peer.disconnect()  # dropped, not left: each gets a grace period
    await t.settle()
    for name in names:
        reply = await ann.reply(ann.push(topic, "offer", {"to": name, "sdp": SDP}))
        assert reply == {"status": "ok", "response": {"queued": True}}
    last = names[-1]
    frames = await ann.wait_for(lambda f: f[3] == "undeliverable" and f[4]["to"] == last, 10)
    told = [f[4]["to"] for f in ann.frames if f[3] == "undeliverable"]
    assert told == names, frames
    assert not t.node.rooms._ending
