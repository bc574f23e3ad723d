"""The `SessionStore` contract, against the memory and the Redis backends alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import pytest

from gateway.history.migrate import migrate
from gateway.history.retention import purge
from gateway.history.store import PostgresSessionStore, build_history
from gateway.signaling.redis import RedisSessionStore
from gateway.signaling.sessions import MAX_CHAT, MemorySessionStore, SessionStore, iso
from tests.contract.conftest import Clock, open_store_backend
from tests.support.postgres_server import PostgresServer

R = "6f9c1f7e-0000-4000-8000-000000000001"
RETENTION_S = 2.0


class SessionBackend:
    """A session store under contract, and `settle`: what a reader may rely on having happened.

    Memory and Redis write as they are called; PostgreSQL queues the writes for its batch
    writer and deletes old rows in a periodic job, so settling there waits for both."""

    def __init__(
        self, store: SessionStore, clock: Clock, settle: Callable[[], Awaitable[None]]
    ) -> None:
        self.store, self.clock, self.settle = store, clock, settle


async def _nothing() -> None:
    return None


@pytest.fixture(params=["memory", "redis", "cluster", "postgres"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[SessionBackend]:
    if request.param != "postgres":
        async with open_store_backend(request, request.param) as b:
            store: SessionStore
            if b.client is None:
                store = MemorySessionStore(RETENTION_S, wall=b.clock)
            else:
                store = RedisSessionStore(b.client, RETENTION_S, wall=b.clock)
            yield SessionBackend(store, b.clock, _nothing)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    clock = Clock(real=True)
    url = await server.create_database()
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pg: PostgresSessionStore = build_history(url, wall=clock)
    await pg.start()

    async def settle() -> None:
        assert await pg.writer.flush(10.0)
        async with pg.pool.acquire() as conn:
            await purge(conn, datetime.fromtimestamp(clock() - RETENTION_S, UTC))

    try:
        yield SessionBackend(pg, clock, settle)
    finally:
        await pg.stop()


def chat_message(n: int) -> bytes:
    """A new_msg payload as the room channel stores it (PostgreSQL keys messages by `id`)."""
    return b'{"id":"00000000-0000-4000-8000-%012d","from":"alice","body":"m","n":%d}' % (n, n)


@pytest.fixture
def sessions(backend: SessionBackend) -> SessionStore:
    return backend.store


async def test_unknown_room_has_no_session(sessions: SessionStore, backend: SessionBackend) -> None:
    assert await sessions.get("nope") is None
    assert await sessions.chat("nope", 10) == []


async def test_participants_and_exchange(sessions: SessionStore, backend: SessionBackend) -> None:
    t0 = backend.clock()
    await sessions.joined(R, "alice")
    await sessions.joined(R, "bob")
    await sessions.record(R, "offer", "alice", "bob")
    await sessions.record(R, "answer", "bob", "alice")
    for _ in range(3):
        await sessions.record(R, "ice-candidate", "alice", "bob")
    await sessions.record(R, "ice-candidate", "bob", "alice")
    await sessions.left(R, "bob", room_empty=False)
    await sessions.joined(R, "bob")

    await backend.settle()
    session = await sessions.get(R)

    assert session is not None
    assert session.room_id == R
    assert session.emptied_at is None
    assert session.created_at[:16] == iso(t0)[:16]
    assert [(p.user_id, p.joins, p.left_at) for p in session.participants] == [
        ("alice", 1, None),
        ("bob", 2, None),
    ]
    assert [(e.kind, e.from_, e.to, e.count) for e in session.events] == [
        ("offer", "alice", "bob", 1),
        ("answer", "bob", "alice", 1),
        ("candidates", "alice", "bob", 3),
        ("candidates", "bob", "alice", 1),
    ]


async def test_leaving_is_recorded(sessions: SessionStore, backend: SessionBackend) -> None:
    await sessions.joined(R, "alice")
    await sessions.left(R, "alice", room_empty=True)
    await backend.settle()
    session = await sessions.get(R)
    assert session is not None
    assert session.participants[0].left_at is not None
    assert session.emptied_at is not None


async def test_chat_keeps_the_last_messages(
    sessions: SessionStore, backend: SessionBackend
) -> None:
    for n in range(MAX_CHAT + 5):
        await sessions.add_chat(R, chat_message(n), backend.clock())
    await backend.settle()
    assert await sessions.chat(R, 2) == [chat_message(MAX_CHAT + 3), chat_message(MAX_CHAT + 4)]
    assert len(await sessions.chat(R, 1000)) == MAX_CHAT
    assert await sessions.chat(R, 0) == []


async def test_empty_room_is_dropped_after_retention_unless_rejoined(
    sessions: SessionStore, backend: SessionBackend
) -> None:
    await sessions.joined(R, "alice")
    await sessions.left(R, "alice", room_empty=True)
    await sessions.joined("kept", "bob")
    await sessions.left("kept", "bob", room_empty=True)
    await sessions.joined("kept", "bob")  # back before retention ran out

    await backend.clock.advance(3.1)
    await backend.settle()

    assert await sessions.get(R) is None
    kept = await sessions.get("kept")
    assert kept is not None and kept.emptied_at is None
