"""ICE servers in the room join reply and the `ice_servers` push, over real WebSockets."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import REGISTRY

from gateway.ice import turn_credential
from tests.rooms.conftest import Connect, StartServer

STUN = "stun:127.0.0.1:3478"
TURN = "turn:127.0.0.1:3478?transport=udp"
ICE = {"stun_urls": STUN, "turn_urls": TURN, "turn_secret": "coturn-secret"}


def issued(kind: str) -> float:
    value = REGISTRY.get_sample_value("gateway_ice_credentials_issued_total", {"kind": kind})
    return value or 0.0


def check_turn(server: dict[str, Any], user: str, ttl_s: int) -> int:
    """The TURN entry is coturn's use-auth-secret pair for `user`; returns its expiry."""
    assert server["urls"] == [TURN]
    expiry, _, name = server["username"].partition(":")
    assert name == user
    assert abs(int(expiry) - (time.time() + ttl_s)) < 5
    assert server["credential"] == turn_credential("coturn-secret", server["username"])
    return int(expiry)


async def test_nothing_configured_leaves_the_join_reply_as_it_was(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server()
    ann = await member(srv, topic, "ann")
    assert (await ann.join())[4] == {"response": {"user_id": "ann"}, "status": "ok"}
    # Asking anyway is harmless: no servers, so the browser's defaults (host candidates only).
    assert await ann.push("ice_servers", {}) == {"response": {"ice_servers": []}, "status": "ok"}


async def test_a_member_gets_stun_and_turn_credentials_in_the_join_reply(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(**ICE)
    before = issued("turn")
    ann = await member(srv, topic, "ann")
    response = (await ann.join())[4]["response"]
    stun, turn = response["ice_servers"]
    assert stun == {"urls": [STUN]}
    check_turn(turn, "ann", 3600)
    assert issued("turn") == before + 1


async def test_anonymous_members_get_stun_only_unless_allowed(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(**ICE)
    before = issued("stun")
    anon = await member(srv, topic)
    response = (await anon.join())[4]["response"]
    assert response["ice_servers"] == [{"urls": [STUN]}]
    assert (await anon.push("ice_servers", {}))["response"] == {"ice_servers": [{"urls": [STUN]}]}
    assert issued("stun") == before + 2

    generous = await room_server(**ICE, turn_for_anonymous=True)
    anon = await member(generous, topic)
    response = (await anon.join())[4]["response"]
    check_turn(response["ice_servers"][1], response["user_id"], 3600)


async def test_the_push_gives_fresh_credentials(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(**ICE, turn_ttl_s=600)
    ann = await member(srv, topic, "ann")
    joined = check_turn((await ann.join())[4]["response"]["ice_servers"][1], "ann", 600)
    await asyncio.sleep(1.1)  # the expiry has a resolution of one second
    reply = await ann.push("ice_servers", {})
    assert reply["status"] == "ok"
    stun, turn = reply["response"]["ice_servers"]
    assert stun == {"urls": [STUN]}
    assert check_turn(turn, "ann", 600) > joined


async def test_credentials_are_rate_limited_with_signaling(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(**ICE, rate_limits=True, rate_signaling=0.1, burst_signaling=2)
    ann = await member(srv, topic, "ann")
    await ann.join()  # a join is control, not signaling: it takes no token
    before = issued("turn")
    statuses = [(await ann.push("ice_servers", {}))["status"] for _ in range(3)]
    assert statuses == ["ok", "ok", "error"]
    refused = await ann.push("ice_servers", {})
    assert refused == {"response": {"reason": "rate_limited"}, "status": "error"}
    # Offers draw from the same bucket, now empty.
    offer = await ann.push("offer", {"sdp": "v=0"})
    assert offer["response"] == {"reason": "rate_limited"}
    assert issued("turn") == before + 2
