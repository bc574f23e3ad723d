"""Instructions per message of the gateway's own work, counted by valgrind's callgrind.

Timings on a shared machine move by 10 % or more from one run to the next; an instruction count
does not: the same code, inputs and hash seed give the same count whatever else the machine is
doing. This runs `bench.bench_path --from-bytes` (masked WebSocket frames through the socket's
parser, the connection, the channel and the sink's write; no event loop, no system calls) under
callgrind twice, with the same frames made but a different number fed, and divides the
difference by the difference: start-up, imports and set-up cancel out.

    .venv/bin/python -m bench.bench_instructions [--only relay,echo] [--messages 1000,3000]

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

from bench.common import ROOT

_COLLECTED = re.compile(r"Collected : (\d+)")


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="relay,echo", help="comma list of: relay, echo")
    ap.add_argument("--messages", default="1000,3000", help="the two message counts compared")
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind): nothing counted")
        return 1
    low, high = (int(n) for n in a.messages.split(","))
    if high <= low:
        ap.error("--messages wants a smaller count, then a larger one")
    for workload in (w for w in a.only.split(",") if w):
        fewer = instructions(workload, low, high)
        more = instructions(workload, high, high)
        per = (more - fewer) / (high - low)
        print(f"{workload:6} {per:10,.0f} instructions per message", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
