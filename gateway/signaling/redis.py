"""Redis backends of the room stores: the reconnect grace queue and the signaling sessions.

Every key of one (room, user) grace slot, or of one room's session, shares a hash tag, so each
script touches one cluster slot. Deadlines and times are the wall-clock seconds the callers
pass, as with the memory backends. Keys expire on their own once nothing refers to them, so a
node dying mid-way leaves no garbage behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import msgspec
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster

from gateway.signaling.grace import PushResult, Queued
from gateway.signaling.sessions import (
    MAX_CHAT,
    MAX_EVENTS,
    MAX_PARTICIPANTS,
    Participant,
    Session,
    SignalEvent,
    iso,
)

# The one client every room store of a node shares (presence, sessions, grace, media modes).
StoreClient = aredis.Redis | RedisCluster


def connect_store(url: str, cluster: bool) -> StoreClient:
    """The room stores' client; it connects on first use."""
    if cluster:
        # A plain client would be answered MOVED for every key its seed node does not own.
        return RedisCluster.from_url(url, socket_timeout=5.0, socket_connect_timeout=2.0)
    # A paused or unreachable Redis fails a store call in seconds instead of holding it forever.
    return aredis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=2.0)


_queued_enc = msgspec.msgpack.Encoder()
_queued_dec = msgspec.msgpack.Decoder(Queued)


def _tag(prefix: str, *parts: str) -> str:
    inner = "|".join(p.replace("{", "(").replace("}", ")") for p in parts)
    return f"{prefix}{{{inner}}}"


# -- grace queue ----------------------------------------------------------------------------

# KEYS: deadline, queue. ARGV: deadline, keep-alive seconds.
_OPEN = """
local old = redis.call('GET', KEYS[1])
-- Keep the caller's text: Lua's tostring would round a Unix time to 14 digits.
local d = ARGV[1]
if old and tonumber(old) > tonumber(d) then d = old end
redis.call('SET', KEYS[1], d, 'EX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return 1
"""

_PUSH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'absent' end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[2]) then return 'full' end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], redis.call('TTL', KEYS[1]))
return 'queued'
"""

_CLAIM = """
local items = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2])
return items
"""

_EXPIRE = """
local d = redis.call('GET', KEYS[1])
if not d or tonumber(d) > tonumber(ARGV[1]) then return {0} end
local items = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2])
return {1, items}
"""

# Keys outlive their deadline by this much, so a late `expire` still finds the messages.
_GRACE_SLACK_S = 300


class RedisGraceQueue:
    """`GraceQueue` shared by every node: a member may drop on one node and rejoin on another."""

    def __init__(
        self, client: aredis.Redis | RedisCluster, wall: Callable[[], float] = time.time
    ) -> None:
        self._wall = wall
        self._open = client.register_script(_OPEN)
        self._push = client.register_script(_PUSH)
        self._claim = client.register_script(_CLAIM)
        self._expire = client.register_script(_EXPIRE)

    @staticmethod
    def _keys(room: str, user: str) -> list[str]:
        base = _tag("gw:g:", room, user)
        return [f"{base}:d", f"{base}:q"]

    async def open(self, room: str, user: str, deadline: float) -> None:
        keep = max(int(deadline - self._wall()) + _GRACE_SLACK_S, 1)
        await self._open(keys=self._keys(room, user), args=[repr(deadline), keep])

    async def push(self, room: str, user: str, item: Queued, limit: int) -> PushResult:
        result = await self._push(
            keys=self._keys(room, user), args=[_queued_enc.encode(item), limit]
        )
        return PushResult(result.decode())

    async def claim(self, room: str, user: str) -> list[Queued]:
        items: list[bytes] = await self._claim(keys=self._keys(room, user))
        return [_queued_dec.decode(i) for i in items]

    async def expire(self, room: str, user: str, now: float) -> list[Queued] | None:
        reply = await self._expire(keys=self._keys(room, user), args=[repr(now)])
        if not reply[0]:
            return None
        return [_queued_dec.decode(i) for i in reply[1]]


# -- signaling sessions ---------------------------------------------------------------------

_participant_enc = msgspec.msgpack.Encoder()
_participant_dec = msgspec.msgpack.Decoder(Participant)
_event_dec = msgspec.msgpack.Decoder(SignalEvent)

# Candidates between one pair in a row are one event with a count (as in memory).
# KEYS: events. ARGV: kind, from, to, at(iso), encoded new event, max events.
_RECORD = """
if ARGV[1] == 'candidates' then
  local last = redis.call('LINDEX', KEYS[1], -1)
  if last then
    local ok, ev = pcall(cmsgpack.unpack, last)
    if ok and ev['kind'] == 'candidates' and ev['from'] == ARGV[2] and ev['to'] == ARGV[3] then
      ev['count'] = ev['count'] + 1
      ev['at'] = ARGV[4]
      redis.call('LSET', KEYS[1], -1, cmsgpack.pack(ev))
      return 1
    end
  end
end
redis.call('RPUSH', KEYS[1], ARGV[5])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[6]), -1)
return 1
"""


class RedisSessionStore:
    """`SessionStore` shared by every node; a room's keys expire `retention_s` after it empties.

    Per room `R`: `gw:s:{R}:meta` (created, emptied), `:p` (user -> participant), `:o` (user
    -> latest join time, for order and the participant cap), `:e` (events), `:c` (chat).
    """

    def __init__(
        self,
        client: aredis.Redis | RedisCluster,
        retention_s: float,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self.retention_s = retention_s
        self._wall = wall
        self._record = client.register_script(_RECORD)

    @staticmethod
    def _keys(room: str) -> tuple[str, str, str, str, str]:
        base = _tag("gw:s:", room)
        return f"{base}:meta", f"{base}:p", f"{base}:o", f"{base}:e", f"{base}:c"

    async def _touch(self, room: str) -> None:
        """The room is in use: create its record if new, and stop any retention countdown."""
        meta = self._keys(room)[0]
        pipe = self._redis.pipeline(transaction=True)
        pipe.hsetnx(meta, "created", repr(self._wall()))
        pipe.hdel(meta, "emptied")
        for key in self._keys(room):
            pipe.persist(key)
        await pipe.execute()

    async def joined(self, room: str, user: str, tracks: list[str] | None = None) -> None:
        await self._touch(room)
        _, parts, order, _, _ = self._keys(room)
        now = self._wall()
        seen_raw = await self._redis.hget(parts, user)
        if seen_raw is None:
            participant = Participant(user, iso(now))
        else:
            seen = _participant_dec.decode(cast(bytes, seen_raw))
            participant = Participant(user, iso(now), None, seen.joins + 1)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(parts, user, _participant_enc.encode(participant))
        pipe.zadd(order, {user: now})
        await pipe.execute()
        # Over the cap the earliest joined go, as in memory.
        extra = int(await self._redis.zcard(order)) - MAX_PARTICIPANTS
        if extra > 0:
            popped: list[Any] = await self._redis.zpopmin(order, extra)
            oldest = [m for m, _ in popped]
            await self._redis.hdel(parts, *oldest)

    async def left(self, room: str, user: str, room_empty: bool) -> None:
        meta, parts, _, _, _ = self._keys(room)
        now = self._wall()
        seen_raw = await self._redis.hget(parts, user)
        if seen_raw is not None:
            seen = _participant_dec.decode(cast(bytes, seen_raw))
            seen.left_at = iso(now)
            await self._redis.hset(parts, user, _participant_enc.encode(seen))
        if room_empty:
            pipe = self._redis.pipeline(transaction=True)
            pipe.hsetnx(meta, "created", repr(now))
            pipe.hset(meta, "emptied", repr(now))
            for key in self._keys(room):
                pipe.expire(key, max(int(self.retention_s), 1))
            await pipe.execute()

    async def record(self, room: str, kind: str, sender: str, to: str) -> None:
        await self._touch_if_new(room)
        at = iso(self._wall())
        kind = "candidates" if kind == "ice-candidate" else kind
        event = msgspec.msgpack.encode(
            {"kind": kind, "from": sender, "to": to, "at": at, "count": 1}
        )
        await self._record(
            keys=[self._keys(room)[3]], args=[kind, sender, to, at, event, MAX_EVENTS]
        )

    async def _touch_if_new(self, room: str) -> None:
        await self._redis.hsetnx(self._keys(room)[0], "created", repr(self._wall()))

    async def add_chat(self, room: str, message: bytes, at: float) -> None:
        await self._touch_if_new(room)
        chat = self._keys(room)[4]
        pipe = self._redis.pipeline(transaction=True)
        pipe.rpush(chat, message)
        pipe.ltrim(chat, -MAX_CHAT, -1)
        await pipe.execute()

    async def chat(self, room: str, last: int) -> list[bytes]:
        if last <= 0:
            return []
        items = await self._redis.lrange(self._keys(room)[4], -last, -1)
        return cast(list[bytes], items)

    async def get(self, room: str) -> Session | None:
        meta, parts, order, events, _ = self._keys(room)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(meta)
        pipe.hgetall(parts)
        pipe.zrange(order, 0, -1)
        pipe.lrange(events, 0, -1)
        fields, by_user, users, raw_events = await pipe.execute()
        if not fields:
            return None
        emptied = fields.get(b"emptied")
        return Session(
            room_id=room,
            created_at=iso(float(fields[b"created"])),
            emptied_at=iso(float(emptied)) if emptied is not None else None,
            participants=[_participant_dec.decode(by_user[u]) for u in users if u in by_user],
            events=[_event_dec.decode(e) for e in raw_events],
        )
