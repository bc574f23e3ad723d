"""What observability costs: echo with metrics and JSON logging at production settings, versus
metrics off and logging quiet (target: < 5%). Compared on the server's CPU time per round trip,
which is steady on a shared machine; throughput is printed too."""

from __future__ import annotations

import statistics

from bench.common import SERVER_CPU, echo_cost, ratio, server

ROUNDS = 3
ON = ("--metrics", "--log-format", "json", "--log-level", "info")
OFF = ("--no-metrics", "--log-level", "error")


def main() -> None:
    runs: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    for _ in range(ROUNDS):
        for name, args in (("off", OFF), ("on", ON)):
            with server("gateway", *args, cpu=SERVER_CPU) as (port, pid):
                runs[name].append(echo_cost(port, pid, 5.0))
    cpu = {k: statistics.median(r["cpu_us_per_rt"] for r in v) for k, v in runs.items()}
    rps = {k: statistics.median(r["rps"] for r in v) for k, v in runs.items()}
    print("\nobservability cost (echo, 100 connections, median of 3 interleaved runs each)")
    print(
        f"server CPU per echo round trip: metrics + JSON logs {cpu['on']:.1f} us | both off {cpu['off']:.1f} us | "
        f"cost {100 * (cpu['on'] - cpu['off']) / cpu['off']:.1f}% (target < 5%)"
    )
    print(
        f"echo throughput: on {rps['on']:.0f} rt/s | off {rps['off']:.0f} rt/s | ratio {ratio(rps['on'], rps['off'])}"
    )


if __name__ == "__main__":
    main()
