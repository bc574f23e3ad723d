"""`make bench`: every benchmark in turn; each prints its figures beside its same-run baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHES = [
    "bench.bench_path",
    "bench.bench_wire",
    "bench.bench_limits",
    "bench.bench_observability",
    "bench.bench_rooms",
    "bench.bench_longpoll",
    "bench.bench_scale",
    "bench.bench_loadtest",
    "bench.bench_sfu",
]


def main() -> int:
    only = sys.argv[1:]
    failed = []
    for module in BENCHES:
        if only and not any(name in module for name in only):
            continue
        if not (ROOT / (module.replace(".", "/") + ".py")).exists():
            continue
        print(f"\n=== {module} ===", flush=True)
        if subprocess.run([sys.executable, "-m", module], cwd=ROOT).returncode != 0:
            failed.append(module)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
