"""Abuse: a flooding client is limited then closed while a polite one is untouched; random
frames on many sockets leave the server serving and leak no connections or tasks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import StartServer, WireServer
from tests.support.raw_ws import ConnectionClosed, RawSocket, connect


async def test_flooder_gets_rate_limited_then_1008_and_polite_client_is_unaffected(
    wire_server: StartServer,
) -> None:
    srv = await wire_server(trust_token_as_user_id=True)
    async with (
        connect(srv.url, params={"token": "flooder"}) as flood,
        connect(srv.url, params={"token": "polite"}) as polite,
    ):
        for ws in (flood, polite):
            await ws.send_v2("1", "1", f"fixture:{id(ws)}", "phx_join", {})
            for _ in range(3):
                await ws.recv_json()

        latencies: list[float] = []

        async def polite_loop() -> None:
            for i in range(10):
                sent = time.perf_counter()
                await polite.send_v2(
                    "1", str(100 + i), f"fixture:{id(polite)}", "new_msg", {"i": i}
                )
                got_reply = False
                while not got_reply:
                    frame = await polite.recv_json()
                    got_reply = frame[3] == "phx_reply"
                    if got_reply:
                        assert frame[4]["status"] == "ok"
                latencies.append(time.perf_counter() - sent)
                await asyncio.sleep(0.25)

        task = asyncio.create_task(polite_loop())
        replies: list[str] = []
        close_code = None

        async def reader() -> None:
            nonlocal close_code
            try:
                while True:
                    frame = await flood.recv_json(timeout=5)
                    if frame[3] == "phx_reply":
                        replies.append(frame[4]["response"].get("reason", frame[4]["status"]))
            except ConnectionClosed as closed:
                close_code = closed.code

        reading = asyncio.create_task(reader())
        for i in range(400):
            if reading.done():
                break
            try:
                await flood.send_v2("1", str(10 + i), f"fixture:{id(flood)}", "new_msg", {"i": i})
            except ConnectionResetError:
                break
            await asyncio.sleep(0.005)
        await reading
        await task
        # the burst of 5 first, then refusals, in the order of the pushes, then the close
        assert replies[:5] == ["ok"] * 5
        assert set(replies[5:]) <= {"ok", "rate_limited"}
        # refilled tokens let a few more through; the refusal that trips the rule closes instead
        assert replies.count("rate_limited") >= 19
        assert close_code == 1008
        assert len(latencies) == 10
        assert max(latencies) < 0.25


frames = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80),
    st.builds(
        lambda jr, ref, topic, event, payload: json.dumps([jr, ref, topic, event, payload]),
        st.one_of(st.none(), st.text(max_size=3), st.integers()),
        st.one_of(st.none(), st.text(max_size=3), st.integers()),
        st.sampled_from(["echo:f", "fixture:f", "phoenix", "custom:raise", "nope", "room:x", ""]),
        st.sampled_from(
            ["phx_join", "phx_leave", "heartbeat", "boom", "new_msg", "broadcast", "x"]
        ),
        st.one_of(
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
            st.integers(),
            st.none(),
        ),
    ),
)


async def _fire(server: WireServer, batches: list[list[str | bytes]]) -> None:
    async def one(batch: list[str | bytes]) -> None:
        try:
            async with connect(server.url) as ws:
                for frame in batch:
                    if isinstance(frame, bytes):
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_text(frame)
                await asyncio.sleep(0.01)
        except (ConnectionClosed, ConnectionResetError, OSError):
            return

    await asyncio.gather(*(one(b) for b in batches))


async def _clean_client_works(server: WireServer) -> None:
    ws: RawSocket
    async with connect(server.url) as ws:
        await ws.send_v2("1", "1", "echo:clean", "phx_join", {})
        assert (await ws.recv_json())[4]["status"] == "ok"
        await ws.send_v2("1", "2", "echo:clean", "ping", {"ok": 1})
        assert (await ws.recv_json())[4] == {"response": {"ok": 1}, "status": "ok"}


async def test_random_frames_on_many_sockets_leave_no_trace(wire_server: StartServer) -> None:
    srv = await wire_server(rate_limits=False)
    await _clean_client_works(srv)
    await asyncio.sleep(0.05)
    baseline_tasks = len(asyncio.all_tasks())
    collected: list[list[list[str | bytes]]] = []

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.lists(frames, min_size=1, max_size=8), min_size=1, max_size=6))
    def gather(batches: list[list[str | bytes]]) -> None:
        collected.append(batches)

    gather()
    for batches in collected:
        await _fire(srv, batches)
    await _clean_client_works(srv)
    for _ in range(100):
        if len(srv.node.hub) == 0 and len(asyncio.all_tasks()) <= baseline_tasks:
            break
        await asyncio.sleep(0.05)
    assert len(srv.node.hub) == 0
    assert srv.node.pubsub.topics() == 0
    assert len(asyncio.all_tasks()) <= baseline_tasks


async def test_a_full_rate_limit_table_never_locks_out_new_users(wire_server: StartServer) -> None:
    # Join buckets that stay in the table for 80 s, a table of 50, and 120 users who stay
    # connected: each newcomer is let in (the oldest buckets are evicted), none is refused.
    srv = await wire_server(
        rate_limit_max_keys=50,
        rate_join=0.0125,
        burst_join=1,
        rate_connect=1e6,
        burst_connect=10**6,
    )
    async with contextlib.AsyncExitStack() as stack:
        for n in range(120):
            ws = await stack.enter_async_context(connect(srv.url, params={"token": f"u{n}"}))
            await ws.send_v2("1", "1", f"echo:{n}", "phx_join", {})
            reply = await ws.recv_json()
            assert reply[4]["status"] == "ok", (n, reply)
        limiter = srv.node.admission.limiter
        assert len(limiter) == 50
        assert limiter.evicted >= 70  # the joins, and the address's connect bucket
