"""The batch writer: one task per process moves queued history writes into PostgreSQL.

`add` only appends to a bounded deque, so a signal's reply never waits for the database. The
task takes up to `batch` writes, writes them in one transaction (set-based multi-row INSERTs
through `unnest`, the joins and leaves through two SQL functions, in order) and only then
forgets them: while PostgreSQL is down the writes stay queued, and the task reconnects with
backoff and carries on. Past `limit` queued writes the oldest is dropped and counted.

A batch has an id recorded in the same transaction, and every event and message has an id made
here, so a batch retried after a commit whose answer was lost adds nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import structlog

from gateway.history.migrate import LATEST, migrate, schema_version
from gateway.observability import metrics

log = structlog.get_logger("gateway.history")

# Queued writes, as plain tuples (one allocation on the hot path):
JOINED = 0  # (JOINED, room, user, at, tracks)
LEFT = 1  # (LEFT, room, user, at, room_empty)
SIGNAL = 2  # (SIGNAL, room, kind, sender, to, at)
CHAT = 3  # (CHAT, room, message, at)
Write = tuple[Any, ...]

_RUNS_KEPT = 10_000  # rooms whose last candidate run is remembered, to extend it
_IDLE_CHECK_S = 2.0  # an idle writer checks its connection this often (for /readyz)


class _ChatFields(msgspec.Struct):
    id: str
    from_: str = msgspec.field(name="from")
    body: Any = None


_chat_dec = msgspec.json.Decoder(_ChatFields)


class SchemaBehind(Exception):
    """The database lacks migrations this gateway needs."""


def _ts(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


class _Run:
    """The last run of candidates in a room: further ones in a row extend its row."""

    __slots__ = ("count", "id", "pair", "started")

    def __init__(self, id: uuid.UUID, pair: tuple[str, str], started: float, count: int) -> None:
        self.id, self.pair, self.started, self.count = id, pair, started, count


class BatchWriter:
    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        *,
        limit: int = 100_000,
        batch: int = 500,
        backoff_max_s: float = 5.0,
        migrate_on_connect: bool = False,
    ) -> None:
        self._connect = connect
        self.limit = limit
        self.batch = batch
        self.backoff_max_s = backoff_max_s
        self.migrate_on_connect = migrate_on_connect
        self.healthy = False
        self.dropped = 0
        self.errors = 0
        self.written = 0
        self._queue: deque[Write] = deque()
        self._inflight: list[Write] = []
        self._inflight_id: uuid.UUID | None = None
        self._pending_chat: Counter[str] = Counter()
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    # -- the hot side -----------------------------------------------------------------------
    def add(self, write: Write) -> None:
        queue = self._queue
        if len(queue) >= self.limit:
            oldest = queue.popleft()
            if oldest[0] == CHAT:
                self._pending_chat[oldest[1]] -= 1
            self.dropped += 1
            metrics.DATABASE_DROPPED.inc()
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("database_writes_dropped", dropped=self.dropped, limit=self.limit)
        queue.append(write)
        if write[0] == CHAT:
            self._pending_chat[write[1]] += 1
        self._idle.clear()
        self._wake.set()

    def __len__(self) -> int:
        return len(self._queue) + len(self._inflight)

    def pending_chat(self, room: str) -> list[bytes]:
        """Chat of `room` not yet committed, oldest first (joins read it beside the table)."""
        if not self._pending_chat.get(room):
            return []
        return [w[2] for w in (*self._inflight, *self._queue) if w[0] == CHAT and w[1] == room]

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued write is committed; False if `timeout` ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float) -> None:
        """Flush (at most `timeout` seconds), then stop; what could not be written is logged."""
        flushed = await self.flush(timeout)
        if not flushed:
            log.warning("database_flush_incomplete", left=len(self), timeout_s=timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._disconnect()

    # -- the task ---------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.05
        while True:
            if self._conn is None:
                try:
                    await self._open()
                except Exception as exc:
                    self._failed("connect", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.backoff_max_s)
                    continue
            if not self._inflight and not self._queue:
                self._idle.set()
                self.update_gauge()
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), _IDLE_CHECK_S)
                except TimeoutError:
                    await self._check()
                continue
            try:
                await self._write_batch()
            except Exception as exc:
                self._failed("batch", exc)
                await self._disconnect()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            backoff = 0.05

    async def _open(self) -> None:
        conn = await self._connect()
        try:
            if self.migrate_on_connect:
                for done in await migrate(conn):
                    log.info("database_migrated", version=done.version, name=done.name)
            version = await schema_version(conn)
            if version < LATEST:
                raise SchemaBehind(
                    f"schema at version {version}, this gateway needs {LATEST}: "
                    "run `python -m gateway migrate` (or start with --database-migrate)"
                )
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self.healthy = True
        log.info("database_connected", recovered=self._failing, queued=len(self))
        self._failing = False

    async def _check(self) -> None:
        if self._conn is None:
            return
        try:
            await self._conn.fetchval("SELECT 1", timeout=_IDLE_CHECK_S)
        except Exception as exc:
            self._failed("check", exc)
            await self._disconnect()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)
            if not conn.is_closed():
                conn.terminate()

    def _failed(self, phase: str, exc: BaseException) -> None:
        self.errors += 1
        self.healthy = False
        metrics.DATABASE_ERRORS.inc()
        if not self._failing or isinstance(exc, SchemaBehind):
            # Once per outage: a down database would otherwise log on every retry.
            log.warning(
                "database_unavailable",
                phase=phase,
                error=str(exc) or type(exc).__name__,
                queued=len(self),
            )
        self._failing = True

    def update_gauge(self) -> None:
        metrics.DATABASE_QUEUED.set(len(self))

    async def _write_batch(self) -> None:
        if not self._inflight:
            queue = self._queue
            take = min(len(queue), self.batch)
            self._inflight = [queue.popleft() for _ in range(take)]
            self._inflight_id = uuid.uuid4()
        self.update_gauge()
        batch, batch_id = self._inflight, self._inflight_id
        assert self._conn is not None and batch_id is not None
        sessions, events, chat, runs = self._rows(batch)
        started = time.perf_counter()
        try:
            async with self._conn.transaction():
                first = await self._conn.fetchval(
                    "INSERT INTO gateway_batches (id) VALUES ($1) "
                    "ON CONFLICT DO NOTHING RETURNING true",
                    batch_id,
                )
                if first:
                    await self._apply(sessions, events, chat)
        finally:
            metrics.DATABASE_BATCH.observe(time.perf_counter() - started)
        # Committed: forget the batch, remember where candidate runs stand.
        self._inflight, self._inflight_id = [], None
        for room, run in runs.items():
            if run is None:
                self._runs.pop(room, None)
            else:
                self._runs[room] = run
                self._runs.move_to_end(room)
        while len(self._runs) > _RUNS_KEPT:
            self._runs.popitem(last=False)
        for write in batch:
            if write[0] == CHAT:
                self._pending_chat[write[1]] -= 1
                if self._pending_chat[write[1]] <= 0:
                    del self._pending_chat[write[1]]
        self.written += len(batch)
        metrics.DATABASE_WRITES.inc(len(batch))
        if not self.healthy:
            self.healthy = True
        self.update_gauge()

    def _rows(
        self, batch: list[Write]
    ) -> tuple[
        list[Write], dict[uuid.UUID, list[Any]], list[tuple[Any, ...]], dict[str, _Run | None]
    ]:
        """Session calls in order, event rows (runs folded), message rows, and per room the
        candidate run its last event continues (None: the last event was not a candidate)."""
        sessions: list[Write] = []
        events: dict[uuid.UUID, list[Any]] = {}
        chat: list[tuple[Any, ...]] = []
        runs: dict[str, _Run | None] = {}
        for write in batch:
            kind = write[0]
            if kind == JOINED:
                _, room, user, at, tracks = write
                sessions.append(("j", room, user, _ts(at), tracks))
            elif kind == LEFT:
                _, room, user, at, empty = write
                sessions.append(("l", room, user, _ts(at), empty))
            elif kind == SIGNAL:
                _, room, event, sender, to, at = write
                last = runs[room] if room in runs else self._runs.get(room)
                if event == "ice-candidate":
                    if last is not None and last.pair == (sender, to):
                        run = _Run(last.id, last.pair, last.started, last.count + 1)
                    else:
                        run = _Run(uuid.uuid4(), (sender, to), at, 1)
                    runs[room] = run
                    events[run.id] = [
                        run.id,
                        room,
                        "candidates",
                        sender,
                        to,
                        run.started,
                        at,
                        run.count,
                    ]
                else:
                    runs[room] = None
                    row_id = uuid.uuid4()
                    events[row_id] = [row_id, room, event, sender, to, at, at, 1]
            else:
                _, room, message, at = write
                try:
                    fields = _chat_dec.decode(message)
                    message_id = uuid.UUID(fields.id)
                except (msgspec.DecodeError, ValueError):
                    continue  # not a message this gateway made: nothing to key it by
                body = fields.body if isinstance(fields.body, str) else None
                chat.append((message_id, room, fields.from_, body, _ts(at), message.decode()))
        for row in events.values():
            row[5], row[6] = _ts(row[5]), _ts(row[6])
        return sessions, events, chat, runs

    async def _apply(
        self,
        sessions: list[Write],
        events: dict[uuid.UUID, list[Any]],
        chat: list[tuple[Any, ...]],
    ) -> None:
        conn = self._conn
        assert conn is not None
        for op, room, user, at, extra in sessions:
            if op == "j":
                await conn.execute("SELECT gateway_joined($1, $2, $3, $4)", room, user, at, extra)
            else:
                await conn.execute("SELECT gateway_left($1, $2, $3, $4)", room, user, at, extra)
        if events:
            columns = list(zip(*events.values(), strict=True))
            await conn.execute(_INSERT_EVENTS, *columns)
        if chat:
            columns = list(zip(*chat, strict=True))
            await conn.execute(_INSERT_MESSAGES, *columns)


_INSERT_EVENTS = """
INSERT INTO gateway_events (id, room_id, kind, sender, recipient, started_at, at, count)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::timestamptz[], $7::timestamptz[], $8::int[])
ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at, count = EXCLUDED.count
"""

_INSERT_MESSAGES = """
INSERT INTO gateway_messages (id, room_id, sender, body, at, message)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                     $6::text[])
ON CONFLICT (id) DO NOTHING
"""
