"""The hot-path log sampler: 1 in N, at most K per second, per event name."""

from __future__ import annotations

import pytest

from gateway.observability.logging import Sampler


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_in_n_per_event() -> None:
    sampler = Sampler(every=10)
    allowed = [sampler.allow("frame_rejected") for _ in range(100)]
    assert sum(allowed) == 10
    assert allowed[0] is True  # the first occurrence is always seen
    # Another event has its own count.
    assert sampler.allow("push_rate_limited") is True


def test_at_most_k_per_second_per_event() -> None:
    clock = FakeClock()
    sampler = Sampler(per_second=3, clock=clock)
    assert [sampler.allow("e") for _ in range(10)] == [True] * 3 + [False] * 7
    assert sampler.allow("other") is True
    clock.now += 1.0
    assert [sampler.allow("e") for _ in range(5)] == [True] * 3 + [False] * 2


def test_take_reports_how_many_were_suppressed() -> None:
    clock = FakeClock()
    sampler = Sampler(per_second=1, clock=clock)
    assert sampler.take("e") == 0
    assert [sampler.take("e") for _ in range(4)] == [None] * 4
    clock.now += 1.5
    assert sampler.take("e") == 4
    assert sampler.take("e") is None


def test_both_limits_combine() -> None:
    clock = FakeClock()
    sampler = Sampler(every=2, per_second=2, clock=clock)
    results = [sampler.take("e") for _ in range(10)]
    # Every second call passes the 1-in-2 rule; only two of those fit in the second.
    assert results == [0, None, 1, None, None, None, None, None, None, None]
    clock.now += 1.0
    assert sampler.take("e") is not None


def test_event_map_is_bounded() -> None:
    sampler = Sampler(per_second=1, max_events=4)
    for i in range(50):
        sampler.allow(f"event-{i}")
    assert len(sampler._windows) <= 4


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Sampler(every=0)
    with pytest.raises(ValueError):
        Sampler(per_second=0)
