"""The room channel over real WebSockets: joins, every validation error, delivery, chat."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.rooms.conftest import Connect, StartServer

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


async def test_join_reply_returns_the_user_id(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server()
    ann = await member(srv, topic, "ann")
    reply = await ann.join()
    assert reply == ["1", "1", topic, "phx_reply", {"response": {"user_id": "ann"}, "status": "ok"}]


async def test_anonymous_user_gets_a_generated_uuid(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server()
    anon = await member(srv, topic)
    reply = await anon.join()
    user_id = reply[4]["response"]["user_id"]
    assert str(uuid.UUID(user_id)) == user_id


@pytest.mark.parametrize(
    "bad_topic",
    ["room:lobby", "room:", "room:1234", "room:6F9619FF-8B86-D011-B42D-00C04FC964FF",
     "room:6f9619ff8b86d011b42d00c04fc964ff", "room:6f9619ff-8b86-d011-b42d-00c04fc964ff-x"],
)  # fmt: skip
async def test_non_uuid_room_is_refused(
    room_server: StartServer, member: Connect, bad_topic: str
) -> None:
    srv = await room_server()
    m = await member(srv, bad_topic, "ann")
    reply = await m.join()
    assert reply[4] == {"response": {"reason": "invalid room id"}, "status": "error"}


async def test_room_full(room_server: StartServer, member: Connect, topic: str) -> None:
    srv = await room_server(room_max_members=2)
    for user in ("a", "b"):
        assert (await (await member(srv, topic, user)).join())[4]["status"] == "ok"
    third = await member(srv, topic, "c")
    assert (await third.join())[4] == {"response": {"reason": "room full"}, "status": "error"}
    # A second tab of a member is not a new member.
    again = await member(srv, topic, "a")
    assert (await again.join())[4]["status"] == "ok"
    assert await srv.rooms.presence.store.count(topic) == 2


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"history": 101}, "history", "invalid field"),
        ({"history": "5"}, "history", "invalid field"),
        ({"tracks": "video"}, "tracks", "invalid field"),
        ({"tracks": [""]}, "tracks", "invalid field"),
    ],
)
async def test_join_params_are_validated(
    room_server: StartServer,
    member: Connect,
    topic: str,
    params: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    srv = await room_server()
    m = await member(srv, topic, "ann")
    response = (await m.join(params))[4]["response"]
    assert response["reason"] == reason and response["field"] == field


async def pair(room_server: StartServer, member: Connect, topic: str, **settings: Any) -> Any:
    srv = await room_server(**settings)
    ann, bob = await member(srv, topic, "ann"), await member(srv, topic, "bob")
    await ann.join()
    await bob.join()
    return srv, ann, bob


INVALID = [
    ("offer", {}, "missing field", "sdp"),
    ("offer", {"sdp": 5}, "invalid field", "sdp"),
    ("offer", {"sdp": "x" * 65_537}, "field too large", "sdp"),
    ("offer", {"sdp": SDP, "to": 7}, "invalid field", "to"),
    ("offer", {"sdp": SDP, "to": ""}, "invalid field", "to"),
    ("offer", {"sdp": SDP, "type": "answer"}, "invalid field", "type"),
    ("offer", {"sdp": SDP, "constraints": [1]}, "invalid field", "constraints"),
    ("offer", {"sdp": SDP, "room_id": 3}, "invalid field", "room_id"),
    ("offer", {"sdp": SDP, "from": 3}, "invalid field", "from"),
    ("answer", {"sdp": SDP}, "missing field", "to"),
    ("answer", {"to": "bob"}, "missing field", "sdp"),
    ("answer", {"sdp": None, "to": "bob"}, "invalid field", "sdp"),
    ("ice-candidate", {}, "missing field", "candidate"),
    ("ice-candidate", {"candidate": 1}, "invalid field", "candidate"),
    ("ice-candidate", {"candidate": "", "sdpMid": 0}, "invalid field", "sdpMid"),
    ("ice-candidate", {"candidate": "", "sdpMLineIndex": -1}, "invalid field", "sdpMLineIndex"),
    ("ice-candidate", {"candidate": "", "sdpMLineIndex": "0"}, "invalid field", "sdpMLineIndex"),
    ("ice-candidate", {"candidate": "", "to": ["bob"]}, "invalid field", "to"),
    ("ready", {}, "missing field", "tracks"),
    ("ready", {"tracks": [1]}, "invalid field", "tracks"),
    ("ready", {"tracks": ["v"] * 17}, "invalid field", "tracks"),
    ("new_msg", {}, "missing field", "body"),
    ("new_msg", {"body": ""}, "invalid field", "body"),
    ("new_msg", {"body": "x" * 4001}, "invalid field", "body"),
    ("new_msg", {"body": 12}, "invalid field", "body"),
]


@pytest.mark.parametrize(("event", "payload", "reason", "field"), INVALID)
async def test_every_validation_error_names_its_field(
    room_server: StartServer, member: Connect, topic: str,
    event: str, payload: dict[str, Any], reason: str, field: str,
) -> None:  # fmt: skip
    _, ann, bob = await pair(room_server, member, topic)
    reply = await ann.push(event, payload)
    assert reply["status"] == "error"
    assert reply["response"]["reason"] == reason
    assert reply["response"]["field"] == field
    assert isinstance(reply["response"]["detail"], str)
    # Nothing was relayed, and the channel is still joined.
    await bob.nothing(event)
    assert (await ann.push("new_msg", {"body": "still here"}))["status"] == "ok"


async def test_whole_payload_errors(room_server: StartServer, member: Connect, topic: str) -> None:
    _, ann, _ = await pair(room_server, member, topic, room_max_payload_bytes=1000)
    too_big = await ann.push("offer", {"sdp": "x" * 2000})
    assert too_big == {
        "status": "error",
        "response": {"reason": "payload too large", "detail": "at most 1000 bytes"},
    }
    not_object = await ann.push("offer", ["sdp"])
    assert not_object["response"]["reason"] == "invalid payload"
    assert "field" not in not_object["response"]


async def test_forged_from_is_refused(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    _, ann, bob = await pair(room_server, member, topic)
    reply = await ann.push("offer", {"sdp": SDP, "to": "bob", "from": "bob"})
    assert reply == {"status": "error", "response": {"reason": "from mismatch", "field": "from"}}
    chat = await ann.push("new_msg", {"body": "hi", "from": "mallory"})
    assert chat["response"] == {"reason": "from mismatch", "field": "from"}
    await bob.nothing("offer")
    # Her own id is fine.
    assert (await ann.push("offer", {"sdp": SDP, "to": "bob", "from": "ann"}))["status"] == "ok"


async def test_room_id_must_match_the_topic(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    _, ann, _ = await pair(room_server, member, topic)
    other = str(uuid.uuid4())
    reply = await ann.push("offer", {"sdp": SDP, "room_id": other})
    assert reply["response"] == {"reason": "room mismatch", "field": "room_id"}
    same = await ann.push("offer", {"sdp": SDP, "room_id": topic[5:]})
    assert same["status"] == "ok"


async def test_to_must_be_a_member(room_server: StartServer, member: Connect, topic: str) -> None:
    _, ann, _ = await pair(room_server, member, topic)
    reply = await ann.push("answer", {"sdp": SDP, "to": "carol"})
    assert reply == {
        "status": "error",
        "response": {"reason": "recipient not in room", "field": "to"},
    }
    ice = await ann.push("ice-candidate", {"candidate": "", "to": "carol"})
    assert ice["response"]["reason"] == "recipient not in room"


async def test_unknown_event_keeps_the_channel(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    _, ann, bob = await pair(room_server, member, topic)
    assert await ann.push("dance", {}) == {
        "status": "error",
        "response": {"reason": "unknown event"},
    }
    assert (await ann.push("new_msg", {"body": "after"}))["status"] == "ok"
    assert (await bob.event("new_msg"))[4]["body"] == "after"


async def test_targeted_offer_reaches_only_its_recipient(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv, ann, bob = await pair(room_server, member, topic)
    carol = await member(srv, topic, "carol")
    await carol.join()
    payload = {"sdp": SDP, "to": "bob", "x-correlation": "abc", "timestamp": "forged"}
    assert await ann.push("offer", payload) == {"status": "ok", "response": {}}
    frame = await bob.event("offer")
    # A push on bob's channel: his join_ref, no ref.
    assert frame[:4] == [bob.join_ref, None, topic, "offer"]
    body = frame[4]
    assert body["from"] == "ann" and body["to"] == "bob" and body["room_id"] == topic[5:]
    assert body["type"] == "offer" and body["sdp"] == SDP and body["x-correlation"] == "abc"
    assert ISO_MS.match(body["timestamp"])
    await carol.nothing("offer")
    await ann.nothing("offer")


async def test_answer_and_candidates(room_server: StartServer, member: Connect, topic: str) -> None:
    _, ann, bob = await pair(room_server, member, topic)
    assert (await bob.push("answer", {"sdp": SDP, "to": "ann", "type": "answer"}))["status"] == "ok"
    answer = (await ann.event("answer"))[4]
    assert answer["type"] == "answer" and answer["from"] == "bob"
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0",
                 "sdpMLineIndex": 0, "usernameFragment": "abcd", "to": "ann"}  # fmt: skip
    assert (await bob.push("ice-candidate", candidate))["status"] == "ok"
    got = (await ann.event("ice-candidate"))[4]
    assert {k: got[k] for k in candidate} == candidate
    assert "type" not in got
    end = await bob.push("ice-candidate", {"candidate": "", "sdpMid": None, "sdpMLineIndex": None})
    assert end["status"] == "ok"
    assert (await ann.event("ice-candidate"))[4]["candidate"] == ""


async def test_broadcast_offer_reaches_every_other_member(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv, ann, bob = await pair(room_server, member, topic)
    carol = await member(srv, topic, "carol")
    await carol.join()
    assert (await ann.push("offer", {"sdp": SDP, "to": "broadcast"}))["status"] == "ok"
    frame = await bob.event("offer")
    # Untargeted: Phoenix's fastlane broadcast, null join_ref and ref (docs/wire.md).
    assert frame[:4] == [None, None, topic, "offer"] and frame[4]["to"] == "broadcast"
    frame = await carol.event("offer")
    assert frame[:4] == [None, None, topic, "offer"] and frame[4]["from"] == "ann"
    await ann.nothing("offer")
    assert (await ann.push("offer", {"sdp": SDP}))["status"] == "ok"
    frame = await bob.event("offer")
    assert frame[:4] == [None, None, topic, "offer"] and "to" not in frame[4]
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"}
    assert (await ann.push("ice-candidate", candidate))["status"] == "ok"
    assert (await carol.event("ice-candidate"))[:4] == [None, None, topic, "ice-candidate"]


async def test_chat_reaches_everyone_with_id_and_history(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv, ann, bob = await pair(room_server, member, topic)
    ids = []
    for n in range(3):
        reply = await ann.push("new_msg", {"body": f"hello {n}", "color": "red"})
        assert reply["status"] == "ok"
        ids.append(reply["response"]["id"])
    for who in (ann, bob):
        frame = await who.event("new_msg")
        assert frame[:4] == [None, None, topic, "new_msg"]
        msg = frame[4]
        assert msg["body"] == "hello 0" and msg["from"] == "ann" and msg["id"] == ids[0]
        assert msg["color"] == "red" and ISO_MS.match(msg["timestamp"])
    late = await member(srv, topic, "dan")
    response = (await late.join({"history": 2}))[4]["response"]
    assert [m["body"] for m in response["history"]] == ["hello 1", "hello 2"]
    assert [m["id"] for m in response["history"]] == ids[1:]
    assert response["user_id"] == "dan"
    assert "history" not in (await (await member(srv, topic, "eve")).join())[4]["response"]


async def test_peer_ready_on_join_and_on_ready(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server()
    ann = await member(srv, topic, "ann")
    await ann.join({"tracks": ["audio", "video"]})
    bob = await member(srv, topic, "bob")
    await bob.join()
    # The later joiner hears about the member already ready.
    ready = (await bob.event("peer-ready"))[4]
    assert ready["from"] == "ann" and ready["tracks"] == ["audio", "video"]
    assert (await bob.push("ready", {"tracks": ["video"]})) == {"status": "ok", "response": {}}
    heard = await ann.event("peer-ready")
    assert heard[4]["from"] == "bob" and heard[4]["tracks"] == ["video"]
    await bob.nothing("peer-ready")
    carol = await member(srv, topic, "carol")
    await carol.join({"tracks": ["audio"]})
    froms = {(await carol.event("peer-ready"))[4]["from"] for _ in range(2)}
    assert froms == {"ann", "bob"}
    assert (await ann.event("peer-ready"))[4]["from"] == "carol"
    assert (await bob.event("peer-ready"))[4]["from"] == "carol"


async def test_signaling_requires_auth(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(signaling_requires_auth=True)
    anon = await member(srv, topic)
    await anon.join()
    ann = await member(srv, topic, "ann")  # a trusted token authenticates
    await ann.join()
    assert (await anon.push("offer", {"sdp": SDP}))["response"] == {"reason": "unauthorized"}
    assert (await anon.push("ready", {"tracks": ["a"]}))["response"] == {"reason": "unauthorized"}
    assert (await anon.push("new_msg", {"body": "chat is fine"}))["status"] == "ok"
    assert (await ann.push("offer", {"sdp": SDP}))["status"] == "ok"
    refused = await (await member(srv, topic)).join({"tracks": ["video"]})
    assert refused[4]["response"] == {"reason": "unauthorized", "field": "tracks"}
