"""Helpers shared by the benchmarks: servers in their own processes, load from worker processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not become healthy")


@contextlib.contextmanager
def server(kind: str, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[int, int]]:
    """Start `gateway` or `bare` on a free port; yields (port, pid)."""
    port = free_port()
    if kind == "gateway":
        cmd = [
            PYTHON,
            "-m",
            "gateway",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-rate-limits",
            "--max-connections-per-ip",
            "100000",
            *args,
        ]
    else:
        cmd = [PYTHON, str(ROOT / "bench" / "bare_server.py"), "--port", str(port), *args]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(port, proc)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def ratio(ours: float, base: float) -> str:
    return f"{ours / base:.2f}x" if base else "n/a"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def echo_cost(port: int, pid: int, duration: float, workers: int) -> dict[str, float]:
    """Echo load, plus the server's CPU per round trip: steadier than throughput on a shared
    machine, since it does not depend on how much CPU the load generator got."""
    from bench.bench_wire import run_echo

    before = cpu_seconds(pid)
    result = run_echo(port, duration, workers)
    used = cpu_seconds(pid) - before
    result["cpu_us_per_rt"] = used / (result["rps"] * duration) * 1e6
    return result
