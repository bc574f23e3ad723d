"""The SFU bridge without browsers: media modes, refusals, placement, and what a client cannot
make the gateway ask Janus (a real one, tests/support/janus_server.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.sfu import videoroom as vr
from gateway.sfu.bridge import SfuBridge
from gateway.sfu.janus import JanusClient
from gateway.sfu.placement import place
from tests.rooms.conftest import Connect, StartServer
from tests.support.janus_server import ADMIN_KEY, JanusServer
from tests.support.ports import free_port


@pytest.fixture
async def janus_view(janus_server: JanusServer) -> AsyncIterator[SfuBridge]:
    bridge = SfuBridge((janus_server.url,), JanusClient, admin_key=ADMIN_KEY)
    try:
        yield bridge
    finally:
        await bridge.stop()


def test_placement_is_stable_and_spreads_rooms() -> None:
    urls = ("ws://a:8188/", "ws://b:8188/", "ws://c:8188/")
    rooms = [str(uuid.UUID(int=i)) for i in range(300)]
    placed = {room: place(room, urls) for room in rooms}
    assert placed == {room: place(room, tuple(reversed(urls))) for room in rooms}
    assert all(30 < list(placed.values()).count(url) < 170 for url in urls)
    # Rendezvous hashing: removing a server moves only the rooms it held.
    fewer = urls[:2]
    assert all(place(r, fewer) == u for r, u in placed.items() if u in fewer)


def test_settings() -> None:
    s = load_settings({"sfu_url": "ws://127.0.0.1:8188/, wss://janus.example.com/ws"}, environ={})
    assert s.sfu.urls() == ("ws://127.0.0.1:8188/", "wss://janus.example.com/ws")
    with pytest.raises(ConfigError, match="needs --sfu-url"):
        load_settings({"room_media": "sfu"}, environ={})
    with pytest.raises(ConfigError, match="mesh or sfu"):
        load_settings({"room_media": "p2p"}, environ={})
    with pytest.raises(ConfigError, match="not a ws"):
        load_settings({"sfu_url": "http://127.0.0.1:8088/janus"}, environ={})


async def test_sfu_join_refused_without_sfu_url(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server()
    ann = await member(srv, topic, user="ann")
    reply = await ann.join({"media": "sfu"})
    assert reply[4] == {
        "status": "error",
        "response": {
            "reason": "sfu not configured",
            "field": "media",
            "detail": "this gateway has no --sfu-url",
        },
    }
    assert (await ann.join({"media": "mesh"}))[4]["response"] == {"user_id": "ann", "media": "mesh"}
    assert (await ann.push("unpublish", {}))["response"] == {"reason": "unknown event"}


async def test_the_first_join_fixes_the_media(
    room_server: StartServer, member: Connect, janus_server: JanusServer
) -> None:
    srv = await room_server(sfu_url=janus_server.url, sfu_admin_key=ADMIN_KEY)
    sfu_room, mesh_room = f"room:{uuid.uuid4()}", f"room:{uuid.uuid4()}"
    ann = await member(srv, sfu_room, user="ann")
    assert (await ann.join({"media": "sfu"}))[4]["response"] == {"user_id": "ann", "media": "sfu"}
    bob = await member(srv, sfu_room, user="bob")
    assert (await bob.join({"media": "mesh"}))[4]["response"]["media"] == "sfu"
    cid = await member(srv, mesh_room, user="cid")
    assert (await cid.join())[4]["response"]["media"] == "mesh"  # --room-media mesh
    dan = await member(srv, mesh_room, user="dan")
    assert (await dan.join({"media": "sfu"}))[4]["response"]["media"] == "mesh"
    # In a mesh room "sfu" is just a user id that is not there.
    reply = await cid.push("offer", {"sdp": "v=0", "to": "sfu"})
    assert reply["response"]["reason"] == "recipient not in room"
    # Nobody joins as "sfu" where the bridge speaks under that name.
    mallory = await member(srv, mesh_room, user="sfu")
    refusal = (await mallory.join())[4]
    assert refusal["status"] == "error"
    assert refusal["response"]["reason"] == "unauthorized"
    assert refusal["response"]["field"] == "user_id"


async def test_room_media_sfu_for_all_rooms(
    room_server: StartServer, member: Connect, topic: str, janus_server: JanusServer
) -> None:
    srv = await room_server(room_media="sfu", sfu_url=janus_server.url)
    ann = await member(srv, topic, user="ann")
    assert (await ann.join())[4]["response"] == {"user_id": "ann", "media": "sfu"}


async def test_a_client_reaches_neither_other_rooms_nor_janus_functions(
    room_server: StartServer,
    member: Connect,
    topic: str,
    janus_server: JanusServer,
    janus_view: SfuBridge,
) -> None:
    srv = await room_server(sfu_url=janus_server.url, sfu_admin_key=ADMIN_KEY)
    other = str(uuid.uuid4())
    await janus_view.ensure_room(other)
    mallory = await member(srv, topic, user="mallory")
    assert (await mallory.join({"media": "sfu"}))[4]["status"] == "ok"
    # Raw Janus and VideoRoom fields ride along; the gateway builds its own request and
    # ignores them. The SDP is not one Janus accepts, so it refuses the publish.
    hostile = {
        "sdp": "v=0\r\n",
        "to": "sfu",
        "janus": "destroy",
        "request": "destroy",
        "room": other,
        "admin_key": ADMIN_KEY,
        "session_id": 1,
        "handle_id": 1,
        "plugin": "janus.plugin.echotest",
        "body": {"request": "destroy", "room": other},
    }
    reply = await mallory.push("offer", hostile)
    assert reply["status"] == "error" and reply["response"]["reason"] == "sfu refused"
    assert (await mallory.push("offer", {**hostile, "room_id": other}))["response"] == {
        "reason": "room mismatch",
        "field": "room_id",
    }
    # Another room's publishers cannot be subscribed to or trickled at.
    for event, payload in (
        ("answer", {"sdp": "v=0", "to": "sfu", "publisher": "victim"}),
        ("ice-candidate", {"candidate": "", "to": "sfu", "publisher": "victim"}),
    ):
        reply = await mallory.push(event, payload)
        assert reply["response"] == {"reason": "no such subscription", "field": "publisher"}
    # The other room is still there, untouched; the gateway's session only ever asked about
    # mallory's room.
    exists = await janus_view.request(other, {"request": "exists", "room": other})
    assert exists.data["exists"] is True
    assert await janus_view.participants(topic[len("room:") :]) == []


async def test_an_unreachable_janus_is_refused_promptly(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(sfu_url=f"ws://127.0.0.1:{free_port()}/")
    ann = await member(srv, topic, user="ann")
    assert (await ann.join({"media": "sfu"}))[4]["status"] == "ok"
    started = time.monotonic()
    reply = await ann.push("offer", {"sdp": "v=0", "to": "sfu"})
    assert reply == {"status": "error", "response": {"reason": "sfu unavailable"}}
    assert time.monotonic() - started < 1.0


async def test_request_builders_name_only_the_members_room() -> None:
    assert vr.publish("r1", "ann") == {
        "request": "joinandconfigure",
        "ptype": "publisher",
        "room": "r1",
        "id": "ann",
        "display": "ann",
    }
    assert vr.subscribe("r1", "bob") == {
        "request": "join",
        "ptype": "subscriber",
        "room": "r1",
        "streams": [{"feed": "bob"}],
    }
    assert vr.jsep("answer", "v=0") == {"type": "answer", "sdp": "v=0"}
