"""Rate limits: cost of one check, and echo throughput with limits on versus off.

"On" gives the echo channel a bucket large enough never to refuse, so every push pays the full
check (classification, bucket arithmetic) without being throttled.
"""

from __future__ import annotations

import time

from bench.bench_wire import run_echo
from bench.common import ratio, server
from gateway.config import Settings
from gateway.protocol.ratelimit import RateLimiter
from gateway.services import event_class, limiter_specs


def check_cost(n: int = 1_000_000) -> float:
    limiter = RateLimiter(
        limiter_specs(Settings(rate_echo=1e9, burst_echo=1_000_000_000)), time.monotonic
    )
    keys = [f"user-{i}" for i in range(1000)]
    started = time.perf_counter()
    for i in range(n):
        limiter.allow(keys[i % 1000], event_class("room:1", "offer"))
    return (time.perf_counter() - started) / n


def main() -> None:
    per_check = check_cost()
    results: dict[str, list[float]] = {"on": [], "off": []}
    # Interleaved runs, averaged: the machine's own drift is larger than the cost measured.
    for name, args in (
        ("off", ("--no-rate-limits",)),
        (
            "on",
            (
                "--rate-limits",
                "--rate-echo",
                "1000000000",
                "--burst-echo",
                "1000000000",
                "--rate-connect",
                "100000",
                "--burst-connect",
                "100000",
            ),
        ),
        ("off", ("--no-rate-limits",)),
        (
            "on",
            (
                "--rate-limits",
                "--rate-echo",
                "1000000000",
                "--burst-echo",
                "1000000000",
                "--rate-connect",
                "100000",
                "--burst-connect",
                "100000",
            ),
        ),
    ):
        with server("gateway", *args) as (port, _pid):
            results[name].append(run_echo(port, 5.0, 2)["rps"])
    on, off = sum(results["on"]) / len(results["on"]), sum(results["off"]) / len(results["off"])
    print("\nrate limit benchmark")
    print(f"one check (classify + bucket): {per_check * 1e9:.0f} ns (target < 1000 ns)")
    print(
        f"echo with limits on: {on:.0f} rt/s | off: {off:.0f} rt/s | ratio {ratio(on, off)} "
        f"(difference {100 * (off - on) / off:.1f}%, target < 5%)"
    )


if __name__ == "__main__":
    main()
