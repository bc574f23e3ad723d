"""The reconnect grace queue: messages for a member who dropped, kept until they rejoin.

Per (room, user): a bounded FIFO and a deadline. `open` starts it when a member's last channel
drops without leaving; `push` queues a message for them; `claim` (on rejoin) takes the queue
in order; `expire` (after the deadline) takes it so the senders can be told `undeliverable`.
Deadlines are wall-clock seconds so nodes sharing a Redis backend agree on them.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Protocol

import msgspec


class Queued(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One held message: who sent it, its event, and its payload as encoded JSON."""

    sender: str
    event: str
    payload: bytes


class PushResult(enum.Enum):
    QUEUED = "queued"
    FULL = "full"  # the target's queue is at its bound
    ABSENT = "absent"  # no open grace period for the target


class GraceQueue(Protocol):
    async def open(self, room: str, user: str, deadline: float) -> None:
        """Start (or extend) `user`'s grace period in `room`, keeping any queued messages."""

    async def push(self, room: str, user: str, item: Queued, limit: int) -> PushResult:
        """Append to `user`'s queue if their grace period is open and the queue has room."""

    async def claim(self, room: str, user: str) -> list[Queued]:
        """The user rejoined: end the grace period and return its messages, oldest first."""

    async def expire(self, room: str, user: str, now: float) -> list[Queued] | None:
        """If the deadline has passed, end the grace period and return what was queued.

        None when the period is not over (extended, or already claimed).
        """


class _Slot:
    __slots__ = ("deadline", "items")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.items: deque[Queued] = deque()


class MemoryGraceQueue:
    """`GraceQueue` for one process."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], _Slot] = {}

    async def open(self, room: str, user: str, deadline: float) -> None:
        slot = self._slots.get((room, user))
        if slot is None:
            self._slots[(room, user)] = _Slot(deadline)
        else:
            slot.deadline = max(slot.deadline, deadline)

    async def push(self, room: str, user: str, item: Queued, limit: int) -> PushResult:
        slot = self._slots.get((room, user))
        if slot is None:
            return PushResult.ABSENT
        if len(slot.items) >= limit:
            return PushResult.FULL
        slot.items.append(item)
        return PushResult.QUEUED

    async def claim(self, room: str, user: str) -> list[Queued]:
        slot = self._slots.pop((room, user), None)
        return list(slot.items) if slot is not None else []

    async def expire(self, room: str, user: str, now: float) -> list[Queued] | None:
        slot = self._slots.get((room, user))
        if slot is None or slot.deadline > now:
            return None
        del self._slots[(room, user)]
        return list(slot.items)

    def __len__(self) -> int:
        return len(self._slots)
