"""The history's promise end to end: two gateway processes on one Redis and one PostgreSQL hold a
call and a chat across nodes, PostgreSQL is stopped and started mid-chat, both gateways are
restarted (SIGTERM: drained, queue flushed), and every session, participant and message is then
read back through the API of either node (phoenix.js clients, real processes)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from typing import Any

import pytest

from tests.scale.conftest import node_env, wait_subscribed
from tests.support.gateway_proc import GatewayFactory, GatewayProcess
from tests.support.node_client import NodeClient, NodeClientFactory
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.js, pytest.mark.redis]

TOKEN = "history-admin"
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def get(gw: GatewayProcess, path: str) -> tuple[int, Any]:
    request = urllib.request.Request(gw.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


async def database_is(gw: GatewayProcess, state: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        _, body = await asyncio.to_thread(get, gw, "/readyz")
        if isinstance(body, dict) and body.get("database") == state:
            return
        assert time.monotonic() < deadline, f"/readyz never said database: {state}: {body}"
        await asyncio.sleep(0.1)


async def chat(client: NodeClient, body: str) -> None:
    reply = await client.push("c", "new_msg", {"body": body}, timeout=10)
    assert reply["status"] == "ok", reply


async def joined(client: NodeClient, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = await client.state()
        if state["socket"] == "open" and state["channels"].get("c") == "joined":
            return
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)


async def test_two_gateways_and_postgres_restarted_keep_every_session_and_message(
    gateway: GatewayFactory,
    redis_server: RedisServer,
    postgres_private: PostgresServer,
    node_client: NodeClientFactory,
) -> None:
    url = postgres_private.url
    extra = {"GATEWAY_DATABASE_URL": url, "GATEWAY_ADMIN_TOKEN": TOKEN}
    a = await gateway(env=node_env(redis_server.url, "node-a", GATEWAY_DATABASE_MIGRATE="true",
                                   **extra))  # fmt: skip
    b = await gateway(env=node_env(redis_server.url, "node-b", **extra))
    for gw in (a, b):
        await database_is(gw, "ok")
    room = str(uuid.uuid4())
    topic = f"room:{room}"
    ann = await node_client(a.ws_url, params={"token": "ann"}, fast_reconnect=True)
    bob = await node_client(b.ws_url, params={"token": "bob"}, fast_reconnect=True)
    assert (await ann.join("c", topic))["status"] == "ok"
    assert (await bob.join("c", topic))["status"] == "ok"
    await wait_subscribed(redis_server.url, topic, 2)
    await bob.expect(lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 2, 5)

    # A call across the nodes, and a chat.
    assert (await ann.push("c", "offer", {"sdp": SDP, "to": "bob"}))["status"] == "ok"
    assert (await bob.push("c", "answer", {"sdp": SDP, "to": "ann"}))["status"] == "ok"
    for n in range(3):
        candidate = {"candidate": f"candidate:{n} 1 udp 1 127.0.0.1 9 typ host", "to": "ann",
                     "sdpMid": "0", "sdpMLineIndex": 0}  # fmt: skip
        assert (await bob.push("c", "ice-candidate", candidate))["status"] == "ok"
    await chat(ann, "m0")
    await chat(bob, "m1")

    # PostgreSQL goes away mid-chat: relay and chat go on, the writes wait in the queues.
    await asyncio.to_thread(postgres_private.stop)
    await chat(ann, "m2")
    await chat(bob, "m3")
    await database_is(a, "degraded")
    await asyncio.to_thread(postgres_private.start)
    for gw in (a, b):
        await database_is(gw, "ok")

    # Both gateways restarted one after the other (a rolling upgrade): each one's client is back
    # before the next goes, so the room never empties and its session goes on (were both
    # members gone at once, the rejoin would start a new session, as docs/history.md says).
    for gw, client in ((a, ann), (b, bob)):
        await gw.restart()
        await database_is(gw, "ok")
        await joined(client)
    await chat(ann, "m4")

    # Everything, read back through either node.
    deadline = time.monotonic() + 15
    while True:
        status, page = await asyncio.to_thread(get, b, f"/api/rooms/{room}/messages?limit=50")
        assert status == 200, page
        bodies = [m["body"] for m in reversed(page["items"])]
        if bodies == ["m0", "m1", "m2", "m3", "m4"]:
            break
        assert time.monotonic() < deadline, bodies
        await asyncio.sleep(0.2)
    assert [m["from"] for m in reversed(page["items"])] == ["ann", "bob", "ann", "bob", "ann"]

    status, sessions = await asyncio.to_thread(get, a, f"/api/rooms/{room}/sessions")
    assert status == 200
    participants = {p["user_id"] for s in sessions["items"] for p in s["participants"]}
    assert participants == {"ann", "bob"}, sessions
    status, session = await asyncio.to_thread(get, a, f"/api/rooms/{room}/session")
    assert status == 200
    kinds = [(e["kind"], e["from"], e["to"]) for e in session["events"]]
    assert ("offer", "ann", "bob") in kinds and ("answer", "bob", "ann") in kinds, kinds
    for user in ("ann", "bob"):
        status, mine = await asyncio.to_thread(get, b, f"/api/users/{user}/sessions")
        assert status == 200 and room in {s["room_id"] for s in mine["items"]}, mine
