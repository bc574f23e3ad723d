"""Multiprocess mode: worker processes' metrics aggregate into one page, dead workers drop out."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.observability import multiproc
from gateway.observability.exposition import render_latest

ROOT = Path(__file__).resolve().parents[3]

WORKER = textwrap.dedent(
    """
    import os
    from gateway.observability import multiproc
    multiproc.check_worker_setup()
    from gateway.observability import metrics
    metrics.connection_opened("websocket", "v2")
    metrics.connection_opened("websocket", "v2")
    metrics.count_message_in("chat")
    metrics.flush_hot()  # the server does this every second and at shutdown
    metrics.READY.set(1)
    print(os.getpid())
    """
)


def _run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _sample(page: str, series: str) -> float | None:
    for line in page.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def test_workers_aggregate_and_dead_workers_leave_live_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, multiproc.ENV_VAR: str(tmp_path)}
    pids = [int(_run(WORKER, env)) for _ in range(2)]
    # The supervisor's view: this process reads the workers' files.
    monkeypatch.setenv(multiproc.ENV_VAR, str(tmp_path))
    page = render_latest()[0].decode()
    connections = 'gateway_socket_connections_active{serializer="v2",transport="websocket"}'
    messages = 'gateway_message_received_total{event_class="chat"}'
    assert _sample(page, connections) == 4
    assert _sample(page, messages) == 2
    assert _sample(page, "gateway_ready") == 1

    multiproc.worker_exited(pids[0])
    page = render_latest()[0].decode()
    assert _sample(page, connections) == 2
    assert _sample(page, messages) == 2  # totals never go backwards

    multiproc.worker_exited(pids[1])
    page = render_latest()[0].decode()
    assert _sample(page, connections) is None
    assert _sample(page, "gateway_ready") is None


def test_prepare_wipes_stale_files_and_exports_the_directory(tmp_path: Path) -> None:
    stale = tmp_path / "counter_12345.db"
    stale.write_bytes(b"old run")
    code = textwrap.dedent(
        f"""
        import os
        from gateway.observability import multiproc
        multiproc.prepare_multiprocess_dir({str(tmp_path)!r})
        from gateway.observability import metrics
        multiproc.check_worker_setup()
        metrics.count_join("ok")
        print(os.environ[multiproc.ENV_VAR])
        """
    )
    env = {k: v for k, v in os.environ.items() if k != multiproc.ENV_VAR}
    assert _run(code, env) == str(tmp_path)
    assert not stale.exists()
    assert any(p.name.startswith("counter_") for p in tmp_path.iterdir())


def test_prepare_refuses_once_metrics_are_in_process(tmp_path: Path) -> None:
    import gateway.observability.metrics  # noqa: F401  (prometheus_client now in-process)

    with pytest.raises(RuntimeError, match="before importing"):
        multiproc.prepare_multiprocess_dir(tmp_path)


def test_worker_check_catches_a_late_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.observability.metrics  # noqa: F401

    monkeypatch.setenv(multiproc.ENV_VAR, str(tmp_path))
    with pytest.raises(RuntimeError, match="in-process storage"):
        multiproc.check_worker_setup()
    monkeypatch.delenv(multiproc.ENV_VAR)
    multiproc.check_worker_setup()  # single-process mode needs nothing
