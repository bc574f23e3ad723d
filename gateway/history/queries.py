"""The history API's reads: a room's sessions, a user's sessions, a room's chat.

Pages are newest first. A page's `next` cursor is the sort key of its last item (time in
microseconds, then a tie-breaking id), so the next page starts strictly after it whatever was
written meanwhile; it is opaque to clients (base64url of that pair).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from gateway.signaling.sessions import Participant, iso

MAX_LIMIT = 500
NEVER = datetime.max.replace(tzinfo=UTC)
DAWN = datetime.min.replace(tzinfo=UTC)


class BadRequest(ValueError):
    """A query parameter the API cannot use; the message says which."""


class Page(msgspec.Struct):
    items: list[Any]
    next: str | None


class RoomSession(msgspec.Struct):
    """One occupancy of a room: from its first join until it emptied."""

    session_id: int
    room_id: str
    created_at: str
    emptied_at: str | None
    duration_s: float
    peak_members: int
    participants: list[Participant]


class UserSession(msgspec.Struct):
    """One session a user took part in."""

    session_id: int
    room_id: str
    joined_at: str  # first join
    left_at: str | None  # latest leave; None while present
    joins: int
    tracks: list[str] | None
    session_created_at: str
    session_emptied_at: str | None


class Cursor(msgspec.Struct, array_like=True):
    micros: int
    key: str


def encode_cursor(at: datetime, key: object) -> str:
    raw = msgspec.json.encode(Cursor(_micros(at), str(key)))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None) -> Cursor | None:
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return msgspec.json.decode(raw, type=Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadRequest("before: not a cursor this API returned") from None


def parse_time(name: str, text: str | None) -> datetime | None:
    """ISO 8601 (`2026-01-02T03:04:05Z`) or Unix seconds."""
    if not text:
        return None
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name}: not an ISO 8601 time or Unix seconds") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_limit(text: str | None, default: int = 50) -> int:
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest("limit: not an integer") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"limit: between 1 and {MAX_LIMIT}")
    return value


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    return (at - EPOCH) // MICRO  # exact: PostgreSQL keeps microseconds


def _at(micros: int) -> datetime:
    return EPOCH + micros * MICRO


def _key_int(before: Cursor | None) -> tuple[datetime, int]:
    if before is None:
        return NEVER, 2**62
    try:
        return _at(before.micros), int(before.key)
    except (ValueError, OverflowError):
        raise BadRequest("before: not a cursor this API returned") from None


def _shown(at: datetime | None) -> str | None:
    return None if at is None else iso(at.timestamp())


def _page(
    items: list[Any], rows: list[asyncpg.Record], limit: int, time_key: str, key: str
) -> Page:
    if len(rows) <= limit:
        return Page(items, None)
    last = rows[limit - 1]
    return Page(items[:limit], encode_cursor(last[time_key], last[key]))


async def room_sessions(
    conn: asyncpg.Connection,
    room: str,
    since: datetime | None,
    until: datetime | None,
    before: Cursor | None,
    limit: int,
) -> Page:
    """Sessions of `room` that overlap [since, until], newest first."""
    c_at, c_id = _key_int(before)
    rows = await conn.fetch(
        "SELECT id, created_at, emptied_at, peak_members, now() AS now FROM gateway_sessions "
        "WHERE room_id = $1 AND created_at <= $2 AND (emptied_at IS NULL OR emptied_at >= $3) "
        "AND (created_at, id) < ($4, $5) ORDER BY created_at DESC, id DESC LIMIT $6",
        room,
        until or NEVER,
        since or DAWN,
        c_at,
        c_id,
        limit + 1,
    )
    ids = [r["id"] for r in rows[:limit]]
    people: dict[int, list[Participant]] = {i: [] for i in ids}
    for p in await conn.fetch(
        "SELECT session_id, user_id, joined_at, left_at, joins FROM gateway_participants "
        "WHERE session_id = ANY($1::bigint[]) ORDER BY join_order",
        ids,
    ):
        people[p["session_id"]].append(
            Participant(p["user_id"], iso(p["joined_at"].timestamp()), _shown(p["left_at"]),
                        p["joins"])
        )  # fmt: skip
    items = [
        RoomSession(
            session_id=r["id"],
            room_id=room,
            created_at=iso(r["created_at"].timestamp()),
            emptied_at=_shown(r["emptied_at"]),
            duration_s=round(((r["emptied_at"] or r["now"]) - r["created_at"]).total_seconds(), 3),
            peak_members=r["peak_members"],
            participants=people[r["id"]],
        )
        for r in rows[:limit]
    ]
    return _page(items, rows, limit, "created_at", "id")


async def user_sessions(
    conn: asyncpg.Connection,
    user: str,
    since: datetime | None,
    until: datetime | None,
    before: Cursor | None,
    limit: int,
) -> Page:
    """The sessions `user` joined, newest first (by their first join)."""
    c_at, c_id = _key_int(before)
    rows = await conn.fetch(
        "SELECT p.session_id, s.room_id, p.first_joined_at, p.left_at, p.joins, p.tracks, "
        "s.created_at, s.emptied_at FROM gateway_participants p "
        "JOIN gateway_sessions s ON s.id = p.session_id "
        "WHERE p.user_id = $1 AND p.first_joined_at <= $2 "
        "AND (p.left_at IS NULL OR p.left_at >= $3) "
        "AND (p.first_joined_at, p.session_id) < ($4, $5) "
        "ORDER BY p.first_joined_at DESC, p.session_id DESC LIMIT $6",
        user,
        until or NEVER,
        since or DAWN,
        c_at,
        c_id,
        limit + 1,
    )
    items = [
        UserSession(
            session_id=r["session_id"],
            room_id=r["room_id"],
            joined_at=iso(r["first_joined_at"].timestamp()),
            left_at=_shown(r["left_at"]),
            joins=r["joins"],
            tracks=r["tracks"],
            session_created_at=iso(r["created_at"].timestamp()),
            session_emptied_at=_shown(r["emptied_at"]),
        )
        for r in rows[:limit]
    ]
    return _page(items, rows, limit, "first_joined_at", "session_id")


async def room_messages(
    conn: asyncpg.Connection, room: str, before: Cursor | None, limit: int
) -> Page:
    """Chat of `room`, newest first; each item is the `new_msg` payload as it was relayed."""
    if before is None:
        rows = await conn.fetch(
            "SELECT id, at, message FROM gateway_messages WHERE room_id = $1 "
            "ORDER BY at DESC, id DESC LIMIT $2",
            room,
            limit + 1,
        )
    else:
        try:
            c_at, c_id = _at(before.micros), uuid.UUID(before.key)
        except (ValueError, OverflowError):
            raise BadRequest("before: not a cursor this API returned") from None
        rows = await conn.fetch(
            "SELECT id, at, message FROM gateway_messages WHERE room_id = $1 "
            "AND (at, id) < ($2, $3) ORDER BY at DESC, id DESC LIMIT $4",
            room,
            c_at,
            c_id,
            limit + 1,
        )
    items = [msgspec.Raw(r["message"].encode()) for r in rows[:limit]]
    return _page(items, rows, limit, "at", "id")
