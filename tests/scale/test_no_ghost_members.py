"""A channel stops exactly once whatever interrupts it: 1,000 anonymous clients join one room
through a gateway on a real Redis and close right after their presence_state, 20 at a time;
then the room is empty, a newcomer is let in, and the joined-channels gauge is back to zero."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid

from tests.scale.conftest import node_env
from tests.support.gateway_proc import GatewayFactory
from tests.support.raw_ws import connect
from tests.support.redis_server import RedisServer

CLIENTS = 1000
AT_ONCE = 20


def gauge(port: int, family: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(family + " ") or line.startswith(family + "{"):
                return float(line.rpartition(" ")[2])
    raise AssertionError(f"{family} not on the page")


async def join_and_drop(url: str, topic: str) -> None:
    async with connect(url) as ws:
        await ws.send_v2("1", "1", topic, "phx_join", {})
        while True:
            frame = await ws.recv_json(timeout=20)
            if frame[3] == "presence_state" or (
                frame[3] == "phx_reply" and frame[4]["status"] != "ok"
            ):
                break
    # Leaving the block closes the socket without phx_leave.


async def test_join_then_close_leaves_no_ghost_members(
    gateway: GatewayFactory, redis_server: RedisServer
) -> None:
    env = node_env(redis_server.url, "node-g")
    env.update(GATEWAY_RATE_LIMITS="false", GATEWAY_ROOM_GRACE_MS="0")
    gw = await gateway(env=env)
    topic = f"room:{uuid.uuid4()}"
    pending = list(range(CLIENTS))

    async def worker() -> None:
        while pending:
            pending.pop()
            await join_and_drop(gw.ws_url, topic)

    await asyncio.gather(*(worker() for _ in range(AT_ONCE)))

    await settled(gw.port)
    # A newcomer gets in (no "room full") and finds nobody else present.
    async with connect(gw.ws_url, params={"token": "newcomer"}) as ws:
        await ws.send_v2("1", "1", topic, "phx_join", {})
        reply = await ws.recv_json(timeout=10)
        assert reply[4]["status"] == "ok", reply
        # The last leavers' diff window may close after the newcomer subscribed and before its
        # presence_state (read from Redis): a diff can come first, as in Phoenix, and
        # phoenix.js holds diffs until the state.
        state = await ws.recv_json(timeout=10)
        while state[3] == "presence_diff":
            state = await ws.recv_json(timeout=10)
        assert state[3] == "presence_state" and list(state[4]) == ["newcomer"]
    await settled(gw.port)


async def settled(port: int) -> None:
    """No channel joined and no presence entry left, once every socket is closed."""
    deadline = time.monotonic() + 20
    while (
        gauge(port, "gateway_channel_joined_active") != 0
        or gauge(port, "gateway_presence_entries") != 0
    ):
        assert time.monotonic() < deadline, "channels or presence left with no socket open"
        await asyncio.sleep(0.2)
