"""Setup and teardown of prometheus-client's multiprocess mode for `gateway serve --workers N`.

This module must not import `prometheus_client` at import time: the library picks its value
storage (in-process or mmap files) once, when it is first imported, by reading
`PROMETHEUS_MULTIPROC_DIR`. So the supervisor calls `prepare_multiprocess_dir` before anything
imports `gateway.observability.metrics`, and workers inherit the variable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

ENV_VAR: Final = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The multiprocess directory if multiprocess mode is configured, else None."""
    return os.environ.get(ENV_VAR) or None


def prepare_multiprocess_dir(path: str | os.PathLike[str]) -> Path:
    """Create (or empty) the metrics directory and export it for this process and its workers.

    Call once in the supervisor before starting workers. Stale `*.db` files from an earlier run
    would otherwise be summed into the new run's counters.
    """
    if _storage_is_in_process():
        raise RuntimeError(
            "prometheus_client was imported before multiprocess mode was set up; "
            "call prepare_multiprocess_dir() before importing gateway.observability.metrics"
        )
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[ENV_VAR] = str(directory)
    return directory


def check_worker_setup() -> None:
    """Fail fast in a worker whose metrics would silently stay in-process.

    That happens when the variable is set but `prometheus_client` was imported earlier (for
    instance in a parent that forked after importing it): each worker would then serve only its
    own numbers and the aggregate would be wrong.
    """
    if multiprocess_dir() is not None and _storage_is_in_process():
        raise RuntimeError(
            f"{ENV_VAR} is set but prometheus_client already chose in-process storage; "
            "set the variable before the first import of prometheus_client"
        )


def worker_exited(pid: int) -> None:
    """Tell the aggregator that worker `pid` is gone; call in the supervisor when it exits.

    Removes the worker's `live*` gauge files so its open connections and readiness stop
    counting. Its counters and histograms stay: totals must not go backwards.
    """
    directory = multiprocess_dir()
    if directory is None:
        return
    from prometheus_client import multiprocess

    # prometheus-client ships this function without annotations.
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def _storage_is_in_process() -> bool:
    values = sys.modules.get("prometheus_client.values")
    if values is None:
        return False
    # MultiProcessValue() returns a class named MmapedValue; anything else keeps values in memory.
    value_class: type = values.ValueClass
    return value_class.__name__ != "MmapedValue"
