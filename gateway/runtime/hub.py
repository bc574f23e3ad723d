"""The node's live connections: counts for admission, and the graceful drain.

Drain (docs/wire.md, "Close codes": 1012): stop accepting, close sockets with 1012 in batches so clients
reconnect elsewhere without a thundering herd, and give up waiting after a grace period.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING

import structlog

from gateway.errors import CLOSE_RESTART
from gateway.observability import metrics

if TYPE_CHECKING:
    from gateway.runtime.client import Client

log = structlog.get_logger("gateway.hub")


class Hub:
    def __init__(self) -> None:
        self.connections: dict[str, Client] = {}
        self.per_ip: Counter[str] = Counter()
        self.draining = False
        self._empty = asyncio.Event()
        self._empty.set()

    def add(self, conn: Client) -> None:
        self.connections[conn.id] = conn
        self.per_ip[conn.info.peer] += 1
        self._empty.clear()

    def remove(self, conn: Client) -> None:
        if self.connections.pop(conn.id, None) is None:
            return
        peer = conn.info.peer
        self.per_ip[peer] -= 1
        if self.per_ip[peer] <= 0:
            del self.per_ip[peer]
        if not self.connections:
            self._empty.set()

    def __len__(self) -> int:
        return len(self.connections)

    async def drain(self, grace_s: float, batch: int, interval_s: float) -> int:
        """Close every connection with 1012 in batches; returns how many were still open."""
        self.draining = True
        metrics.DRAIN_DRAINING.set(1)
        metrics.READY.set(0)
        deadline = time.monotonic() + grace_s
        total = len(self.connections)
        log.info("drain_started", connections=total, grace_s=grace_s)
        while self.connections and time.monotonic() < deadline:
            for conn in list(self.connections.values())[:batch]:
                conn.close(CLOSE_RESTART, "draining")
            metrics.DRAIN_CONNECTIONS_REMAINING.set(len(self.connections))
            if self.connections:
                remaining = deadline - time.monotonic()
                await asyncio.sleep(max(0.0, min(interval_s, remaining)))
        with_timeout = max(0.0, deadline - time.monotonic())
        try:
            await asyncio.wait_for(self._empty.wait(), with_timeout)
        except TimeoutError:
            pass
        left = len(self.connections)
        metrics.DRAIN_CONNECTIONS_REMAINING.set(left)
        log.info("drain_finished", closed=total - left, left=left)
        return left
