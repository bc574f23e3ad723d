"""Signaling sessions: per room, who joined and left, and a bounded history of the exchange.

The record behind `GET /api/rooms/{room_id}/session`: participants with join and leave
times, the last `MAX_EVENTS` offers, answers and candidate counts (from, to, time), and the
room's recent chat for join `history`. A room's record is kept `retention_s` after it
empties, then dropped. Times are stored as Unix seconds and shown as ISO 8601 (UTC, ms).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

MAX_EVENTS = 200
MAX_PARTICIPANTS = 1_000
MAX_CHAT = 100


_second: list[Any] = [None, ""]  # the last whole second formatted: every relay stamps one
# The last millisecond formatted (relays come many per ms): the times that surely fall in it,
# its number and its text. The times are the millisecond shrunk by a margin far wider than
# the rounding of a time near 2**31 s (a quarter of a microsecond), so a time inside needs no
# arithmetic; a time in the margin takes the exact way below.
_milli: list[Any] = [1.0, 0.0, None, ""]
_MARGIN = 4e-6


def iso(ts: float) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds: `2026-01-02T03:04:05.678Z`."""
    last = _milli
    if last[0] <= ts < last[1]:
        return last[3]  # type: ignore[no-any-return]
    whole = int(ts)
    micro = round((ts - whole) * 1_000_000)  # as datetime rounds, so the two agree
    if micro >= 1_000_000:
        whole, micro = whole + 1, 0
    milli = whole * 1000 + micro // 1000
    if last[2] == milli:
        return last[3]  # type: ignore[no-any-return]
    if _second[0] != whole:
        _second[0] = whole
        _second[1] = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
    text = f"{_second[1]}{micro // 1000:03d}Z"
    start = milli / 1000
    last[:] = (start + _MARGIN, start + 0.001 - _MARGIN, milli, text)
    return text


class Participant(msgspec.Struct):
    user_id: str
    joined_at: str
    left_at: str | None = None
    joins: int = 1


class SignalEvent(msgspec.Struct):
    """One offer or answer, or a run of candidates between one pair (`count` of them)."""

    kind: str  # "offer", "answer" or "candidates"
    from_: str = msgspec.field(name="from")
    to: str
    at: str
    count: int = 1


class Session(msgspec.Struct):
    room_id: str
    created_at: str
    emptied_at: str | None
    participants: list[Participant]
    events: list[SignalEvent]


class StoreUnavailable(Exception):
    """A store read could not reach its database (the session API answers 503)."""


class SessionStore(Protocol):
    async def joined(self, room: str, user: str, tracks: list[str] | None = None) -> None:
        """A channel of `user` joined (`tracks` as declared; kept by the PostgreSQL store)."""

    async def left(self, room: str, user: str, room_empty: bool) -> None:
        """`user`'s last channel left; `room_empty` starts the retention clock."""

    async def record(self, room: str, kind: str, sender: str, to: str) -> None:
        """An offer, answer or candidate (`kind` "ice-candidate") from `sender` to `to`."""

    async def add_chat(self, room: str, message: bytes, at: float) -> None:
        """Keep a chat message (encoded JSON) among the room's last `MAX_CHAT`; `at` is when it
        was stamped (unix seconds), which orders the PostgreSQL history."""

    async def chat(self, room: str, last: int) -> list[bytes]:
        """The room's last `last` chat messages, oldest first."""

    async def get(self, room: str) -> Session | None: ...


class _Seen(msgspec.Struct, gc=False):
    """A participant as the memory store keeps it: times as Unix seconds, shown by `get`."""

    joined: float
    joins: int
    left: float | None = None


class _Event(msgspec.Struct, gc=False):
    """A `SignalEvent` as the memory store keeps it (its time formatted by `get`, not by every
    relay). Structs, this and `_Seen`: one is made per signal and per join, without a Python
    `__init__` call."""

    kind: str
    from_: str
    to: str
    at: float
    count: int = 1


class _Record:
    __slots__ = ("chat", "created", "emptied", "events", "participants")

    def __init__(self, now: float) -> None:
        self.created = now
        self.emptied: float | None = None
        self.participants: dict[str, _Seen] = {}
        # Made on first use: an empty deque costs 600 bytes, and most rooms never chat.
        self.events: deque[_Event] | None = None
        self.chat: deque[bytes] | None = None


class MemorySessionStore:
    """`SessionStore` for one process; expired rooms are dropped as calls come in. Its writes
    wait for nothing: `record_now` and `add_chat_now` are the writes, which the bookkeeper makes
    inline, and `record` and `add_chat` call them.

    Bounded in total, not only per room: at most `max_rooms` records (the oldest record goes
    first, an emptied one before a live one), and chat history of at most `max_chat_bytes` in
    all (the oldest message of the room with the most chat goes first), whatever the rooms'
    payloads carry."""

    def __init__(
        self,
        retention_s: float,
        wall: Callable[[], float] = time.time,
        *,
        max_rooms: int = 10_000,
        max_chat_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.retention_s = retention_s
        self.max_rooms = max_rooms
        self.max_chat_bytes = max_chat_bytes
        self.chat_bytes = 0
        self.evicted = 0  # records and chat messages dropped to stay within the bounds
        self._wall = wall
        # Ordered dicts: the oldest is taken from the front on every new room at the cap, and a
        # plain dict finds its first entry by walking past every slot deleted before it.
        self._rooms: OrderedDict[str, _Record] = OrderedDict()
        self._emptied: OrderedDict[str, None] = OrderedDict()  # the longest empty first
        self._next_sweep = 0.0

    def _record(self, room: str, now: float) -> _Record:
        if now >= self._next_sweep:
            self._sweep(now)
        record = self._rooms.get(room)
        if record is None:
            if len(self._rooms) >= self.max_rooms:
                self._evict_room()
            record = self._rooms[room] = _Record(now)
        return record

    def _evict_room(self) -> None:
        victim = next(iter(self._emptied), None)
        if victim is None:
            victim = next(iter(self._rooms))
        self._drop(victim)
        self.evicted += 1

    def _drop(self, room: str) -> None:
        record = self._rooms.pop(room)
        self._emptied.pop(room, None)
        if record.chat:
            self.chat_bytes -= sum(len(m) for m in record.chat)

    def _sweep(self, now: float) -> None:
        # At most once a second (`_record` looks first), and only over the rooms that are
        # past their retention.
        self._next_sweep = now + 1.0
        cutoff = now - self.retention_s
        expired = []
        for room in self._emptied:
            emptied = self._rooms[room].emptied
            if emptied is not None and emptied > cutoff:
                break
            expired.append(room)
        for room in expired:
            self._drop(room)

    async def joined(self, room: str, user: str, tracks: list[str] | None = None) -> None:
        now = self._wall()
        record = self._record(room, now)
        record.emptied = None
        self._emptied.pop(room, None)
        seen = record.participants.pop(user, None)
        if seen is None:
            if len(record.participants) >= MAX_PARTICIPANTS:
                oldest = next(iter(record.participants))
                del record.participants[oldest]
            record.participants[user] = _Seen(now, 1)
        else:
            # Re-inserted so the dict stays ordered by latest join.
            record.participants[user] = _Seen(now, seen.joins + 1)

    async def left(self, room: str, user: str, room_empty: bool) -> None:
        now = self._wall()
        record = self._record(room, now)
        seen = record.participants.get(user)
        if seen is not None:
            seen.left = now
        if room_empty:
            record.emptied = now
            self._emptied[room] = None
            self._emptied.move_to_end(room)

    async def record(self, room: str, kind: str, sender: str, to: str) -> None:
        self.record_now(room, kind, sender, to)

    def record_now(self, room: str, kind: str, sender: str, to: str) -> None:
        """`record`, made at once: nothing here waits (the bookkeeper's inline path)."""
        at = self._wall()
        record = self._rooms.get(room) if at < self._next_sweep else None
        if record is None:  # a new room, or time to sweep
            record = self._record(room, at)
        events = record.events
        if events is None:
            events = record.events = deque(maxlen=MAX_EVENTS)
        if kind == "ice-candidate":
            last = events[-1] if events else None
            if (
                last is not None
                and last.kind == "candidates"
                and (last.from_, last.to)
                == (
                    sender,
                    to,
                )
            ):
                last.count += 1
                last.at = at
                return
            kind = "candidates"
        events.append(_Event(kind, sender, to, at))

    async def add_chat(self, room: str, message: bytes, at: float) -> None:
        self.add_chat_now(room, message, at)

    def add_chat_now(self, room: str, message: bytes, at: float) -> None:
        """`add_chat`, made at once."""
        record = self._record(room, self._wall())
        chat = record.chat
        if chat is None:
            chat = record.chat = deque(maxlen=MAX_CHAT)
        if len(chat) == chat.maxlen:
            self.chat_bytes -= len(chat[0])  # the deque drops it on append
        chat.append(message)
        self.chat_bytes += len(message)
        while self.chat_bytes > self.max_chat_bytes:
            largest = max(self._rooms.values(), key=lambda rec: len(rec.chat or ()))
            if not largest.chat:
                break
            self.chat_bytes -= len(largest.chat.popleft())
            self.evicted += 1

    async def chat(self, room: str, last: int) -> list[bytes]:
        record = self._rooms.get(room)
        if record is None or last <= 0:
            return []
        items = list(record.chat or ())
        return items[-last:]

    async def get(self, room: str) -> Session | None:
        now = self._wall()
        if now >= self._next_sweep:
            self._sweep(now)
        record = self._rooms.get(room)
        if record is None:
            return None
        return Session(
            room_id=room,
            created_at=iso(record.created),
            emptied_at=iso(record.emptied) if record.emptied is not None else None,
            participants=[
                Participant(user, iso(p.joined), None if p.left is None else iso(p.left), p.joins)
                for user, p in record.participants.items()
            ],
            events=[
                SignalEvent(e.kind, e.from_, e.to, iso(e.at), e.count) for e in record.events or ()
            ],
        )
