"""`gateway serve --workers N`: N forked worker processes sharing one port through SO_REUSEPORT.

The kernel spreads new connections over the workers' listening sockets; the workers share rooms
through Redis like any other nodes (each has its own node id, `<node>-<i>`). The parent only
forwards SIGTERM/SIGINT so every worker drains, and exits once all of them have. A worker that
dies is not restarted: its clients reconnect to the others, and restarting processes is the job
of the service manager (systemd, Kubernetes) that watches the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

import msgspec
import structlog

from gateway.config import Settings
from gateway.observability.multiproc import worker_exited

log = structlog.get_logger("gateway.workers")

Serve = Callable[[Settings], Coroutine[Any, Any, int]]


def worker_settings(settings: Settings, index: int) -> Settings:
    """The settings of worker `index`: its own node id, the rest shared."""
    process = msgspec.structs.replace(settings.process, node_id=f"{settings.node}-{index}")
    return msgspec.structs.replace(settings, process=process)


def run_workers(settings: Settings, serve: Serve) -> int:
    """Fork `settings.process.workers` processes running `serve`; wait for all; return the worst code.

    Must run before any event loop or thread exists in this process (fork copies only the
    calling thread).
    """
    children: dict[int, int] = {}  # pid -> worker index
    for index in range(settings.process.workers):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                code = _worker_main(worker_settings(settings, index), serve)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index
    log.info("workers_started", workers=settings.process.workers, pids=sorted(children))

    def forward(signum: int, frame: FrameType | None) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, -1)
        worker_exited(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log.warning("worker_exited", worker=index, pid=pid, code=code, left=len(children))
        # A signal death shows as a negative code; report it as 128+signal like a shell.
        worst = max(worst, code if code >= 0 else 128 - code)
    log.info("workers_exited", code=worst)
    return worst


def _worker_main(settings: Settings, serve: Serve) -> int:
    # The parent's handlers were inherited; the worker installs its own in `serve`.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if not settings.observability.metrics:
        from gateway.observability import metrics

        metrics.disable()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    return asyncio.run(serve(settings))
