"""Each room's media mode (mesh or sfu), fixed by whoever creates the room.

The first join decides (its `media` param, else `--room-media`); later joins learn the mode.
With Redis every node sees the same answer: `SET NX` decides atomically which join came first.
A room's mode is forgotten when the room empties, so an empty room may come back in another
mode; the key also expires (refreshed on every join) should a node die before forgetting it.
"""

from __future__ import annotations

from typing import Protocol

import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster

from gateway.sfu.placement import Media

_TTL_S = 86_400


class RoomModes(Protocol):
    async def claim(self, room: str, wanted: Media) -> Media:
        """`room`'s mode: the one stored, else `wanted` (stored now)."""

    async def forget(self, room: str) -> None:
        """The room emptied: the next first join decides again."""


class MemoryRoomModes:
    """`RoomModes` for one process (at most `max_rooms`; the oldest is forgotten first)."""

    def __init__(self, max_rooms: int = 100_000) -> None:
        self.max_rooms = max_rooms
        self._modes: dict[str, Media] = {}

    async def claim(self, room: str, wanted: Media) -> Media:
        mode = self._modes.get(room)
        if mode is None:
            if len(self._modes) >= self.max_rooms:
                del self._modes[next(iter(self._modes))]
            mode = self._modes[room] = wanted
        return mode

    async def forget(self, room: str) -> None:
        self._modes.pop(room, None)


class RedisRoomModes:
    """`RoomModes` every node shares."""

    def __init__(self, client: aredis.Redis | RedisCluster) -> None:
        self.client = client

    async def claim(self, room: str, wanted: Media) -> Media:
        key = f"gw:media:{{{room}}}"
        await self.client.set(key, wanted, nx=True, ex=_TTL_S)
        stored = await self.client.get(key)
        await self.client.expire(key, _TTL_S)
        text = stored.decode() if isinstance(stored, bytes) else stored
        return "sfu" if text == "sfu" else "mesh"

    async def forget(self, room: str) -> None:
        await self.client.delete(f"gw:media:{{{room}}}")
