"""Two gateways on one Redis and one PostgreSQL write one history: a member who reconnects to
the other node stays one participant, and no event is written twice."""

from __future__ import annotations

import asyncio

from tests.history.conftest import TOKEN, api, history_of, wait_ready
from tests.rooms.conftest import Connect, RoomServer, StartServer


async def left(node: RoomServer, room: str, user: str) -> None:
    """Wait until `node` has written `user`'s leave."""
    for _ in range(100):
        assert await history_of(node).writer.flush(10.0)
        _, session = await api(node, f"/api/rooms/{room}/session")
        if any(p["user_id"] == user and p["left_at"] for p in session["participants"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{user}'s leave was never written")


async def test_a_member_moving_nodes_stays_one_participant(
    room_server: StartServer, member: Connect, topic: str, postgres_url: str, redis_url: str
) -> None:
    settings = {"admin_token": TOKEN, "presence_coalesce_ms": 0, "database_url": postgres_url,
                "database_migrate": True, "redis_url": redis_url}  # fmt: skip
    a, b = await room_server(**settings), await room_server(**settings)
    await wait_ready(a)
    await wait_ready(b)
    room = topic[5:]
    ann, bob = await member(a, topic, "ann"), await member(b, topic, "bob")
    await ann.join()
    await bob.join()
    await ann.push("offer", {"sdp": "o1", "to": "bob"})
    await ann.sock.close()  # ann's network drops; she comes back through the other node
    await left(a, room, "ann")
    again = await member(b, topic, "ann")
    await again.join()
    await again.push("offer", {"sdp": "o2", "to": "bob"})
    await bob.push("answer", {"sdp": "a", "to": "ann"})
    for node in (a, b):
        assert await history_of(node).writer.flush(10.0)

    status, page = await api(a, f"/api/rooms/{room}/sessions")
    assert status == 200
    [session] = page["items"]
    people = {p["user_id"]: p for p in session["participants"]}
    assert set(people) == {"ann", "bob"}
    assert people["ann"]["joins"] == 2 and people["ann"]["left_at"] is None
    assert session["peak_members"] == 2 and session["emptied_at"] is None
    status, detail = await api(b, f"/api/rooms/{room}/session")
    kinds = [(e["kind"], e["from"]) for e in detail["events"]]
    assert kinds == [("offer", "ann"), ("offer", "ann"), ("answer", "bob")]
