"""Retention: rows older than `--retention-days` are deleted, in bounded batches.

Each DELETE takes at most `batch` rows, so no statement holds locks or writes WAL for long,
and the writes of the gateways go on between them. One node at a time runs it (a try-lock:
the others skip that round). Open sessions are never deleted, however old.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from gateway.observability import metrics

log = structlog.get_logger("gateway.history")

RETENTION_LOCK = 0x67777265746E  # "gwretn"
INTERVAL_S = 3600.0
FIRST_RUN_S = 60.0  # after start: the node has other things to do first
BATCH_ROWS = 5_000
BATCH_RETENTION = timedelta(days=1)  # retried batch ids only matter for seconds

_DELETES = {
    "messages": "DELETE FROM gateway_messages WHERE id IN "
    "(SELECT id FROM gateway_messages WHERE at < $1 LIMIT $2)",
    "events": "DELETE FROM gateway_events WHERE id IN "
    "(SELECT id FROM gateway_events WHERE at < $1 LIMIT $2)",
    # Participants and attendance go with their session (ON DELETE CASCADE).
    "sessions": "DELETE FROM gateway_sessions WHERE id IN "
    "(SELECT id FROM gateway_sessions WHERE emptied_at < $1 LIMIT $2)",
}
_DELETE_BATCHES = "DELETE FROM gateway_batches WHERE id IN (SELECT id FROM gateway_batches WHERE at < $1 LIMIT $2)"


async def purge(
    conn: asyncpg.Connection, cutoff: datetime, batch: int = BATCH_ROWS
) -> dict[str, int] | None:
    """Delete what is older than `cutoff`; rows deleted per table, None if another node runs."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK):
        return None
    try:
        deleted: dict[str, int] = {}
        statements = [*_DELETES.items(), ("batches", _DELETE_BATCHES)]
        for table, sql in statements:
            limit = (
                max(cutoff, datetime.now(UTC) - BATCH_RETENTION) if table == "batches" else cutoff
            )
            total = 0
            while True:
                status = await conn.execute(sql, limit, batch)
                count = int(status.rsplit(" ", 1)[-1])
                total += count
                if count < batch:
                    break
            deleted[table] = total
        return deleted
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK)


async def purge_loop(
    pool: asyncpg.Pool, retention_s: float, wall: Callable[[], float] = time.time
) -> None:
    await asyncio.sleep(FIRST_RUN_S)
    while True:
        cutoff = datetime.fromtimestamp(wall() - retention_s, UTC)
        try:
            async with pool.acquire(timeout=5.0) as conn:
                deleted = await purge(conn, cutoff)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            metrics.DATABASE_ERRORS.inc()
            log.warning("retention_failed", error=str(exc) or type(exc).__name__)
        else:
            if deleted:
                log.info("retention_purged", cutoff=cutoff.isoformat(), **deleted)
        await asyncio.sleep(INTERVAL_S)
