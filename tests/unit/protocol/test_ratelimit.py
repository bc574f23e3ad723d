"""Token buckets and the flood rule under a fake clock: refill, burst, rates, sweep, key cap."""

from __future__ import annotations

import pytest

from gateway.protocol.ratelimit import BucketSpec, FloodRule, FloodTracker, RateLimiter

# Classes as the gateway configures them (runtime/admission.py, limiter_specs), spelled out for the core.
SPECS = {
    "signaling": BucketSpec(5.0, 10),
    "chat": BucketSpec(5.0, 5),
    "join": BucketSpec(10.0, 10),
}


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter(
    clock: FakeClock,
    rate: float = 5.0,
    burst: int = 10,
    max_keys: int = 1000,
    min_sweep_interval: float = 1.0,
) -> RateLimiter:
    spec = BucketSpec(rate=rate, burst=burst)
    return RateLimiter({"c": spec}, clock, max_keys=max_keys, min_sweep_interval=min_sweep_interval)


def drain(rl: RateLimiter, key: str = "k", cls: str = "c") -> int:
    n = 0
    while rl.allow(key, cls):
        n += 1
        assert n < 10_000
    return n


def test_burst_then_refused() -> None:
    clock = FakeClock()
    rl = limiter(clock, rate=5, burst=10)
    assert drain(rl) == 10
    assert not rl.allow("k", "c")


def test_exact_refill_one_token_per_interval() -> None:
    clock = FakeClock()
    rl = limiter(clock, rate=5, burst=10)
    drain(rl)
    clock.advance(0.199)
    assert not rl.allow("k", "c")
    clock.advance(0.001)
    assert rl.allow("k", "c")
    assert not rl.allow("k", "c")
    # Half a second refills two and a half tokens: two pass, the half stays banked.
    clock.advance(0.5)
    assert drain(rl) == 2
    clock.advance(0.1)
    assert rl.allow("k", "c")


def test_refill_caps_at_burst() -> None:
    clock = FakeClock()
    rl = limiter(clock, rate=5, burst=10)
    drain(rl)
    clock.advance(3600)
    assert drain(rl) == 10


def test_refused_call_takes_nothing() -> None:
    clock = FakeClock()
    rl = limiter(clock, rate=1, burst=1)
    assert rl.allow("k", "c")
    for _ in range(50):
        assert not rl.allow("k", "c")
    clock.advance(1.0)
    assert rl.allow("k", "c")


def test_fractional_rate() -> None:
    clock = FakeClock()
    rl = limiter(clock, rate=0.5, burst=1)  # one token every two seconds
    assert rl.allow("k", "c")
    clock.advance(1.999)
    assert not rl.allow("k", "c")
    clock.advance(0.001)
    assert rl.allow("k", "c")


def test_fractional_cost_and_cost_over_burst() -> None:
    clock = FakeClock()
    rl = limiter(clock, rate=1, burst=2)
    assert [rl.allow("k", "c", 0.5) for _ in range(5)] == [True, True, True, True, False]
    assert rl.tokens("k", "c") == pytest.approx(0.0)
    clock.advance(10)
    assert not rl.allow("k", "c", 2.5)  # more than the bucket can ever hold
    assert not rl.allow("fresh", "c", 2.5)
    assert len(rl) == 1
    assert rl.allow("k", "c", 2.0)


def test_many_small_steps_stay_exact() -> None:
    # Sustained use at exactly the rate never gets refused, despite float sums.
    clock = FakeClock(1_000_000.0)
    rl = limiter(clock, rate=20, burst=1)
    for _ in range(10_000):
        assert rl.allow("k", "c")
        clock.advance(0.05)


def test_keys_and_classes_are_independent() -> None:
    clock = FakeClock()
    rl = RateLimiter({"a": BucketSpec(1, 1), "b": BucketSpec(1, 2)}, clock)
    assert rl.allow("x", "a")
    assert not rl.allow("x", "a")
    assert rl.allow("y", "a")
    assert rl.allow("x", "b")
    assert rl.allow("x", "b")
    assert not rl.allow("x", "b")
    assert len(rl) == 3


def test_unknown_class_is_always_allowed_and_not_stored() -> None:
    rl = limiter(FakeClock())
    assert all(rl.allow("k", "nope") for _ in range(1000))
    assert len(rl) == 0
    assert rl.tokens("k", "nope") == float("inf")


def test_tokens_reports_fill() -> None:
    clock = FakeClock()
    rl = limiter(clock, rate=5, burst=10)
    assert rl.tokens("k", "c") == 10
    for _ in range(4):
        rl.allow("k", "c")
    assert rl.tokens("k", "c") == pytest.approx(6)
    clock.advance(0.3)
    assert rl.tokens("k", "c") == pytest.approx(7.5)


def test_sweep_drops_only_full_buckets() -> None:
    clock = FakeClock()
    rl = limiter(clock, rate=5, burst=10)
    rl.allow("one", "c")  # full again after 0.2 s
    for _ in range(10):
        rl.allow("ten", "c")  # full again after 2 s
    assert len(rl) == 2
    clock.advance(0.1)
    assert rl.sweep() == 0
    clock.advance(0.1)
    assert rl.sweep() == 1
    assert len(rl) == 1
    assert rl.tokens("ten", "c") == pytest.approx(1)
    clock.advance(1.8)
    assert rl.sweep() == 1
    assert len(rl) == 0
    # A swept key starts full, exactly as it would have been.
    assert drain(rl, "ten") == 10


def test_forget_drops_every_class_of_a_key() -> None:
    clock = FakeClock()
    rl = RateLimiter(SPECS, clock)
    for cls in ("chat", "signaling", "join"):
        rl.allow("conn1", cls)
    rl.allow("conn2", "chat")
    rl.forget("conn1")
    rl.forget("never-seen")
    assert len(rl) == 1
    assert rl.tokens("conn1", "chat") == 5


def test_a_full_table_sweeps_then_evicts_the_oldest_key_never_refusing() -> None:
    clock = FakeClock()
    rl = limiter(clock, rate=1, burst=1, max_keys=3, min_sweep_interval=1.0)
    assert all(rl.allow(k, "c") for k in "abc")
    assert rl.allow("d", "c")  # full, nothing to sweep yet: the oldest key (a) makes room
    assert rl.evicted == 1
    assert len(rl) == 3
    # Tracked keys are still limited as before: b and c have spent their one token.
    assert not rl.allow("b", "c")
    # a is back with a full bucket, as any new key would be, and evicts b in turn.
    assert rl.allow("a", "c")
    assert rl.evicted == 2
    clock.advance(1.0)
    # Everyone is full again: the forced sweep makes room without evicting.
    assert rl.allow("e", "c")
    assert rl.evicted == 2


def test_forced_sweeps_are_rate_limited() -> None:
    clock = FakeClock()
    rl = limiter(clock, rate=100, burst=1, max_keys=2, min_sweep_interval=1.0)
    assert rl.allow("a", "c") and rl.allow("b", "c")
    assert rl.allow("x", "c")  # forced sweep at t=0 found nothing: a is evicted
    clock.advance(0.5)  # b and x are full again, but the last forced sweep was 0.5 s ago
    assert rl.allow("y", "c")
    assert rl.evicted == 2
    clock.advance(0.5)
    assert rl.allow("z", "c")  # this time the sweep makes room
    assert rl.evicted == 2
    assert len(rl) == 1


def test_a_spray_of_new_keys_cannot_lock_out_a_newcomer() -> None:
    clock = FakeClock()
    rl = limiter(clock, rate=0.0125, burst=1, max_keys=1000, min_sweep_interval=1.0)
    for n in range(5000):  # keys that live 80 s, churned far faster than they expire
        rl.allow(f"spray-{n}", "c")
        clock.advance(0.001)
    assert rl.allow("newcomer", "c")
    assert len(rl) == 1000


def test_the_configured_classes() -> None:
    """The classes a node builds from its settings' defaults (config.py holds the numbers)."""
    from gateway.config import load_settings
    from gateway.runtime.admission import limiter_specs

    specs = limiter_specs(load_settings({}, environ={}).rates)
    assert specs == {
        "signaling": BucketSpec(5.0, 10),
        "chat": BucketSpec(5.0, 5),
        "join": BucketSpec(10.0, 10),
        "connect": BucketSpec(20.0, 20),
        "other": BucketSpec(20.0, 40),
    }
    clock = FakeClock()
    rl = RateLimiter(specs, clock)
    for cls, spec in specs.items():
        assert drain(rl, "k", cls) == spec.burst


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0), (float("nan"), 1)])
def test_invalid_specs(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        BucketSpec(rate=rate, burst=burst)


def test_flood_closes_after_limit_refusals_in_window() -> None:
    tracker = FloodTracker(FloodRule(limit=20, window=10.0))
    now = 0.0
    for _ in range(19):
        assert not tracker.refused(now)
        now += 0.5
    assert tracker.refused(now)  # 20th refusal, 9.5 s after the first
    assert tracker.refusals == 20


def test_flood_window_slides() -> None:
    tracker = FloodTracker(FloodRule(limit=3, window=10.0))
    assert not tracker.refused(0.0)
    assert not tracker.refused(5.0)
    assert not tracker.refused(10.5)  # the refusal at 0 has left the window
    assert not tracker.refused(15.6)  # 5.0 left too
    assert tracker.refused(16.0)  # 10.5, 15.6, 16.0
    assert tracker.refused(16.1)


def test_flood_limit_one_and_defaults() -> None:
    assert FloodTracker(FloodRule(limit=1, window=1.0)).refused(0.0)
    tracker = FloodTracker()
    assert [tracker.refused(i * 0.5) for i in range(20)] == [False] * 19 + [True]
    with pytest.raises(ValueError):
        FloodRule(limit=0)
    with pytest.raises(ValueError):
        FloodRule(window=0.0)


def test_slow_refusals_never_close() -> None:
    tracker = FloodTracker(FloodRule(limit=20, window=10.0))
    assert not any(tracker.refused(i * 0.6) for i in range(1000))
