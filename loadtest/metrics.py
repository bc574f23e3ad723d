"""What a worker measures (latency histograms, counters, errors by reason) and how workers'
numbers travel to the parent and merge there.

Latencies are HdrHistograms in microseconds. Histograms cross process boundaries in their
compressed HdrHistogram encoding, so merging N workers is exact, not an average of percentiles.
"""

from __future__ import annotations

import time
from collections import Counter as _Counter

import msgspec
from hdrh.histogram import HdrHistogram

# Measured kinds: connect = TCP + WebSocket upgrade; join = phx_join to its reply; reply = push
# to its reply; delivery = a push's payload reaching a (possibly other) client as a push or
# broadcast; heartbeat = heartbeat to its reply.
KINDS = ("connect", "join", "reply", "delivery", "heartbeat")
LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour; anything slower is clamped, not dropped
SIG_FIGS = 3
MAX_REASONS = 64  # errors keyed by free-form server reasons must stay bounded


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIG_FIGS)


def decode_histogram(encoded: str) -> HdrHistogram:
    hist = new_histogram()
    if encoded:
        hist.add(HdrHistogram.decode(encoded))
    return hist


class Counters(msgspec.Struct):
    """Monotonic counts; `users_active` is a gauge."""

    sent: int = 0
    received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    connects: int = 0
    disconnects: int = 0
    users_started: int = 0
    users_active: int = 0
    errors: int = 0
    unanswered: int = 0  # pushes nobody awaited whose reply never came (not errors)

    def minus(self, other: Counters) -> Counters:
        out = Counters()
        for field in self.__struct_fields__:
            setattr(out, field, getattr(self, field) - getattr(other, field))
        out.users_active = self.users_active
        return out

    def add(self, other: Counters) -> None:
        for field in self.__struct_fields__:
            setattr(self, field, getattr(self, field) + getattr(other, field))


class Snapshot(msgspec.Struct):
    """A worker's numbers: per-interval deltas each second, or cumulative totals at the end."""

    worker: int
    tick: int
    counters: Counters
    errors: dict[str, int]
    histograms: dict[str, str]  # kind -> HdrHistogram encoding
    final: bool = False
    cpu_s: float = 0.0  # the worker's CPU time over the run (final snapshots only)


class Metrics:
    """One worker's measurements; `record` is on the hot path, so it stays small."""

    def __init__(self) -> None:
        self.counters = Counters()
        self.errors: _Counter[str] = _Counter()
        self.total = {kind: new_histogram() for kind in KINDS}
        self.interval = {kind: new_histogram() for kind in KINDS}
        self._last_counters = Counters()
        self._last_errors: _Counter[str] = _Counter()

    def record(self, kind: str, latency_ns: int, expected_interval_us: int = 0) -> None:
        """Record one latency; with an expected interval (paced sending), HdrHistogram adds the
        samples a stalled sender would have produced (coordinated-omission correction)."""
        # Only the interval histogram is written here; it is folded into the total once a
        # second, which halves the per-message cost.
        us = max(LOWEST_US, min(HIGHEST_US, latency_ns // 1000))
        if expected_interval_us > 0:
            self.interval[kind].record_corrected_value(us, expected_interval_us)
        else:
            self.interval[kind].record_value(us)

    def error(self, reason: str) -> None:
        if reason not in self.errors and len(self.errors) >= MAX_REASONS:
            reason = "other"
        self.errors[reason] += 1
        self.counters.errors += 1

    def interval_snapshot(self, worker: int, tick: int) -> Snapshot:
        """The deltas since the previous call; interval histograms are reset."""
        counters = self.counters.minus(self._last_counters)
        self._last_counters = msgspec.structs.replace(self.counters)
        errors = dict(self.errors - self._last_errors)
        self._last_errors = _Counter(self.errors)
        hists = {}
        for kind, hist in self.interval.items():
            if hist.get_total_count():
                hists[kind] = hist.encode().decode()
                self.total[kind].add(hist)
                hist.reset()
        return Snapshot(worker, tick, counters, errors, hists)

    def count(self, kind: str) -> int:
        """Latencies recorded so far for `kind`."""
        return int(self.total[kind].get_total_count() + self.interval[kind].get_total_count())

    def fold(self) -> None:
        """Move what the interval histograms hold into the totals."""
        for kind, hist in self.interval.items():
            if hist.get_total_count():
                self.total[kind].add(hist)
                hist.reset()

    def final_snapshot(self, worker: int, tick: int, cpu_s: float = 0.0) -> Snapshot:
        self.fold()
        hists = {
            kind: hist.encode().decode()
            for kind, hist in self.total.items()
            if hist.get_total_count()
        }
        return Snapshot(
            worker, tick, self.counters, dict(self.errors), hists, final=True, cpu_s=cpu_s
        )


class LatencySummary(msgspec.Struct):
    """Percentiles of one kind, in milliseconds."""

    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float


def summarize(hist: HdrHistogram) -> LatencySummary:
    def ms(us: float) -> float:
        return round(us / 1000.0, 3)

    return LatencySummary(
        count=hist.get_total_count(),
        p50_ms=ms(hist.get_value_at_percentile(50)),
        p90_ms=ms(hist.get_value_at_percentile(90)),
        p99_ms=ms(hist.get_value_at_percentile(99)),
        p999_ms=ms(hist.get_value_at_percentile(99.9)),
        max_ms=ms(hist.get_max_value()),
        mean_ms=ms(hist.get_mean_value()),
    )


def now_ns() -> int:
    """Wall-clock nanoseconds: stamps compared across processes must share one clock."""
    return time.time_ns()
