"""A background task that measures how late the event loop runs its timers (event-loop lag).

A loop that is blocked by CPU work or a synchronous call delays every socket on the node at
once; this is the single best early signal of saturation, so it is measured all the time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.observability import events
from gateway.observability.logging import Sampler, get_logger
from gateway.observability.metrics import LOOP_LAG, LOOP_LAG_LAST

DEFAULT_INTERVAL = 0.25
# Lag above this delays heartbeats and ICE exchanges noticeably; worth a (sampled) warning.
DEFAULT_WARN_ABOVE = 0.1

_log = get_logger(__name__)


async def _measure_forever(
    interval: float, warn_above: float | None, on_sample: Callable[[float], None] | None
) -> None:
    loop = asyncio.get_running_loop()
    # A loop stuck in a bad state would otherwise warn four times a second.
    sampler = Sampler(per_second=1)
    while True:
        # loop.time() is the loop's own monotonic clock, the one its timers are scheduled on.
        scheduled = loop.time()
        await asyncio.sleep(interval)
        lag = max(0.0, loop.time() - scheduled - interval)
        LOOP_LAG.observe(lag)
        LOOP_LAG_LAST.set(lag)
        if warn_above is not None and lag > warn_above:
            skipped = sampler.take(events.LOOP_LAG_HIGH)
            if skipped is not None:
                _log.warning(events.LOOP_LAG_HIGH, lag_seconds=round(lag, 4), skipped=skipped)
        if on_sample is not None:
            on_sample(lag)


def start_loop_lag_monitor(
    interval: float = DEFAULT_INTERVAL,
    *,
    warn_above: float | None = DEFAULT_WARN_ABOVE,
    on_sample: Callable[[float], None] | None = None,
) -> asyncio.Task[None]:
    """Start measuring lag every `interval` seconds on the running loop; cancel the task to stop.

    A lag above `warn_above` seconds is logged as `loop_lag_high` (at most once a second).
    `on_sample` receives each measurement after the metrics are updated (tests use it).
    A stall is seen as the part of it past a timer's due time, so one shorter than `interval`
    may be under-reported; 0.25 s keeps the cost negligible and still catches every stall
    long enough to matter to a heartbeat or a signaling round trip.
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    return asyncio.get_running_loop().create_task(
        _measure_forever(interval, warn_above, on_sample), name="gateway-loop-lag-monitor"
    )
