"""Rate limits: cost of one check, and echo with limits on versus off.

"On" gives the echo channel a bucket large enough never to refuse, so every push pays the full
check (classification, bucket arithmetic) without being throttled. The comparison uses the
server's CPU time per round trip, which is steady on a shared machine; throughput is printed too.
"""

from __future__ import annotations

import statistics
import time

from bench.common import SERVER_CPU, echo_cost, ratio, server
from gateway.config import RatesConfig
from gateway.observability.labels import classify_event
from gateway.protocol.ratelimit import RateLimiter
from gateway.runtime.admission import limiter_specs

ROUNDS = 3
ON = (
    "--rate-limits",
    "--rate-echo",
    "1000000000",
    "--burst-echo",
    "1000000000",
    "--rate-connect",
    "100000",
    "--burst-connect",
    "100000",
)


def check_cost(n: int = 1_000_000) -> float:
    limiter = RateLimiter(
        limiter_specs(RatesConfig(rate_echo=1e9, burst_echo=1_000_000_000)), time.monotonic
    )
    keys = [f"user-{i}" for i in range(1000)]
    started = time.perf_counter()
    for i in range(n):
        limiter.allow(keys[i % 1000], classify_event("room:1", "offer"))
    return (time.perf_counter() - started) / n


def main() -> None:
    per_check = check_cost()
    runs: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    for _ in range(ROUNDS):
        for name, args in (("off", ("--no-rate-limits",)), ("on", ON)):
            with server("gateway", *args, cpu=SERVER_CPU) as (port, pid):
                runs[name].append(echo_cost(port, pid, 5.0))
    cpu = {k: statistics.median(r["cpu_us_per_rt"] for r in v) for k, v in runs.items()}
    rps = {k: statistics.median(r["rps"] for r in v) for k, v in runs.items()}
    print("\nrate limit benchmark (median of 3 interleaved runs each)")
    print(f"one check (classify + bucket): {per_check * 1e9:.0f} ns (target < 1000 ns)")
    print(
        f"server CPU per echo round trip: limits on {cpu['on']:.1f} us | off {cpu['off']:.1f} us | "
        f"difference {100 * (cpu['on'] - cpu['off']) / cpu['off']:.1f}% (target < 5%)"
    )
    print(
        f"echo throughput: on {rps['on']:.0f} rt/s | off {rps['off']:.0f} rt/s | ratio {ratio(rps['on'], rps['off'])}"
    )


if __name__ == "__main__":
    main()
