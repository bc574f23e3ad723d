"""`SessionStore` on PostgreSQL: writes go to the batch writer, reads to a small pool.

Writes return at once (the `BatchWriter` queues them); `get` and `chat` read the tables, and
`chat` adds what this node has queued but not yet committed, so a join's `history` holds the
messages just sent even while the database is away. Sessions are kept `retention_days`, not
`session_retention_s`: this is the store that keeps history.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime

import asyncpg
import structlog

from gateway.history.retention import purge_loop
from gateway.history.writer import CHAT, JOINED, LEFT, SIGNAL, BatchWriter
from gateway.observability import metrics
from gateway.signaling.sessions import (
    MAX_CHAT,
    MAX_EVENTS,
    Participant,
    Session,
    SignalEvent,
    StoreUnavailable,
    iso,
)

log = structlog.get_logger("gateway.history")

READ_TIMEOUT_S = 2.0
DB_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)  # a join waits at most this for its history; then it gets what is queued


def shown(at: datetime | None) -> str | None:
    return None if at is None else iso(at.timestamp())


class PostgresSessionStore:
    def __init__(
        self,
        url: str,
        writer: BatchWriter,
        *,
        retention_s: float = 0.0,
        flush_timeout_s: float = 10.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._pool: asyncpg.Pool | None = None
        self.writer = writer
        self.retention_s = retention_s
        self.flush_timeout_s = flush_timeout_s
        self._wall = wall
        self._purger: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self.writer.healthy

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresSessionStore.start() was not awaited")
        return self._pool

    async def start(self) -> None:
        # min_size 0 connects nothing yet: a database that is down at start is no error.
        self._pool = await asyncpg.create_pool(
            self.url, min_size=0, max_size=4, timeout=3.0, command_timeout=10.0
        )
        self.writer.start()
        if self.retention_s > 0:
            loop = asyncio.get_running_loop()
            self._purger = loop.create_task(purge_loop(self.pool, self.retention_s, self._wall))

    async def stop(self) -> None:
        """On a graceful drain: write out the queue (bounded in time), then close."""
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        await self.writer.close(self.flush_timeout_s)
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 2.0)
            pool.terminate()

    # -- writes: queued ---------------------------------------------------------------------
    async def joined(self, room: str, user: str, tracks: list[str] | None = None) -> None:
        self.writer.add((JOINED, room, user, self._wall(), tracks))

    async def left(self, room: str, user: str, room_empty: bool) -> None:
        self.writer.add((LEFT, room, user, self._wall(), room_empty))

    async def record(self, room: str, kind: str, sender: str, to: str) -> None:
        self.writer.add((SIGNAL, room, kind, sender, to, self._wall()))

    async def add_chat(self, room: str, message: bytes, at: float) -> None:
        self.writer.add((CHAT, room, message, at))

    # -- reads ------------------------------------------------------------------------------
    async def chat(self, room: str, last: int) -> list[bytes]:
        if last <= 0:
            return []
        last = min(last, MAX_CHAT)  # as the other stores; the whole history is the messages API
        pending = self.writer.pending_chat(room)
        try:
            async with self.pool.acquire(timeout=READ_TIMEOUT_S) as conn:
                rows = await conn.fetch(
                    "SELECT message FROM gateway_messages WHERE room_id = $1 "
                    "ORDER BY at DESC, id DESC LIMIT $2",
                    room,
                    last,
                    timeout=READ_TIMEOUT_S,
                )
        except DB_ERRORS as exc:
            metrics.DATABASE_ERRORS.inc()
            log.warning("database_read_failed", what="chat", error=str(exc) or type(exc).__name__)
            rows = []
        stored = [r["message"].encode() for r in reversed(rows)]
        # A batch in flight may be committed already: keep one copy of each message.
        seen = set(stored)
        merged = stored + [m for m in pending if m not in seen]
        return merged[-last:]

    async def get(self, room: str) -> Session | None:
        try:
            return await self._get(room)
        except DB_ERRORS as exc:
            metrics.DATABASE_ERRORS.inc()
            raise StoreUnavailable(str(exc)) from exc

    async def _get(self, room: str) -> Session | None:
        async with self.pool.acquire(timeout=READ_TIMEOUT_S) as conn:
            head = await conn.fetchrow(
                "SELECT id, created_at, emptied_at FROM gateway_sessions WHERE room_id = $1 "
                "ORDER BY created_at DESC, id DESC LIMIT 1",
                room,
            )
            if head is None:
                return None
            people = await conn.fetch(
                "SELECT user_id, joined_at, left_at, joins FROM gateway_participants "
                "WHERE session_id = $1 ORDER BY join_order",
                head["id"],
            )
            events = await conn.fetch(
                "SELECT kind, sender, recipient, at, count FROM gateway_events "
                "WHERE room_id = $1 AND started_at >= $2 "
                "AND ($3::timestamptz IS NULL OR started_at <= $3) "
                "ORDER BY seq DESC LIMIT $4",
                room,
                head["created_at"],
                head["emptied_at"],
                MAX_EVENTS,
            )
        return Session(
            room_id=room,
            created_at=iso(head["created_at"].timestamp()),
            emptied_at=shown(head["emptied_at"]),
            participants=[
                Participant(
                    p["user_id"], iso(p["joined_at"].timestamp()), shown(p["left_at"]), p["joins"]
                )
                for p in people
            ],
            events=[
                SignalEvent(
                    e["kind"], e["sender"], e["recipient"], iso(e["at"].timestamp()), e["count"]
                )
                for e in reversed(events)
            ],
        )


def build_history(
    url: str,
    *,
    queue: int = 100_000,
    batch: int = 500,
    backoff_max_s: float = 5.0,
    migrate: bool = False,
    retention_days: float = 0.0,
    flush_timeout_s: float = 10.0,
    wall: Callable[[], float] = time.time,
) -> PostgresSessionStore:
    """The store and its writer for `url` (nothing connects until `start`)."""

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(url, timeout=3.0, command_timeout=30.0)

    writer = BatchWriter(
        connect, limit=queue, batch=batch, backoff_max_s=backoff_max_s, migrate_on_connect=migrate
    )
    return PostgresSessionStore(
        url,
        writer,
        retention_s=retention_days * 86_400,
        flush_timeout_s=flush_timeout_s,
        wall=wall,
    )
