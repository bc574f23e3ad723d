"""The history API on a real PostgreSQL: sessions per occupancy, a user's sessions, chat pages,
and join `history` read back by a gateway started after the one that wrote it."""

from __future__ import annotations

import uuid

from tests.history.conftest import TOKEN, api, history_of, wait_ready
from tests.rooms.conftest import Connect, StartServer


async def test_sessions_users_and_messages_through_the_api(
    room_server: StartServer, member: Connect, topic: str, postgres_url: str
) -> None:
    settings = {"admin_token": TOKEN, "presence_coalesce_ms": 0, "database_url": postgres_url,
                "database_migrate": True}  # fmt: skip
    srv = await room_server(**settings)
    await wait_ready(srv)
    room = topic[5:]
    ann, bob = await member(srv, topic, "ann"), await member(srv, topic, "bob")
    await ann.join()
    await bob.join({"tracks": ["audio"]})
    await ann.push("offer", {"sdp": "o", "to": "bob"})
    await bob.push("answer", {"sdp": "a", "to": "ann"})
    for n in range(3):
        await bob.push("ice-candidate", {"candidate": f"c{n}", "to": "ann"})
    ids = [(await ann.push("new_msg", {"body": f"m{n}"}))["response"]["id"] for n in range(3)]
    await bob.sock.close()
    await ann.event("presence_diff")
    await ann.sock.close()  # the room empties: the first session ends
    again = await member(srv, topic, "ann")
    await again.join()
    assert await history_of(srv).writer.flush(10.0)

    status, page = await api(srv, f"/api/rooms/{room}/sessions")
    assert status == 200 and page["next"] is None
    latest, first = page["items"]
    assert latest["emptied_at"] is None and [p["user_id"] for p in latest["participants"]] == [
        "ann"
    ]
    assert first["emptied_at"] is not None and first["peak_members"] == 2
    assert first["duration_s"] > 0
    assert [p["user_id"] for p in first["participants"]] == ["ann", "bob"]

    status, one = await api(srv, f"/api/rooms/{room}/sessions?limit=1")
    assert [s["session_id"] for s in one["items"]] == [latest["session_id"]] and one["next"]
    status, two = await api(srv, f"/api/rooms/{room}/sessions?limit=1&before={one['next']}")
    assert two == {"items": [first], "next": None}  # an ended session does not change
    status, none = await api(srv, f"/api/rooms/{room}/sessions?until={first['emptied_at']}")
    assert [s["session_id"] for s in none["items"]] == [first["session_id"]]

    status, anns = await api(srv, "/api/users/ann/sessions")
    assert [s["session_id"] for s in anns["items"]] == [latest["session_id"], first["session_id"]]
    status, bobs = await api(srv, "/api/users/bob/sessions")
    [stay] = bobs["items"]
    assert stay["room_id"] == room and stay["tracks"] == ["audio"] and stay["left_at"]

    status, msgs = await api(srv, f"/api/rooms/{room}/messages?limit=2")
    assert [m["id"] for m in msgs["items"]] == [ids[2], ids[1]] and msgs["next"]
    assert msgs["items"][0]["body"] == "m2" and msgs["items"][0]["from"] == "ann"
    status, rest = await api(srv, f"/api/rooms/{room}/messages?limit=2&before={msgs['next']}")
    assert [m["id"] for m in rest["items"]] == [ids[0]] and rest["next"] is None

    status, session = await api(srv, f"/api/rooms/{room}/session")
    assert status == 200 and session["created_at"] == latest["created_at"]
    assert session["events"] == []  # the exchange belongs to the first session


async def test_a_gateway_started_later_serves_the_history(
    room_server: StartServer, member: Connect, topic: str, postgres_url: str
) -> None:
    settings = {"admin_token": TOKEN, "database_url": postgres_url, "database_migrate": True}
    first = await room_server(**settings)
    await wait_ready(first)
    ann = await member(first, topic, "ann")
    await ann.join()
    for n in range(3):
        await ann.push("new_msg", {"body": f"m{n}"})
    await ann.sock.close()
    assert await history_of(first).writer.flush(10.0)

    second = await room_server(**settings)  # a restarted gateway: nothing in its memory
    await wait_ready(second)
    bob = await member(second, topic, "bob")
    reply = await bob.join({"history": 2})
    assert [m["body"] for m in reply[4]["response"]["history"]] == ["m1", "m2"]


async def test_history_endpoints_need_the_token_a_database_and_valid_parameters(
    room_server: StartServer, postgres_url: str
) -> None:
    room = uuid.uuid4()
    bare = await room_server(admin_token=TOKEN)
    assert (await api(bare, f"/api/rooms/{room}/sessions"))[0] == 501
    assert (await api(bare, "/api/users/ann/sessions", token=None))[0] == 401
    srv = await room_server(admin_token=TOKEN, database_url=postgres_url, database_migrate=True)
    await wait_ready(srv)
    assert (await api(srv, f"/api/rooms/{room}/messages", token="wrong"))[0] == 401
    assert (await api(srv, "/api/rooms/lobby/messages"))[0] == 400
    assert (await api(srv, f"/api/rooms/{room}/messages?limit=0"))[0] == 400
    assert (await api(srv, f"/api/rooms/{room}/messages?before=zz"))[0] == 400
    assert (await api(srv, f"/api/rooms/{room}/sessions?since=yesterday"))[0] == 400
    assert await api(srv, f"/api/rooms/{room}/messages") == (200, {"items": [], "next": None})
