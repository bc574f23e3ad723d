"""Instructions per message of the gateway's own work, counted by valgrind's callgrind.

Timings on a shared machine move by 10 % or more from one run to the next; an instruction count
does not: the same code, inputs and hash seed give the same count whatever else the machine is
doing. This runs `bench.bench_path --from-bytes` (masked WebSocket frames through the socket's
parser, the connection, the channel and the sink's write; no event loop, no system calls) under
callgrind twice, with the same frames made but a different number fed, and divides the
difference by the difference: start-up, imports and set-up cancel out.

    .venv/bin/python -m bench.bench_instructions [--only relay,echo,churn] [--messages 1000,3000]

`churn` counts a whole server process instead, the gateway's and then the bare server's
(bench/bare_server.py), each under callgrind on its own port: the Node generator runs 200
connect, join, leave and close cycles to warm it, callgrind's counters are zeroed, then
`--cycles` more, and the counters are dumped while the server is idle again. User-space
instructions only (the kernel's part of each connection is not counted); the time-driven work
between cycles (presence windows, the once-a-second metrics fold) moves it by about 0.1 %.

Needs valgrind (Debian package `valgrind`); about a minute per workload.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, SERVER_CPU, generate, server

_COLLECTED = re.compile(r"Collected : (\d+)")
_TOTALS = re.compile(r"^(?:totals|summary): (\d+)", re.M)
_LIMITS = (
    "RATE_SIGNALING",
    "BURST_SIGNALING",
    "RATE_CHAT",
    "BURST_CHAT",
    "RATE_CONNECT",
    "BURST_CONNECT",
)


def instructions(workload: str, messages: int, frames: int) -> int:
    """Instructions valgrind counted for one whole `bench_path` run feeding `messages`."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/callgrind.out",
            sys.executable,
            "-m",
            "bench.bench_path",
            "--from-bytes",
            "--only",
            workload,
            "--messages",
            str(messages),
            "--frames",
            str(frames),
            "--rounds",
            "1",
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts in every run
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1))


def churn_instructions(kind: str, cycles: int) -> int:
    """User-space instructions `kind` ("gateway" or "bare") spent on `cycles` churn cycles."""
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/callgrind.out"
        # As ../shared/bench/compare.sh runs the gateway: limits checked, but raised past the load.
        args = ("--rate-limits",) if kind == "gateway" else ()
        env = {"PYTHONHASHSEED": "0", **{f"GATEWAY_{limit}": "1000000" for limit in _LIMITS}}
        valgrind = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}")
        running = server(kind, *args, env=env, cpu=SERVER_CPU, under=valgrind, start_s=300)
        with running as (port, pid):
            generate(port, pid, "churn", "--cycles", "200", "--loops", "20")
            _control("-z", pid)
            done = generate(port, pid, "churn", "--cycles", str(cycles), "--loops", "20")
            _control("-d", pid)
        if done["errors"]:
            raise RuntimeError(f"{kind}: {done['errors']} churn cycles failed: {done}")
        dumped = Path(f"{out}.1").read_text(errors="replace")
    found = _TOTALS.search(dumped)
    if found is None:
        raise RuntimeError(f"{kind}: no totals in callgrind's dump")
    return int(found.group(1))


def _control(flag: str, pid: int) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="relay,echo", help="comma list of: relay, echo, churn")
    ap.add_argument("--cycles", type=int, default=1000, help="churn cycles counted")
    ap.add_argument("--messages", default="1000,3000", help="the two message counts compared")
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind): nothing counted")
        return 1
    low, high = (int(n) for n in a.messages.split(","))
    if high <= low:
        ap.error("--messages wants a smaller count, then a larger one")
    for workload in (w for w in a.only.split(",") if w):
        if workload == "churn":
            counted = {k: churn_instructions(k, a.cycles) / a.cycles for k in ("gateway", "bare")}
            print(
                f"churn  {counted['gateway']:10,.0f} instructions per cycle, gateway; "
                f"bare {counted['bare']:,.0f} ({counted['gateway'] / counted['bare']:.2f}x)",
                flush=True,
            )
            continue
        fewer = instructions(workload, low, high)
        more = instructions(workload, high, high)
        per = (more - fewer) / (high - low)
        print(f"{workload:6} {per:10,.0f} instructions per message", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
