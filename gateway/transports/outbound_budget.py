"""One budget for the unsent bytes of all WebSocket connections of a process.

Each connection may owe its client up to `--outbound-limit-bytes`; many paused clients can
each stay just under that and together hold gigabytes. A connection whose transport buffer
passes `DEBTOR_BYTES` is noted here (one comparison on the write path, which already reads the
buffer size); a sweep every `SWEEP_S` while there are debtors sums what they owe and, past the
budget, closes the largest debtors first until the rest fit.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Final, Protocol

from gateway.observability import metrics

#: Below this a connection is not a debtor: ordinary bursts never cost a sweep.
DEBTOR_BYTES: Final = 64 * 1024
SWEEP_S: Final = 0.1
#: Once debts of this size are paid or cut, freed heap pages go back to the system.
TRIM_AFTER_BYTES: Final = 32 * 1024 * 1024


def _malloc_trim() -> Callable[[], None] | None:
    """glibc's `malloc_trim(0)`: without it, the heap that held large unsent frames stays
    resident after they are freed (a process that owed 400 MB kept 330 MB)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc_trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None

    def trim() -> None:
        libc_trim(0)

    return trim


_TRIM: Final = _malloc_trim()


class Debtor(Protocol):
    @property
    def closed(self) -> bool: ...
    def owed(self) -> int: ...
    def cut(self, reason: str) -> None: ...


class OutboundBudget:
    __slots__ = ("_peak", "_timer", "cuts", "debtors", "limit", "owed")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.debtors: set[Debtor] = set()
        self.owed = 0  # what the debtors owed at the last sweep
        self.cuts = 0
        self._peak = 0  # the largest debt since the debtors were last all paid
        self._timer: asyncio.TimerHandle | None = None

    def note(self, debtor: Debtor) -> None:
        """`debtor` owes more than `DEBTOR_BYTES`; watched until it has paid down."""
        self.debtors.add(debtor)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(SWEEP_S, self.sweep)

    def sweep(self) -> None:
        self._timer = None
        owing: list[tuple[int, Debtor]] = []
        total = 0
        for debtor in list(self.debtors):
            owed = 0 if debtor.closed else debtor.owed()
            if owed < DEBTOR_BYTES:
                self.debtors.discard(debtor)
                continue
            owing.append((owed, debtor))
            total += owed
        if total > self.limit:
            owing.sort(key=lambda item: item[0], reverse=True)
            for owed, debtor in owing:
                if total <= self.limit:
                    break
                debtor.cut("outbound budget")
                self.debtors.discard(debtor)
                self.cuts += 1
                metrics.OUTBOUND_BUDGET_CUTS.inc()
                total -= owed
        self.owed = total
        self._peak = max(self._peak, total)
        metrics.OUTBOUND_OWED_BYTES.set(total)
        if self.debtors:
            self._timer = asyncio.get_running_loop().call_later(SWEEP_S, self.sweep)
        elif self._peak >= TRIM_AFTER_BYTES:
            self._peak = 0
            if _TRIM is not None:
                # Later: the cut connections' buffers are freed when their transports close.
                asyncio.get_running_loop().call_later(2.0, _TRIM)
