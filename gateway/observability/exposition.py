"""Rendering of the metrics page for the `/metrics` handler, in single or multiprocess mode."""

from __future__ import annotations

from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.observability.multiproc import multiprocess_dir

# The classic text format every Prometheus 2.x and 3.x server parses.
CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4


def render_latest() -> tuple[bytes, str]:
    """Return the metrics page body and its Content-Type.

    In multiprocess mode the page aggregates every worker's mmap files, so any worker can answer
    a scrape for the whole node. That mode cannot export the `process_*` collectors (they only
    see the answering worker), which prometheus-client leaves out by design.
    """
    if multiprocess_dir() is not None:
        # A fresh registry per scrape, as prometheus-client documents: the collector reads the
        # files each time it is collected and holds no state worth keeping.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE
    return generate_latest(REGISTRY), CONTENT_TYPE
