"""Helpers shared by the benchmarks: servers in their own processes, pinned to a core when asked,
and the Node load generator (bench/load/gen.mjs) on another."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
GENERATOR = ROOT / "bench" / "load" / "gen.mjs"
# The server gets one core and the generator the other, so neither steals the other's CPU and
# each one's share of its core says which of the two was the limit.
SERVER_CPU = 0
GENERATOR_CPU = 1


def pinned(cpu: int | None) -> list[str]:
    """The command prefix that runs a program on `cpu`; none where that is not possible."""
    if cpu is None or shutil.which("taskset") is None or (os.cpu_count() or 1) <= cpu:
        return []
    return ["taskset", "-c", str(cpu)]


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
def server(
    kind: str,
    *args: str,
    env: dict[str, str] | None = None,
    cpu: int | None = None,
    under: tuple[str, ...] = (),
    start_s: float = 20.0,
) -> Iterator[tuple[int, int]]:
    """Start `gateway` or `bare` on a free port, on core `cpu` if given; yields (port, pid).

    The gateway starts with rate limits off; pass `--rate-limits` in `args` to turn them on
    (the last of the two flags wins). `under` runs it under another program that execs it
    in the same process (valgrind), allowed `start_s` seconds to become healthy."""
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
        [*pinned(cpu), *under, *cmd],  # taskset execs the server: the pid is the server's
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(port, proc, start_s)
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


def generate(port: int, pid: int, workload: str, *args: str) -> dict[str, Any]:
    """Run one workload of the Node load generator against a server, on the generator's core;
    returns what it prints: figures plus both processes' CPU over each measurement window."""
    node_modules = GENERATOR.parent / "node_modules"
    if shutil.which("node") is None or not (node_modules / "ws").is_dir():
        raise SystemExit(
            "the load generator needs node and its packages: scripts/npm-ci.sh bench/load"
        )
    cmd = [
        *pinned(GENERATOR_CPU),
        "node",
        str(GENERATOR),
        "--url",
        f"ws://127.0.0.1:{port}/socket/websocket",
        "--server-pid",
        str(pid),
        "--clk-tck",
        str(os.sysconf("SC_CLK_TCK")),
        "--workload",
        workload,
        *args,
    ]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"load generator ({workload}) exited with {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def echo_cost(port: int, pid: int, duration: float) -> dict[str, float]:
    """Echo load, 100 connections with one push in flight each, plus the server's CPU per round
    trip: steadier than throughput on a shared machine, since it does not depend on how much
    CPU the load generator got."""
    result = generate(port, pid, "echo", "--windows", "1", "--duration", str(duration))
    window = result["windows"][0]
    return {
        "rps": window["replies"] / window["wall_s"],
        "p50_ms": window["p50_ms"],
        "p99_ms": window["p99_ms"],
        "cpu_us_per_rt": window["srv_cpu_s"] / max(window["replies"], 1) * 1e6,
    }
