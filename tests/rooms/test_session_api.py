"""`GET /api/rooms/{room_id}/session`: the admin token, and what a session records."""

from __future__ import annotations

import asyncio
import re
import uuid

import aiohttp

from tests.rooms.conftest import Connect, StartServer

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def get(url: str, token: str | None = None) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_session_records_participants_and_the_exchange(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(admin_token="s3cret", presence_coalesce_ms=0)
    room_id = topic[5:]
    ann, bob = await member(srv, topic, "ann"), await member(srv, topic, "bob")
    await ann.join()
    await bob.join()
    await ann.push("offer", {"sdp": "o", "to": "bob"})
    await bob.push("answer", {"sdp": "a", "to": "ann"})
    for n in range(3):
        await bob.push("ice-candidate", {"candidate": f"c{n}", "to": "ann"})
    await ann.push("ice-candidate", {"candidate": "x"})
    await bob.sock.send_v2(bob.join_ref, "9", topic, "phx_leave", {})
    await bob.event("phx_close")
    await ann.event("presence_diff")

    status, body = await get(f"{srv.http}/api/rooms/{room_id}/session", "s3cret")
    assert status == 200
    assert isinstance(body, dict)
    assert body["room_id"] == room_id and ISO_MS.match(body["created_at"])
    assert body["emptied_at"] is None
    people = {p["user_id"]: p for p in body["participants"]}
    assert set(people) == {"ann", "bob"}
    assert people["ann"]["left_at"] is None and ISO_MS.match(people["bob"]["left_at"])
    assert people["bob"]["joins"] == 1
    events = [(e["kind"], e["from"], e["to"], e["count"]) for e in body["events"]]
    assert events == [
        ("offer", "ann", "bob", 1),
        ("answer", "bob", "ann", 1),
        ("candidates", "bob", "ann", 3),
        ("candidates", "ann", "broadcast", 1),
    ]
    assert all(ISO_MS.match(e["at"]) for e in body["events"])

    await ann.sock.close()
    for _ in range(50):
        _, body = await get(f"{srv.http}/api/rooms/{room_id}/session", "s3cret")
        assert isinstance(body, dict)
        if body["emptied_at"] is not None:
            break
        await asyncio.sleep(0.02)
    assert ISO_MS.match(body["emptied_at"])


async def test_session_api_needs_the_admin_token(room_server: StartServer) -> None:
    srv = await room_server(admin_token="s3cret")
    url = f"{srv.http}/api/rooms/{uuid.uuid4()}/session"
    assert (await get(url))[0] == 401
    assert (await get(url, "wrong"))[0] == 401
    assert (await get(url, "s3cret")) == (404, {"error": "no such session"})
    assert (await get(f"{srv.http}/api/rooms/lobby/session", "s3cret"))[0] == 400
    async with aiohttp.ClientSession() as http:
        basic = {"Authorization": "Basic czNjcmV0"}
        async with http.get(url, headers=basic) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_without_a_configured_token_the_api_is_closed(room_server: StartServer) -> None:
    srv = await room_server(admin_token="")
    url = f"{srv.http}/api/rooms/{uuid.uuid4()}/session"
    assert (await get(url))[0] == 401
    assert (await get(url, ""))[0] == 401
