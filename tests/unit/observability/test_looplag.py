"""The loop-lag monitor sees a blocked event loop and feeds the metrics."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest
from prometheus_client import REGISTRY

from gateway.observability.logging import configure_logging
from gateway.observability.looplag import start_loop_lag_monitor


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    value = REGISTRY.get_sample_value(name, labels or {})
    assert value is not None
    return value


async def test_detects_a_blocked_loop() -> None:
    samples: list[float] = []
    count_before = _sample("gateway_loop_lag_seconds_count")
    over_100ms_before = count_before - _sample("gateway_loop_lag_seconds_bucket", {"le": "0.1"})
    task = start_loop_lag_monitor(0.02, on_sample=samples.append)
    try:
        await asyncio.sleep(0.1)  # a few undisturbed measurements first
        time.sleep(0.2)  # block the loop, as a synchronous call in a handler would
        await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert max(samples) >= 0.15
    assert min(samples) < 0.05  # the quiet measurements stay small
    count_after = _sample("gateway_loop_lag_seconds_count")
    assert count_after - count_before == len(samples)
    over_100ms_after = count_after - _sample("gateway_loop_lag_seconds_bucket", {"le": "0.1"})
    assert over_100ms_after - over_100ms_before >= 1
    assert _sample("gateway_loop_lag_last_seconds") == samples[-1]


async def test_warns_about_high_lag() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", stream=buf)
    task = start_loop_lag_monitor(0.01, warn_above=0.05)
    await asyncio.sleep(0.03)
    time.sleep(0.1)
    await asyncio.sleep(0.03)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    warnings = [line for line in lines if line["event"] == "loop_lag_high"]
    assert len(warnings) == 1
    assert float(warnings[0]["lag_seconds"]) >= 0.05
    assert warnings[0]["level"] == "warning"


async def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        start_loop_lag_monitor(0)
