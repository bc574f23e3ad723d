"""PostgreSQL stopped mid-traffic and started again: relay and chat go on at the same latency,
/readyz says `database: degraded` (200), nothing queued is lost, the counters tell the story;
a full queue drops its oldest writes, counted."""

from __future__ import annotations

import asyncio
import statistics
import time

import asyncpg
from prometheus_client import REGISTRY

from gateway.history.migrate import migrate
from gateway.history.store import build_history
from tests.history.conftest import TOKEN, api, history_of, wait_ready
from tests.rooms.conftest import Connect, StartServer
from tests.support.postgres_server import PostgresServer


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def offers(ann: object, count: int) -> list[float]:
    """Reply times of `count` offers from ann to bob."""
    took = []
    for n in range(count):
        started = time.perf_counter()
        reply = await ann.push("offer", {"sdp": f"o{n}", "to": "bob"})  # type: ignore[attr-defined]
        took.append(time.perf_counter() - started)
        assert reply["status"] == "ok"
    return took


async def test_postgres_stopped_mid_traffic_loses_nothing_queued(
    postgres_private: PostgresServer, room_server: StartServer, member: Connect, topic: str
) -> None:
    # postgres_private first: it is torn down last, after the gateway has flushed into it.
    url = await postgres_private.create_database()
    srv = await room_server(
        admin_token=TOKEN, presence_coalesce_ms=0, database_url=url, database_migrate=True,
        database_backoff_max_ms=200,
    )  # fmt: skip
    await wait_ready(srv)
    room = topic[5:]
    ann, bob = await member(srv, topic, "ann"), await member(srv, topic, "bob")
    await ann.join()
    await bob.join()
    writes, errors = (
        sample("gateway_database_writes_total"),
        sample("gateway_database_errors_total"),
    )

    up = await offers(ann, 100)
    await asyncio.to_thread(postgres_private.stop)
    body = await wait_ready(srv, "degraded")
    assert body["status"] == "ready"
    down = await offers(ann, 100)
    sent = [(await ann.push("new_msg", {"body": f"m{n}"}))["response"]["id"] for n in range(20)]
    assert len(history_of(srv).writer) >= 120  # held, not written, not dropped
    # A join still gets the chat it asks for: what this node holds in its queue.
    carol = await member(srv, topic, "carol")
    reply = await carol.join({"history": 5})
    assert [m["id"] for m in reply[4]["response"]["history"]] == sent[-5:]
    await asyncio.to_thread(postgres_private.start)
    await wait_ready(srv, "ok")
    assert await history_of(srv).writer.flush(10.0)

    # The reply path never waited for the database.
    assert statistics.median(down) < statistics.median(up) * 3 + 0.002, (up, down)
    status, session = await api(srv, f"/api/rooms/{room}/session")
    assert status == 200
    assert sum(1 for e in session["events"] if e["kind"] == "offer") == 200
    status, page = await api(srv, f"/api/rooms/{room}/messages?limit=50")
    assert [m["id"] for m in page["items"]] == sent[::-1]
    assert history_of(srv).writer.dropped == 0
    # 2 joins, 200 offers, 20 messages, carol's join.
    assert sample("gateway_database_writes_total") - writes == 223
    assert sample("gateway_database_errors_total") > errors


async def test_a_full_queue_drops_its_oldest_writes(postgres_private: PostgresServer) -> None:
    url = await postgres_private.create_database()
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    await asyncio.to_thread(postgres_private.stop)
    store = build_history(url, queue=50, backoff_max_s=0.2)
    await store.start()
    dropped = sample("gateway_database_dropped_writes_total")
    room = "6f9c1f7e-0000-4000-8000-000000000009"
    for n in range(80):
        message = b'{"id":"00000000-0000-4000-8000-%012d","from":"ann","body":"m%d"}' % (n, n)
        await store.add_chat(room, message, time.time())
    assert store.writer.dropped == 30 and len(store.writer) == 50
    assert sample("gateway_database_dropped_writes_total") - dropped == 30
    await asyncio.to_thread(postgres_private.start)
    assert await store.writer.flush(10.0)
    kept = await store.chat(room, 100)
    assert [m.split(b'"body":"')[1][:-2] for m in kept] == [b"m%d" % n for n in range(30, 80)]
    await store.stop()


async def test_chat_is_kept_in_the_order_it_was_stamped_whenever_its_write_runs(
    postgres_url: str,
) -> None:
    # Two nodes stamp m0 then m1; m1's node queues its write first (the other node's loop was
    # busy): the history still reads m0, m1, each at the instant in its `timestamp`.
    conn = await asyncpg.connect(postgres_url)
    await migrate(conn)
    store = build_history(postgres_url)
    await store.start()
    room = "6f9c1f7e-0000-4000-8000-00000000000a"
    stamped = round(time.time(), 3)  # whole milliseconds: `at` keeps microseconds exactly
    late = b'{"id":"00000000-0000-4000-8000-000000000001","from":"bob","body":"m1"}'
    early = b'{"id":"00000000-0000-4000-8000-000000000002","from":"ann","body":"m0"}'
    await store.add_chat(room, late, stamped + 0.001)
    await store.add_chat(room, early, stamped)
    assert await store.writer.flush(10.0)
    kept = await store.chat(room, 10)
    assert [m.split(b'"body":"')[1][:-2] for m in kept] == [b"m0", b"m1"]
    ats = await conn.fetch("SELECT at FROM gateway_messages WHERE room_id = $1 ORDER BY at", room)
    assert [round((r["at"].timestamp() - stamped) * 1e6) for r in ats] == [0, 1000]
    await conn.close()
    await store.stop()
