"""`make cluster-smoke` as a test: HAProxy, two gateways and Redis; phoenix.js users ride a drain and a crash."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "cluster_smoke.py"

pytestmark = [pytest.mark.js, pytest.mark.redis]


def test_users_survive_a_drain_and_a_crash_behind_haproxy(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--report", str(report_path), "--workdir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=58,
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 0, f"cluster smoke failed:\n{run.stdout}\n{run.stderr}"
    report = json.loads(report_path.read_text())
    assert report["ok"] is True
    assert elapsed < 60

    # Round-robin put users on both gateways, and they shared one room across them.
    assert set(report["homes"].values()) == {"a", "b"}
    assert report["topic"].startswith("room:")
    assert [s["step"] for s in report["steps"]] == ["started", "spread", "drain", "crash"]

    # SIGTERM: the drained gateway's users were closed with 1012 and it exited cleanly;
    # every user ended up on the other gateway.
    moved = {u for u, node in report["homes"].items() if node == report["homes"]["ann"]}
    assert report["drain_close_codes"] == dict.fromkeys(moved, 1012)
    assert report["drained_exit_code"] == 0
    [drain] = [s for s in report["steps"] if s["step"] == "drain"]
    survivor = next(iter(drain["connections"]))
    assert survivor != report["homes"]["ann"] and drain["connections"][survivor] == 4

    # SIGKILL and restart: every user lost the socket and came back to the restarted gateway.
    assert set(report["crash_close_codes"]) == set(report["homes"])
    assert all(code != 1012 for code in report["crash_close_codes"].values())
    [crash] = [s for s in report["steps"] if s["step"] == "crash"]
    assert crash["gateway"] == survivor and crash["connections"] == {survivor: 4}
