"""The `SessionStore` contract, against the memory and the Redis backends alike."""

from __future__ import annotations

import pytest

from gateway.signaling.redis import RedisSessionStore
from gateway.signaling.sessions import MAX_CHAT, MemorySessionStore, SessionStore, iso
from tests.contract.conftest import StoreBackend

R = "6f9c1f7e-0000-4000-8000-000000000001"


@pytest.fixture
def sessions(store_backend: StoreBackend) -> SessionStore:
    if store_backend.client is None:
        return MemorySessionStore(2.0, wall=store_backend.clock)
    return RedisSessionStore(store_backend.client, 2.0, wall=store_backend.clock)


async def test_unknown_room_has_no_session(sessions: SessionStore) -> None:
    assert await sessions.get("nope") is None
    assert await sessions.chat("nope", 10) == []


async def test_participants_and_exchange(
    sessions: SessionStore, store_backend: StoreBackend
) -> None:
    t0 = store_backend.clock()
    await sessions.joined(R, "alice")
    await sessions.joined(R, "bob")
    await sessions.record(R, "offer", "alice", "bob")
    await sessions.record(R, "answer", "bob", "alice")
    for _ in range(3):
        await sessions.record(R, "ice-candidate", "alice", "bob")
    await sessions.record(R, "ice-candidate", "bob", "alice")
    await sessions.left(R, "bob", room_empty=False)
    await sessions.joined(R, "bob")

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


async def test_leaving_is_recorded(sessions: SessionStore) -> None:
    await sessions.joined(R, "alice")
    await sessions.left(R, "alice", room_empty=True)
    session = await sessions.get(R)
    assert session is not None
    assert session.participants[0].left_at is not None
    assert session.emptied_at is not None


async def test_chat_keeps_the_last_messages(sessions: SessionStore) -> None:
    for n in range(MAX_CHAT + 5):
        await sessions.add_chat(R, b'{"n":%d}' % n)
    assert await sessions.chat(R, 2) == [b'{"n":%d}' % (MAX_CHAT + 3), b'{"n":%d}' % (MAX_CHAT + 4)]
    assert len(await sessions.chat(R, 1000)) == MAX_CHAT
    assert await sessions.chat(R, 0) == []


async def test_empty_room_is_dropped_after_retention_unless_rejoined(
    sessions: SessionStore, store_backend: StoreBackend
) -> None:
    await sessions.joined(R, "alice")
    await sessions.left(R, "alice", room_empty=True)
    await sessions.joined("kept", "bob")
    await sessions.left("kept", "bob", room_empty=True)
    await sessions.joined("kept", "bob")  # back before retention ran out

    await store_backend.clock.advance(3.1)

    assert await sessions.get(R) is None
    kept = await sessions.get("kept")
    assert kept is not None and kept.emptied_at is None
