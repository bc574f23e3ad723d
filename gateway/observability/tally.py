"""Plain-int counters for the hottest paths, folded into Prometheus counters on demand.

A Prometheus `inc()` takes a lock; a frame written to 10,000 subscribers would take it 10,000
times. Hot paths add to a `Tally` instead (one integer add) and `flush()` moves the sums into
the real counters, which runs before every scrape and once a second.
"""

from __future__ import annotations

from prometheus_client import Counter

from gateway.observability import metrics


class Tally:
    __slots__ = ("counter", "value")

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.value = 0

    def flush(self) -> None:
        value = self.value
        if value:
            self.value = 0
            self.counter.inc(value)


WS_BYTES_IN = Tally(metrics.BYTES_IN.labels("websocket"))
WS_BYTES_OUT = Tally(metrics.BYTES_OUT.labels("websocket"))
LP_BYTES_IN = Tally(metrics.BYTES_IN.labels("longpoll"))
LP_BYTES_OUT = Tally(metrics.BYTES_OUT.labels("longpoll"))
ALL = (WS_BYTES_IN, WS_BYTES_OUT, LP_BYTES_IN, LP_BYTES_OUT)


def flush() -> None:
    """Fold every hot-path tally, these and `metrics`' per-message ones, into the series."""
    for tally in ALL:
        tally.flush()
    metrics.flush_hot()


metrics.before_collect(flush)
