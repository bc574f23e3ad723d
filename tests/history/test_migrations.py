"""`python -m gateway migrate`: applied once, recorded, idempotent, and safe from two processes."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from gateway.history.migrate import LATEST, migrations


async def migrate_process(url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "migrate", "--database-url", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "GATEWAY_DATABASE_URL": ""},
    )  # fmt: skip
    out, _ = await proc.communicate()
    return await proc.wait(), out.decode()


async def recorded(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r["version"] for r in await conn.fetch("SELECT version FROM gateway_migrations")]
    finally:
        await conn.close()


async def test_migrations_apply_once_and_a_second_run_does_nothing(postgres_url: str) -> None:
    code, out = await migrate_process(postgres_url)
    assert code == 0, out
    assert f"applied {migrations()[0].version:04d}_" in out
    code, again = await migrate_process(postgres_url)
    assert code == 0, again
    assert "applied" not in again and f"schema at version {LATEST}" in again
    assert await recorded(postgres_url) == [m.version for m in migrations()]


async def test_two_processes_migrating_at_once_apply_each_migration_once(
    postgres_url: str,
) -> None:
    results = await asyncio.gather(*(migrate_process(postgres_url) for _ in range(2)))
    assert [code for code, _ in results] == [0, 0], results
    # One of them did the work, the other waited on the advisory lock and found it done.
    assert sum(out.count("applied ") for _, out in results) == len(migrations())
    assert await recorded(postgres_url) == [m.version for m in migrations()]


async def test_migrate_names_an_unreachable_database() -> None:
    code, out = await migrate_process("postgresql://postgres@127.0.0.1:1/none")
    assert code == 1
    assert out.startswith("gateway migrate: ")
