"""Per-key token buckets held in a plain in-process dict, and the flood rule that closes abusers.

Each bucket is stored the way GCRA (the generic cell rate algorithm) stores it: one float, the
time at which the bucket will be full again ("theoretical arrival time", TAT). A bucket with
`rate` tokens per second and `burst` tokens holds `burst - (tat - now) * rate` tokens, so:

- refill is lazy and exact: nothing runs between calls, the subtraction does the refill;
- a check is O(1): one dict lookup, a few float operations, one dict store on success;
- a key whose TAT is in the past holds a full bucket and carries no information, so `sweep`
  deletes it without changing any future decision. Memory is bounded by the keys active in the
  last `burst / rate` seconds (at most a few seconds with the defaults), plus the hard cap below.

Keys are kept in one dict per event class (`{class: {key: tat}}`) so the hot path builds no
tuple; the effect is the `(key, event_class)` keying the callers ask for.

Hard cap (`max_keys`, all classes together): a new key arriving at the cap triggers a sweep
(at most once per `min_sweep_interval`, so a flood of new keys cannot make every check O(n));
if the table is still full, the oldest tracked key (first inserted) is **evicted** and the new
key admitted. A full table never locks new users out: an evicted key only comes back with a
full bucket, which is what any new key gets anyway. `evicted` counts evictions for a metric.

No lock: the limiter is used from one event loop thread, and every method completes without
yielding.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

# Slack when comparing times, in seconds. Float sums such as 10 x 0.2 land a few ulps away from
# the exact value (more with monotonic clocks in the 1e6 s range); without slack a token that
# is due exactly now could be refused. A microsecond is far below any rate we configure.
_EPSILON = 1e-6

DEFAULT_MAX_KEYS = 200_000
DEFAULT_MIN_SWEEP_INTERVAL = 1.0


class BucketSpec(msgspec.Struct, frozen=True):
    """A bucket refilled with `rate` tokens per second and holding at most `burst` tokens."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")


class _Class:
    """One event class: its constants, precomputed for the hot path, and its keys' TATs."""

    __slots__ = ("burst", "interval", "tats", "tolerance")

    def __init__(self, spec: BucketSpec) -> None:
        self.burst = spec.burst
        # Time one token takes to refill, and how far ahead of now the TAT may run: a full
        # bucket is `burst` tokens, i.e. `burst * interval` seconds of credit.
        self.interval = 1.0 / spec.rate
        self.tolerance = spec.burst * self.interval + _EPSILON
        self.tats: dict[str, float] = {}


class RateLimiter:
    """Token buckets per (key, event class); an unknown class is always allowed."""

    __slots__ = (
        "_classes",
        "_clock",
        "_last_forced_sweep",
        "_max_keys",
        "_min_sweep_interval",
        "_size",
        "evicted",
    )

    def __init__(
        self,
        specs: dict[str, BucketSpec],
        clock: Callable[[], float],
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        min_sweep_interval: float = DEFAULT_MIN_SWEEP_INTERVAL,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        self._classes = {name: _Class(spec) for name, spec in specs.items()}
        self._clock = clock
        self._max_keys = max_keys
        self._min_sweep_interval = min_sweep_interval
        self._last_forced_sweep = float("-inf")
        self._size = 0
        self.evicted = 0  # tracked keys dropped to admit a new one into a full table

    def allow(self, key: str, event_class: str, cost: float = 1.0) -> bool:
        """Take `cost` tokens from the bucket of (key, event_class) if it holds that many.

        A refused call takes nothing. A cost above the class's burst is never allowed.
        """
        cls = self._classes.get(event_class)
        if cls is None:
            return True
        now = self._clock()
        tats = cls.tats
        tat = tats.get(key)
        if tat is None:
            return self._admit(cls, key, now, cost)
        if tat < now:
            tat = now  # full bucket: tokens beyond burst are not banked
        new_tat = tat + cost * cls.interval
        if new_tat - now > cls.tolerance:
            return False
        tats[key] = new_tat
        return True

    def _admit(self, cls: _Class, key: str, now: float, cost: float) -> bool:
        # First sight of a key (or first since it was swept): its bucket starts full.
        new_tat = now + cost * cls.interval
        if new_tat - now > cls.tolerance:
            return False
        if self._size >= self._max_keys and not self._make_room(now):
            self._evict_oldest(cls)
        cls.tats[key] = new_tat
        self._size += 1
        return True

    def tokens(self, key: str, event_class: str) -> float:
        """Tokens the bucket holds now (the burst for an untracked key or unknown class)."""
        cls = self._classes.get(event_class)
        if cls is None:
            return float("inf")
        now = self._clock()
        tat = cls.tats.get(key, now)
        return cls.burst - max(0.0, tat - now) / cls.interval

    def forget(self, key: str) -> None:
        """Drop every bucket of `key` (a closed connection), whatever its fill."""
        for cls in self._classes.values():
            if cls.tats.pop(key, None) is not None:
                self._size -= 1

    def sweep(self) -> int:
        """Delete the buckets that are full again; returns how many were deleted.

        Deleting a full bucket changes no decision: a missing key starts full.
        """
        horizon = self._clock() + _EPSILON
        removed = 0
        for cls in self._classes.values():
            tats = cls.tats
            idle = [key for key, tat in tats.items() if tat <= horizon]
            for key in idle:
                del tats[key]
            removed += len(idle)
        self._size -= removed
        return removed

    def _make_room(self, now: float) -> bool:
        # Rate-limit forced sweeps: at the cap every new key would otherwise cost O(n).
        if now - self._last_forced_sweep >= self._min_sweep_interval:
            self._last_forced_sweep = now
            self.sweep()
        return self._size < self._max_keys

    def _evict_oldest(self, cls: _Class) -> None:
        victims = cls if cls.tats else max(self._classes.values(), key=lambda c: len(c.tats))
        del victims.tats[next(iter(victims.tats))]
        self._size -= 1
        self.evicted += 1

    @property
    def max_keys(self) -> int:
        return self._max_keys

    def __len__(self) -> int:
        return self._size


class FloodRule(msgspec.Struct, frozen=True):
    """Close a connection after `limit` refusals within `window` seconds (close code 1008)."""

    limit: int = 20
    window: float = 10.0

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if not self.window > 0:
            raise ValueError(f"window must be > 0, got {self.window}")


class FloodTracker:
    """Counts one connection's rate-limit refusals and says when the connection must be closed.

    The rule is a sliding window: the connection is closed when its `limit`-th most recent
    refusal happened at most `window` seconds before the current one. Allowed messages do not
    reset the count: a client sending at ten times its rate gets one message in ten through as
    its bucket refills, and a "consecutive refusals" counter would never reach the limit. The
    last `limit` refusal times are kept in a ring, so memory is fixed and each call is O(1).
    """

    __slots__ = ("_i", "_limit", "_ring", "_window", "refusals")

    def __init__(self, rule: FloodRule | None = None) -> None:
        rule = rule or FloodRule()
        self._limit = rule.limit
        self._window = rule.window
        self._ring = [float("-inf")] * rule.limit
        self._i = 0
        self.refusals = 0  # total over the connection's life, for logs

    def refused(self, now: float) -> bool:
        """Record a refusal at `now`; True when the connection should be closed with 1008."""
        ring = self._ring
        i = self._i
        ring[i] = now
        i = (i + 1) % self._limit
        self._i = i
        self.refusals += 1
        # ring[i] is now the oldest of the last `limit` refusals, `now` included; it is -inf
        # until `limit` refusals have happened.
        return now - ring[i] <= self._window
