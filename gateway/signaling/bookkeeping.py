"""Store writes that no reply waits for (signaling history, chat history), run later in order.

A relayed offer is answered as soon as it is relayed; recording it in the session store is
bookkeeping, so it is queued here and written by one task per node, in arrival order. The
queue is bounded: past `limit` the oldest write is dropped and counted, so a slow store costs
history, never memory or reply latency.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger("gateway.rooms")

Write = Callable[..., Awaitable[None]]


class Bookkeeper:
    __slots__ = ("_queue", "_task", "dropped", "failed", "failing", "limit")

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.dropped = 0
        self.failed = 0
        self.failing = 0  # failures in a row: an outage is logged once, not once per write
        self._queue: deque[tuple[Write, tuple[Any, ...]]] = deque()
        self._task: asyncio.Task[None] | None = None

    def add(self, write: Write, *args: Any, inline: Callable[..., None] | None = None) -> None:
        """Queue `await write(*args)`; returns at once. `inline` is the same write made without
        waiting (an in-process store's): with nothing queued before it, it is made at once,
        with no task and no loop round trip."""
        if inline is not None and self._task is None:
            try:
                inline(*args)
            except Exception:
                self._failed(write)
            else:
                if self.failing:
                    self._recovered()
            return
        queue = self._queue
        if len(queue) >= self.limit:
            queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("bookkeeping_dropped", dropped=self.dropped, limit=self.limit)
        queue.append((write, args))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def __len__(self) -> int:
        return len(self._queue)

    async def _drain(self) -> None:
        queue = self._queue
        try:
            while queue:
                write, args = queue.popleft()
                try:
                    await write(*args)
                except Exception:
                    self._failed(write)
                    continue
                if self.failing:
                    self._recovered()
        finally:
            self._task = None

    def _failed(self, write: Write) -> None:
        self.failed += 1
        self.failing += 1
        if self.failing == 1:
            log.exception("bookkeeping_write_failed", write=getattr(write, "__name__", ""))

    def _recovered(self) -> None:
        """A write succeeded after `failing` in a row did not."""
        log.warning("bookkeeping_write_failed", recovered=True, failed=self.failing)
        self.failing = 0

    async def flush(self) -> None:
        """Wait until every queued write has been made (on drain and in tests)."""
        while self._task is not None:
            await asyncio.shield(self._task)
