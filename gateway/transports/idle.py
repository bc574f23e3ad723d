"""Idle WebSockets closed by one periodic sweep, not one timer per connection.

A connection that sends nothing (not even Phoenix's heartbeat, every 30 s by default) for
`idle_s` is closed with 1002, as before; checking them all every `idle_s / 4` (at most each
second) costs one attribute read per connection and saves a timer handle and its callback per
connection. A connection closes between `idle_s` and `idle_s` plus one period after its last
frame.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import structlog

from gateway.errors import CLOSE_PROTOCOL_ERROR
from gateway.observability import metrics

log = structlog.get_logger("gateway.websocket")


class Watched(Protocol):
    last_seen: float
    closed: bool

    @property
    def id(self) -> str: ...
    def close(self, code: int, reason: str = "") -> None: ...


class IdleReaper:
    __slots__ = ("_timer", "idle_s", "period_s", "watched")

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.period_s = min(1.0, idle_s / 4)
        self.watched: dict[Watched, None] = {}
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, conn: Watched) -> None:
        conn.last_seen = time.monotonic()
        self.watched[conn] = None
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.period_s, self.sweep)

    def unwatch(self, conn: Watched) -> None:
        self.watched.pop(conn, None)

    def sweep(self) -> None:
        self._timer = None
        cutoff = time.monotonic() - self.idle_s
        idle = [conn for conn in self.watched if conn.last_seen < cutoff]
        for conn in idle:
            del self.watched[conn]
            if conn.closed:
                continue
            log.info("heartbeat_timeout", conn_id=conn.id)
            metrics.IDLE_TIMEOUTS.inc()
            conn.close(CLOSE_PROTOCOL_ERROR, "idle timeout")
        if self.watched:
            self._timer = asyncio.get_running_loop().call_later(self.period_s, self.sweep)
