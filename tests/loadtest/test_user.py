"""One virtual user against the test server: V1 and V2 text, binary replies, heartbeats as
phoenix.js sends them, and closes counted by code."""

from __future__ import annotations

import asyncio
import time

from loadtest.metrics import Metrics
from loadtest.user import VirtualUser
from tests.loadtest.conftest import ServerFactory


async def test_v1_socket_joins_and_gets_replies(phoenix_server: ServerFactory) -> None:
    srv = await phoenix_server()
    m = Metrics()
    user = VirtualUser(0, srv.url, m, vsn="1.0.0", params={"token": "ann"})
    assert await user.connect()
    assert await user.join("echo:v1")
    assert user.user_id == "ann"
    waiter = user.send("echo:v1", "ping", b'{"n":1}', wait=True)
    assert waiter is not None
    reply = await waiter
    assert reply is not None and reply.status == "ok" and bytes(reply.payload) == b'{"n":1}'
    await user.close()
    assert srv.params_seen[0]["vsn"] == "1.0.0"
    assert m.count("reply") == 1 and m.counters.errors == 0


async def test_binary_push_gets_a_binary_reply_matched_by_ref(
    phoenix_server: ServerFactory,
) -> None:
    srv = await phoenix_server()
    m = Metrics()
    user = VirtualUser(0, srv.url, m)
    assert await user.connect()
    assert await user.join("echo:bin")
    waiter = user.send("echo:bin", "binary_event", b"\x01\x02", text=False, wait=True)
    assert waiter is not None
    reply = await waiter
    assert reply is not None and reply.status == "ok" and reply.payload == b"\x01\x02"
    await user.close()
    assert m.counters.errors == 0


async def test_heartbeats_are_sent_and_timed(phoenix_server: ServerFactory) -> None:
    srv = await phoenix_server()
    m = Metrics()
    user = VirtualUser(0, srv.url, m, heartbeat_s=0.05)
    assert await user.connect()
    for _ in range(3):
        await asyncio.sleep(0.06)
        user.tick(time.monotonic_ns())
    await asyncio.sleep(0.05)
    assert m.count("heartbeat") == 3
    assert user.connected
    await user.close()


async def test_unanswered_heartbeat_closes_like_phoenix_js(phoenix_server: ServerFactory) -> None:
    srv = await phoenix_server(answer_heartbeats=False)
    m = Metrics()
    user = VirtualUser(0, srv.url, m, heartbeat_s=0.05)
    assert await user.connect()
    await asyncio.sleep(0.06)
    user.tick(time.monotonic_ns())  # sends a heartbeat
    await asyncio.sleep(0.06)
    user.tick(time.monotonic_ns())  # still unanswered: close 1000
    assert user.ws is not None
    assert await asyncio.wait_for(user.ws.closed, 3) == 1000
    assert m.errors["heartbeat_timeout"] == 1


async def test_server_close_is_counted_by_code(phoenix_server: ServerFactory) -> None:
    srv = await phoenix_server()
    m = Metrics()
    user = VirtualUser(0, srv.url, m)
    assert await user.connect()
    assert await user.join("echo:x")
    await srv.conns[0].ws.close(code=1012)
    assert user.ws is not None
    assert await asyncio.wait_for(user.ws.closed, 3) == 1012
    assert m.errors["close_1012"] == 1 and m.counters.disconnects == 1


async def test_unanswered_push_times_out(phoenix_server: ServerFactory) -> None:
    srv = await phoenix_server(delay=0.3)
    m = Metrics()
    user = VirtualUser(0, srv.url, m, reply_timeout_s=0.05)
    assert await user.connect()
    assert await user.join("echo:slow")  # no tick runs meanwhile, so the join may take 0.3 s
    user.send("echo:slow", "ping", b"{}")
    await asyncio.sleep(0.1)
    user.tick(time.monotonic_ns())
    assert m.errors["reply_timeout"] == 1
    await user.close()
