"""Versioned, forward-only SQL migrations: `migrations/NNNN_name.sql`, applied in order.

Each file runs in its own transaction and is recorded in `gateway_migrations`. The whole run
holds a session advisory lock, so nodes that start together (or `python -m gateway migrate`
run twice) apply each file once: the second waits, then finds nothing left to do.
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import msgspec

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# pg_advisory_lock key: "gwmigr" in ASCII, unlikely to clash with an application's own locks.
MIGRATION_LOCK = 0x67776D696772
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name is not NNNN_name.sql: {path.name}")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    return found


LATEST = migrations()[-1].version

_TABLE = """
CREATE TABLE IF NOT EXISTS gateway_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def schema_version(conn: asyncpg.Connection) -> int:
    """The highest migration applied (0 on an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('gateway_migrations') IS NOT NULL")
    if not exists:
        return 0
    version = await conn.fetchval("SELECT max(version) FROM gateway_migrations")
    return int(version or 0)


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply what is missing, in order; the migrations applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(_TABLE)
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM gateway_migrations")}
        done = []
        for migration in migrations():
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO gateway_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def _run(url: str) -> list[Migration]:
    conn = await asyncpg.connect(url, timeout=10.0)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def run(url: str) -> int:
    """`python -m gateway migrate`: apply, print one line per migration; 1 on failure."""
    import asyncio
    import sys

    if not url:
        print("gateway migrate: set --database-url or GATEWAY_DATABASE_URL", file=sys.stderr)
        return 2
    try:
        done = asyncio.run(_run(url))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"gateway migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for migration in done:
        print(f"applied {migration.version:04d}_{migration.name}")
    print(f"schema at version {LATEST}")
    return 0
