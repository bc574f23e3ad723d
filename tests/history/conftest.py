"""The room test server and clients, with the gateway's history in a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from gateway.history.store import PostgresSessionStore
from tests.rooms.conftest import RoomServer, member, room_server, topic

__all__ = ["api", "history_of", "member", "room_server", "topic", "wait_ready"]

TOKEN = "s3cret"


def history_of(srv: RoomServer) -> PostgresSessionStore:
    store = srv.node.history
    assert store is not None
    return store


async def api(srv: RoomServer, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, http.get(srv.http + path, headers=headers) as r:
        return r.status, await r.json()


async def wait_ready(
    srv: RoomServer, database: str = "ok", timeout: float = 10.0
) -> dict[str, Any]:
    """Wait until /readyz reports `database` so; the body."""
    deadline = time.monotonic() + timeout
    while True:
        async with aiohttp.ClientSession() as http, http.get(srv.http + "/readyz") as r:
            body: dict[str, Any] = await r.json()
            if body.get("database") == database:
                assert r.status == 200, body
                return body
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz never said database: {database}: {body}")
        await asyncio.sleep(0.05)
