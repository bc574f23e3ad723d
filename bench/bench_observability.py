"""What observability costs: echo throughput with metrics and JSON logging at production
settings, versus metrics off and logging quiet, measured in the same run (target: < 5%)."""

from __future__ import annotations

from bench.bench_wire import run_echo
from bench.common import ratio, server


def main() -> None:
    results = {}
    for name, args in (
        ("off", ("--no-metrics", "--log-level", "error")),
        ("on", ("--metrics", "--log-format", "json", "--log-level", "info")),
        ("off2", ("--no-metrics", "--log-level", "error")),
        ("on2", ("--metrics", "--log-format", "json", "--log-level", "info")),
    ):
        with server("gateway", *args) as (port, _pid):
            results[name] = run_echo(port, 5.0, 2)["rps"]
    on = (results["on"] + results["on2"]) / 2
    off = (results["off"] + results["off2"]) / 2
    print("\nobservability cost (echo, 100 connections, two runs each, interleaved)")
    print(
        f"metrics + JSON logs on: {on:.0f} rt/s | off: {off:.0f} rt/s | ratio {ratio(on, off)} "
        f"(cost {100 * (off - on) / off:.1f}%, target < 5%)"
    )


if __name__ == "__main__":
    main()
