"""The rooms of one node: limits, presence, sessions, the grace queue and targeted delivery.

Built once by the composition root and shared by every `RoomChannel`. Storage sits behind
the `PresenceStore`, `SessionStore` and `GraceQueue` interfaces, so a Redis backend replaces
the memory ones without touching the channel. Delivery to one member goes through the pub/sub
key `room:<id>#user:<user_id>`, which only that user's channels (on any node) subscribe to:
its cost does not grow with the size of the room.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
import structlog

from gateway.config import RoomsConfig
from gateway.ice import IcePolicy
from gateway.observability import metrics
from gateway.observability.labels import signaling_event
from gateway.presence.tracker import PresenceTracker
from gateway.pubsub.core import PubSub
from gateway.sfu.bridge import SfuBridge
from gateway.sfu.modes import MemoryRoomModes, RoomModes
from gateway.sfu.placement import Media
from gateway.sfu.videoroom import destroy_room
from gateway.signaling.authorize import Authorizer
from gateway.signaling.bookkeeping import Bookkeeper
from gateway.signaling.grace import GraceQueue, PushResult, Queued
from gateway.signaling.sessions import MemorySessionStore, SessionStore

log = structlog.get_logger("gateway.rooms")

UNDELIVERABLE = "undeliverable"
# Grace periods ended in one batch, at most, when many end at once.
_ENDED_PER_TURN = 100


class RoomLimits(msgspec.Struct, frozen=True):
    max_members: int = 50
    grace_s: float = 15.0
    grace_queue: int = 100
    max_payload_bytes: int = 131_072
    signaling_requires_auth: bool = False

    @classmethod
    def from_config(cls, s: RoomsConfig) -> RoomLimits:
        return cls(
            max_members=s.room_max_members,
            grace_s=s.room_grace_ms / 1000,
            grace_queue=s.room_grace_queue,
            max_payload_bytes=s.room_max_payload_bytes,
            signaling_requires_auth=s.signaling_requires_auth,
        )


def user_key(topic: str, user: str) -> str:
    """The pub/sub key only `user`'s channels in `topic` subscribe to."""
    return f"{topic}#user:{user}"


class Rooms:
    """Shared state and services of the room channels of this node."""

    def __init__(
        self,
        limits: RoomLimits,
        pubsub: PubSub,
        presence: PresenceTracker,
        sessions: SessionStore,
        grace: GraceQueue,
        wall: Callable[[], float] = time.time,
        authorize: Authorizer | None = None,
        ice: IcePolicy | None = None,
        sfu: SfuBridge | None = None,
        modes: RoomModes | None = None,
        default_media: Media = "mesh",
        stores_in_process: bool = False,
    ) -> None:
        self.authorize = authorize
        self.sfu = sfu
        self.modes: RoomModes = modes or MemoryRoomModes()
        self.default_media: Media = default_media
        self.ice = ice or IcePolicy()
        self.limits = limits
        self.pubsub = pubsub
        self.presence = presence
        self.sessions = sessions
        self.grace = grace
        self.wall = wall
        self.bookkeeper = Bookkeeper()
        # Grace periods to end, in the order they end (they all last `grace_s`): one timer for
        # the first, and one task at a time ending every one that is due. A thousand members
        # dropped together are then a thousand entries here, not a thousand timers and tasks.
        self._ending: deque[tuple[float, str, str, str]] = deque()
        self._ending_timer: asyncio.TimerHandle | None = None
        self._ending_task: asyncio.Task[None] | None = None
        #: The stores are this process's own (`stores_in_process`) and no hook or SFU calls
        #: out: a room channel's coroutines need no task of their own
        #: (`Channel.inline_coroutines`).
        self.in_process = stores_in_process and authorize is None and sfu is None

    def record_signal(self, room: str, kind: str, sender: str, to: str) -> None:
        """Note a relayed signal in the room's session, off the reply's path (bookkeeping)."""
        sessions = self.sessions
        # An in-process store's writes wait for nothing: the bookkeeper makes them at once.
        inline = sessions.record_now if isinstance(sessions, MemorySessionStore) else None
        self.bookkeeper.add(sessions.record, room, kind, sender, to, inline=inline)

    def keep_chat(self, room: str, message: bytes, at: float) -> None:
        """Keep a chat message in the room's history, off the reply's path (bookkeeping)."""
        sessions = self.sessions
        inline = sessions.add_chat_now if isinstance(sessions, MemorySessionStore) else None
        self.bookkeeper.add(sessions.add_chat, room, message, at, inline=inline)

    async def start(self) -> None:
        await self.presence.start()

    async def stop(self) -> None:
        await self.bookkeeper.flush()
        await self.presence.stop()
        if self._ending_timer is not None:
            self._ending_timer.cancel()
            self._ending_timer = None
        if self._ending_task is not None:
            self._ending_task.cancel()
        if self.sfu is not None:
            await self.sfu.stop()  # Janus detaches whatever handles are left with the session

    async def room_emptied(self, room: str, was_sfu: bool) -> None:
        """The room's last member left: its mode is decided afresh, its VideoRoom goes."""
        await self.modes.forget(room)
        if was_sfu and self.sfu is not None:
            self.sfu.forget_room(room)
            try:
                await self.sfu.request(room, destroy_room(room, self.sfu.admin_key))
            except Exception as exc:  # gone already, or Janus is down: it has no room then
                log.info("sfu_room_not_destroyed", room=room, error=str(exc))

    # -- delivery ---------------------------------------------------------------------------
    def send_to(self, topic: str, user: str, event: str, payload: Any) -> int:
        """Broadcast to `user`'s channels in `topic` on every node; local deliveries."""
        return self.pubsub.broadcast(user_key(topic, user), event, payload, topic=topic)

    async def deliver(
        self, topic: str, room: str, sender: str, to: str, event: str, body: msgspec.Raw
    ) -> PushResult | None:
        """Send `body` to member `to`, or queue it while `to` is in their grace period.

        None: delivered. Otherwise what the grace queue said (QUEUED, FULL or ABSENT).
        """
        if await self.presence.present(topic, to):
            self.send_to(topic, to, event, body)
            return None
        item = Queued(sender, event, bytes(body))
        result = await self.grace.push(room, to, item, self.limits.grace_queue)
        if result is PushResult.QUEUED:
            metrics.SIGNALING_GRACE_QUEUE.inc()
        elif result is PushResult.ABSENT:
            metrics.count_undeliverable(signaling_event(event) or "offer")
        return result

    async def claim(self, room: str, user: str) -> list[Queued]:
        """The messages held for `user` while they were away, now theirs."""
        items = await self.grace.claim(room, user)
        if items:
            metrics.SIGNALING_GRACE_QUEUE.dec(len(items))
        return items

    # -- the grace period -------------------------------------------------------------------
    async def dropped(self, topic: str, room: str, user: str) -> None:
        """`user`'s last channel in the room dropped without leaving: hold their messages."""
        if self.limits.grace_s <= 0:
            return
        await self.grace.open(room, user, self.wall() + self.limits.grace_s)
        loop = asyncio.get_running_loop()
        # A little slack: the loop clock and the wall clock the deadline is kept in may differ.
        self._ending.append((loop.time() + self.limits.grace_s + 0.01, topic, room, user))
        if self._ending_timer is None and self._ending_task is None:
            self._ending_timer = loop.call_at(self._ending[0][0], self._end_due)

    def _end_due(self) -> None:
        self._ending_timer = None
        self._ending_task = asyncio.get_running_loop().create_task(self._end_grace_periods())

    async def _end_grace_periods(self) -> None:
        """End every grace period that is due, in order; then wait for the next one."""
        loop = asyncio.get_running_loop()
        ending = self._ending
        try:
            while ending:
                now = loop.time()
                due: list[tuple[float, str, str, str]] = []
                while ending and ending[0][0] <= now and len(due) < _ENDED_PER_TURN:
                    due.append(ending.popleft())
                if not due:
                    self._ending_timer = loop.call_at(ending[0][0], self._end_due)
                    return
                if self.in_process:
                    for _, topic, room, user in due:  # nothing here waits
                        await self._expire(topic, room, user)
                    await asyncio.sleep(0)  # let the sockets have the loop between batches
                else:  # a store round trip each: side by side
                    await asyncio.gather(*(self._expire(*entry[1:]) for entry in due))
        finally:
            self._ending_task = None

    async def _expire(self, topic: str, room: str, user: str) -> None:
        try:
            items = await self.grace.expire(room, user, self.wall())
        except Exception:
            log.exception("grace_queue_expiry_failed", room=room, user_id=user)
            return
        if items is None:
            return
        if items:
            metrics.SIGNALING_GRACE_QUEUE.dec(len(items))
        for item in items:
            metrics.count_undeliverable(signaling_event(item.event) or "offer")
            self.send_to(topic, item.sender, UNDELIVERABLE, {"event": item.event, "to": user})
        if items:
            log.info("grace_queue_expired", room=room, user_id=user, undeliverable=len(items))
