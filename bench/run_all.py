"""`make bench`: every benchmark in turn; each prints its figures beside its same-run baseline.

    .venv/bin/python bench/run_all.py [--quick] [NAME ...]

NAMEs pick the benchmarks whose module name contains one of them; `--quick` is passed to those
that have a short mode (bench_compare).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHES = [
    "bench.bench_path",
    "bench.bench_compare",
    "bench.bench_wire",
    "bench.bench_limits",
    "bench.bench_observability",
    "bench.bench_rooms",
    "bench.bench_longpoll",
    "bench.bench_scale",
    "bench.bench_loadtest",
    "bench.bench_sfu",
]
HAS_QUICK = {"bench.bench_compare"}


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    only = [a for a in sys.argv[1:] if a != "--quick"]
    failed = []
    for module in BENCHES:
        if only and not any(name in module for name in only):
            continue
        if not (ROOT / (module.replace(".", "/") + ".py")).exists():
            continue
        print(f"\n=== {module} ===", flush=True)
        extra = ["--quick"] if quick and module in HAS_QUICK else []
        if subprocess.run([sys.executable, "-m", module, *extra], cwd=ROOT).returncode != 0:
            failed.append(module)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
