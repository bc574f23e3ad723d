"""The history API (PostgreSQL): a room's sessions, a user's sessions, a room's chat.

Same bearer token as `GET /api/rooms/{room_id}/session`. JSON pages, newest first:
`{"items": [...], "next": cursor or null}`; pass `next` back as `before` for the next page.
Without `--database-url` the endpoints answer 501: only PostgreSQL keeps history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import msgspec
from aiohttp import web

from gateway.history import queries
from gateway.history.queries import BadRequest, Page
from gateway.history.store import DB_ERRORS, READ_TIMEOUT_S, PostgresSessionStore
from gateway.observability import metrics
from gateway.signaling.payloads import is_room_id
from gateway.transports.rooms_http import ADMIN_TOKEN_KEY, _authorized

HISTORY_KEY = web.AppKey("history", PostgresSessionStore)


Read = Callable[[asyncpg.Connection, web.Request], Awaitable[Page]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _endpoint(read: Read, room: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        if not _authorized(request, request.app[ADMIN_TOKEN_KEY]):
            return web.json_response(
                {"error": "unauthorized"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="gateway"'},
            )
        history = request.app.get(HISTORY_KEY)
        if history is None:
            return _error(501, "history needs a database: start the gateway with --database-url")
        if room and not is_room_id(request.match_info["room_id"]):
            return _error(400, "invalid room id")
        try:
            async with history.pool.acquire(timeout=READ_TIMEOUT_S) as conn:
                page = await read(conn, request)
        except BadRequest as exc:
            return _error(400, str(exc))
        except DB_ERRORS:
            metrics.DATABASE_ERRORS.inc()
            return _error(503, "database unavailable")
        return web.Response(body=msgspec.json.encode(page), content_type="application/json")

    return handler


async def _room_sessions(conn: asyncpg.Connection, request: web.Request) -> Page:
    q = request.query
    return await queries.room_sessions(
        conn,
        request.match_info["room_id"],
        queries.parse_time("since", q.get("since")),
        queries.parse_time("until", q.get("until")),
        queries.decode_cursor(q.get("before")),
        queries.parse_limit(q.get("limit")),
    )


async def _user_sessions(conn: asyncpg.Connection, request: web.Request) -> Page:
    q = request.query
    return await queries.user_sessions(
        conn,
        request.match_info["user_id"],
        queries.parse_time("since", q.get("since")),
        queries.parse_time("until", q.get("until")),
        queries.decode_cursor(q.get("before")),
        queries.parse_limit(q.get("limit")),
    )


async def _room_messages(conn: asyncpg.Connection, request: web.Request) -> Page:
    q = request.query
    return await queries.room_messages(
        conn,
        request.match_info["room_id"],
        queries.decode_cursor(q.get("before")),
        queries.parse_limit(q.get("limit")),
    )


def add_history_routes(app: web.Application, history: PostgresSessionStore | None) -> None:
    if history is not None:
        app[HISTORY_KEY] = history
    app.router.add_get("/api/rooms/{room_id}/sessions", _endpoint(_room_sessions, room=True))
    app.router.add_get("/api/users/{user_id}/sessions", _endpoint(_user_sessions, room=False))
    app.router.add_get("/api/rooms/{room_id}/messages", _endpoint(_room_messages, room=True))
