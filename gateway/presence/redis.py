"""The Redis presence backend: every node's entries in one place, with atomic caps and expiry.

Per topic `T` (keys share the hash tag `{T}`, so each script touches one cluster slot):

- `gw:p:{T}:keys`   hash key -> number of metas under it (HLEN is the key count for the cap)
- `gw:p:{T}:u:<k>`  hash phx_ref -> `<seq>\\0<node>\\0<meta json>` for key `k`
- `gw:p:{T}:seq`    counter giving metas their order (Redis hashes keep none)

Per node: `gw:pn:<node>` set of msgpack `[topic, key, ref]` it tracked, and the sorted set
`gw:p:alive` of node -> deadline in Redis server time, pushed forward by `refresh`. `expire`
takes the nodes whose deadline passed (ZREM decides which caller cleans up a node, so a dead
node's leaves are broadcast once) and removes their entries.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster

from gateway.presence.state import PHX_REF, PHX_REF_PREV, Diff, Entries, Meta
from gateway.presence.store import TrackResult

_json = msgspec.json.Encoder()
_owned = msgspec.msgpack.Encoder()
_owned_decoder = msgspec.msgpack.Decoder(tuple[str, str, str])

ALIVE = "gw:p:alive"

_TRACK = """
local max = tonumber(ARGV[5])
local n = redis.call('HLEN', KEYS[1])
if max > 0 and n >= max and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return {0, n}
end
local seq = redis.call('INCR', KEYS[3])
if redis.call('HSETNX', KEYS[2], ARGV[2], seq .. '\\0' .. ARGV[3] .. '\\0' .. ARGV[4]) == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
end
return {1, redis.call('HLEN', KEYS[1])}
"""

_UNTRACK = """
local v = redis.call('HGET', KEYS[2], ARGV[2])
if not v then return false end
redis.call('HDEL', KEYS[2], ARGV[2])
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return v
"""

# The new meta keeps the old one's seq (its place in the key's order) and owner node.
_UPDATE = """
local v = redis.call('HGET', KEYS[2], ARGV[2])
if not v then return false end
local a = string.find(v, '\\0', 1, true)
local b = string.find(v, '\\0', a + 1, true)
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], string.sub(v, 1, b) .. ARGV[4])
return v
"""

_STATE = """
local out = {}
for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
  out[#out + 1] = k
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. k)
end
return out
"""

# Returns 1 when the node was not in the set: Redis lost it (restart) or another node expired it.
_REFRESH = """
local t = redis.call('TIME')
return redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[2]), ARGV[1])
"""

_LAPSED = """
local t = redis.call('TIME')
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]) + tonumber(t[2]) / 1e6)
"""


def _tag(topic: str) -> str:
    # Braces inside the topic would change the hash tag; topics are `room:<uuid>`, but be safe.
    return "gw:p:{" + topic.replace("{", "(").replace("}", ")") + "}"


def _parse(value: bytes) -> tuple[int, str, Meta]:
    seq, node, meta = value.split(b"\0", 2)
    return int(seq), node.decode(), msgspec.json.decode(meta)


class RedisPresenceStore:
    """`PresenceStore` shared by every node through one Redis."""

    def __init__(self, client: aredis.Redis | RedisCluster) -> None:
        self._redis = client
        self._track = client.register_script(_TRACK)
        self._untrack = client.register_script(_UNTRACK)
        self._update = client.register_script(_UPDATE)
        self._state = client.register_script(_STATE)
        self._refresh = client.register_script(_REFRESH)
        self._lapsed = client.register_script(_LAPSED)

    async def track(
        self, topic: str, key: str, meta: Meta, node: str, *, max_keys: int = 0
    ) -> TrackResult:
        tag = _tag(topic)
        ref = meta[PHX_REF]
        stored = {k: v for k, v in meta.items() if k != PHX_REF_PREV}
        owned = _owned.encode((topic, key, ref))
        # Ownership first: a node dying between the two leaves a dangling member (harmless on
        # expiry), never an entry nobody would expire.
        await self._redis.sadd(f"gw:pn:{node}", owned)
        keys = [f"{tag}:keys", f"{tag}:u:{key}", f"{tag}:seq"]
        args = [key, ref, node, _json.encode(stored), max_keys]
        tracked, count = await self._track(keys=keys, args=args)
        if not tracked:
            await self._redis.srem(f"gw:pn:{node}", owned)
        return TrackResult(bool(tracked), int(count))

    async def untrack(self, topic: str, key: str, phx_ref: str) -> Diff:
        tag = _tag(topic)
        value = await self._untrack(keys=[f"{tag}:keys", f"{tag}:u:{key}"], args=[key, phx_ref])
        if not value:
            return Diff()
        _, node, meta = _parse(value)
        await self._redis.srem(f"gw:pn:{node}", _owned.encode((topic, key, phx_ref)))
        return Diff(leaves={key: {"metas": [meta]}})

    async def update(self, topic: str, key: str, old_ref: str, meta: Meta) -> Diff:
        tag = _tag(topic)
        ref = meta[PHX_REF]
        stored = {k: v for k, v in meta.items() if k not in (PHX_REF, PHX_REF_PREV)}
        stored[PHX_REF] = ref
        stored[PHX_REF_PREV] = old_ref
        value = await self._update(
            keys=[f"{tag}:keys", f"{tag}:u:{key}"], args=[key, old_ref, ref, _json.encode(stored)]
        )
        if not value:
            return Diff()
        _, node, old = _parse(value)
        pipe = self._redis.pipeline(transaction=False)
        pipe.srem(f"gw:pn:{node}", _owned.encode((topic, key, old_ref)))
        pipe.sadd(f"gw:pn:{node}", _owned.encode((topic, key, ref)))
        await pipe.execute()
        return Diff(joins={key: {"metas": [stored]}}, leaves={key: {"metas": [old]}})

    async def state(self, topic: str) -> Entries:
        tag = _tag(topic)
        flat: list[Any] = await self._state(keys=[f"{tag}:keys"], args=[f"{tag}:u:"])
        ordered: list[tuple[int, str, list[tuple[int, Meta]]]] = []
        for i in range(0, len(flat), 2):
            key = flat[i].decode()
            fields = flat[i + 1]
            metas = sorted(
                ((seq, meta) for seq, _, meta in map(_parse, fields[1::2])),
                key=lambda item: item[0],
            )
            if metas:
                ordered.append((metas[0][0], key, metas))
        # Keys in the order they first appeared, as the memory backend keeps them.
        ordered.sort(key=lambda item: item[0])
        return {key: {"metas": [m for _, m in metas]} for _, key, metas in ordered}

    async def get(self, topic: str, key: str) -> list[Meta]:
        fields = cast(dict[bytes, bytes], await self._redis.hgetall(f"{_tag(topic)}:u:{key}"))
        return [meta for _, _, meta in sorted(map(_parse, fields.values()), key=lambda x: x[0])]

    async def count(self, topic: str) -> int:
        return int(await self._redis.hlen(f"{_tag(topic)}:keys"))

    async def refresh(self, node: str, ttl_s: float) -> bool:
        return not await self._refresh(keys=[ALIVE], args=[node, ttl_s])

    async def expire(self) -> list[tuple[str, Diff]]:
        lapsed: list[bytes] = await self._lapsed(keys=[ALIVE])
        by_topic: dict[str, Diff] = {}
        for raw in lapsed:
            node = raw.decode()
            if not await self._redis.zrem(ALIVE, node):
                continue  # another node is cleaning this one up
            owned_key = f"gw:pn:{node}"
            members = cast(set[bytes], await self._redis.smembers(owned_key))
            for member in members:
                topic, key, ref = _owned_decoder.decode(member)
                diff = await self.untrack(topic, key, ref)
                if diff.is_empty():
                    continue
                leaves = by_topic.setdefault(topic, Diff()).leaves
                leaves.setdefault(key, {"metas": []})["metas"].extend(diff.leaves[key]["metas"])
            await self._redis.delete(owned_key)
        return list(by_topic.items())
