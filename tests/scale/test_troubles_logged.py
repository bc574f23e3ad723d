"""A socket's troubles show up as docs/observability.md says: two real gateway nodes on one
Redis, JSON logs. A broadcast crosses from node b to node a through Redis and buries a client
that stopped reading (dropped with 1013), an app's room authorizer raises on a join (the join is
answered, the neighbours go on), a client asks for a protocol version nobody speaks. Each is a
log line with its documented event and keys, and each documented metric of it moved."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import aiohttp

from tests.scale.conftest import node_env, scrape, total, wait_subscribed
from tests.support.gateway_proc import GatewayFactory, GatewayProcess
from tests.support.raw_ws import connect
from tests.support.redis_server import RedisServer

BLOB = {"blob": "y" * 60_000}
TOPIC = f"echo:{uuid.uuid4()}"


def events(gw: GatewayProcess) -> list[dict[str, Any]]:
    lines = [line for line in gw.output().splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def logged(gw: GatewayProcess, event: str) -> list[dict[str, Any]]:
    return [line for line in events(gw) if line.get("event") == event]


async def shout(ws: Any, ref: int) -> None:
    """Broadcast the blob and read up to its reply, so the sender itself keeps up."""
    await ws.send_v2("1", str(ref), TOPIC, "broadcast", BLOB)
    while True:
        frame = await ws.recv_json(timeout=10)
        if frame[1] == str(ref):
            assert frame[4]["status"] == "ok", frame
            return


async def test_a_slow_consumer_a_crashed_join_and_a_refused_socket_are_logged_and_counted(
    gateway: GatewayFactory, redis_server: RedisServer
) -> None:
    extra = {
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_LOG_LEVEL": "info",
        "GATEWAY_OUTBOUND_LIMIT_BYTES": "200000",
        "GATEWAY_SOCKET_SEND_BUFFER_BYTES": "16384",
        "GATEWAY_ROOM_AUTHORIZER": "tests.rooms.authorizers:crashes_when_asked",
    }
    a = await gateway(env=node_env(redis_server.url, "node-a", **extra))
    b = await gateway(env=node_env(redis_server.url, "node-b", **extra))

    # A client on node a stops reading; broadcasts from node b reach it through Redis.
    async with (
        connect(a.ws_url, params={"token": "slow"}) as slow,
        connect(b.ws_url, params={"token": "loud"}) as loud,
    ):
        await slow.send_v2("1", "1", TOPIC, "phx_join", {})
        assert (await slow.recv_json())[4]["status"] == "ok"
        await loud.send_v2("1", "1", TOPIC, "phx_join", {})
        assert (await loud.recv_json())[4]["status"] == "ok"
        await wait_subscribed(redis_server.url, TOPIC, 2)
        deadline, ref = time.monotonic() + 60, 1
        while not logged(a, "slow_consumer_disconnected"):
            assert time.monotonic() < deadline, "the slow consumer was never dropped"
            ref += 1
            await shout(loud, ref)
        assert await slow.wait_closed(timeout=30) == 1013

    dropped = logged(a, "slow_consumer_disconnected")[0]
    assert dropped["level"] == "warning" and dropped["reason"] == "outbound limit", dropped
    assert dropped["owed"] > 0
    assert total(scrape(a.port), "gateway_socket_slow_consumer_disconnects_total") >= 1
    assert total(scrape(b.port), "gateway_redis_publish_seconds_count") > 0

    # An app's room authorizer raises: the join is answered, the socket and its neighbour go on.
    room = f"room:{uuid.uuid4()}"
    async with (
        connect(a.ws_url, params={"token": "ann", "crash": "yes"}) as ann,
        connect(a.ws_url, params={"token": "bob"}) as bob,
    ):
        await ann.send_v2("1", "1", room, "phx_join", {})
        assert (await ann.recv_json())[4] == {
            "status": "error",
            "response": {"reason": "join crashed"},
        }
        await bob.send_v2("1", "1", room, "phx_join", {})
        assert (await bob.recv_json())[4]["status"] == "ok"
        await ann.send_text('[null,"2","phoenix","heartbeat",{}]')
        assert (await ann.recv_json())[1] == "2"
    crashed = logged(a, "channel_crashed")
    assert crashed and crashed[0]["level"] == "error" and crashed[0]["phase"] == "join"
    assert crashed[0]["topic"] == room and "authorizer bug" in crashed[0]["exception"]
    assert total(scrape(a.port), "gateway_channel_joins_total", result="crash") == 1

    # A version nobody speaks: 403 before the upgrade.
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{a.url}/socket/websocket?vsn=9.0.0") as resp,
    ):
        assert resp.status == 403
    refused = logged(a, "socket_refused")
    assert [r["vsn"] for r in refused if r.get("reason") == "vsn"] == ["9.0.0"]
    assert (
        total(scrape(a.port), "gateway_socket_connects_total", transport="websocket", result="vsn")
        == 1
    )
