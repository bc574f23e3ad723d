"""The gateway beside a bare aiohttp server under the same load, with the CPU of the server and of
the load generator beside every figure, so that no figure is the generator's.

    .venv/bin/python -m bench.bench_compare [--quick] [--runs N]
        [--only conns,echo,relay,churn,fanout] [--rates 2000,5000,...] [--conns N]
        [--sizes 2000,5000] [--json PATH]

Each server (the gateway, then bench/bare_server.py) runs pinned to CPU 0 and the load generator,
Node + `ws` + `bufferutil` (bench/load/gen.mjs), to CPU 1. All load is V2 JSON over WebSocket,
one user id per connection through the `token` connect param:

- echo: 100 connections, each on its own `echo:<uuid>`, closed loop with W = 1 and W = 10
  pushes in flight per connection; replies/s and round-trip p50/p99.
- relay: 500 rooms of two peers; each peer sends ~1 KB `offer`s with `to` the other peer, open
  loop at stepped total rates; per step the share delivered and the p99 from send to delivery.
  "Max sustained" is the highest step with p99 < 50 ms and >= 95 % delivered.
- churn: 50 loops of connect, join a new `room:<uuid>`, leave, close; cycles/s.
- fanout: one `room:<uuid>` grown by closed-loop joins (50 in flight) to 2,000 and then 5,000
  members (`--quick`: 1,000 and 2,000; a join budget of 300 s, quick 60 s, after which the
  room stays at the size it reached). A gateway join is done when the member has its
  `presence_state`, a bare one at the reply. Then one more member sends 20 (quick 10)
  `new_msg`, each 200 ms after every member got the one before; deliveries/s is members over
  the time from the send to the last member's copy (median of the broadcasts), with the p50 and
  p99 of each member's copy. `srv` and `gen` here are over the bursts alone (send to last copy,
  from each thread's run time): between them both processes idle.
- conns (memory): 15,000 connections (quick 5,000), 100 connecting at a time, each joined to
  its own `room:<uuid>` and sending a heartbeat every 10 s; the server's RSS growth (VmRSS) per
  joined connection after a few seconds' hold and again 15 s later, joins/s, and the share of
  heartbeats answered. Its ratio is KB per connection, lower is better, and never reads
  generator-bound. It runs first, so its baseline is a fresh process. Needs an open-files limit
  above the connections held (raised as far as needed when the hard limit allows, else the run
  stops saying so).

`srv` and `gen` are the share of one core each process used over the measurement window
(utime + stime from /proc/<pid>/stat), and `µs/...` the server's CPU per operation. Where the
server used less than 90 % of its core at the saturation point (the measurement itself for echo
and churn, the bursts of fan-out, the first failing relay step), something else was the limit, usually the generator:
the ratio then reads `generator-bound`. `--runs N` interleaves N runs of both servers and prints
the median of each figure. In the fan-out the generator spends about as much CPU per delivery as
the servers do (a read per member socket), so its bursts may read generator-bound.

The gateway runs as in production: rate limits on (every push is checked; the rates are raised
past the load; the member cap of a room past the largest fan-out), metrics, presence and
validation on, log level warning. The bare server does the minimum of the protocol (no
presence, validation, metrics, or replies to relayed pushes).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.common import (
    GENERATOR_CPU,
    ROOT,
    SERVER_CPU,
    cpu_seconds,
    generate,
    pinned,
    server,
)

KINDS = ("gateway", "bare")
# conns first: its RSS baseline is then a fresh process's, not a heap other workloads grew.
WORKLOADS = ("conns", "echo", "relay", "churn", "fanout")
SATURATED_PCT = 90.0
GENERATOR_NEAR_PCT = 95.0
P99_LIMIT_MS = 50.0
MIN_DELIVERED = 0.95
UNLIMITED = "1000000"
JOINS_IN_FLIGHT = 100  # conns: connects and joins at a time
FANOUT_IN_FLIGHT = 50  # fanout: closed-loop joins into the one room
HEARTBEAT_S = 10.0
BROADCAST_SPACING_MS = 200
# Sockets besides the generator's own: the server's listener, files and pipes.
SPARE_FDS = 200
# docs/auth.md: with --trust-token-as-user-id the `token` param is the user id (load tests only),
# which relay's `to` needs. Every rate limit class stays checked, at rates no workload reaches;
# the member cap of a room (50 by default) is raised past the largest fan-out room.
GATEWAY_ARGS = (
    "--trust-token-as-user-id",
    "--echo",
    "--metrics",
    "--room-max-members",
    UNLIMITED,
    "--rate-limits",
    *(
        arg
        for cls in ("signaling", "chat", "join", "connect", "other", "echo")
        for arg in (f"--rate-{cls}", UNLIMITED, f"--burst-{cls}", UNLIMITED)
    ),
)


@dataclass(frozen=True)
class Mode:
    name: str
    warmup_s: float
    echo_s: float
    relay_step_s: float
    relay_drain_s: float
    churn_s: float
    rates: str
    conns: int
    hold_s: float
    idle_s: float
    sizes: str
    broadcasts: int
    join_budget_s: float


FULL = Mode(
    "full",
    2.0,
    8.0,
    5.0,
    2.0,
    8.0,
    "2000,5000,10000,15000,20000,30000,40000,60000",
    15_000,
    5.0,
    15.0,
    "2000,5000",
    20,
    300.0,
)
QUICK = Mode(
    "quick",
    1.0,
    3.0,
    2.0,
    1.0,
    3.0,
    "2000,5000,10000,15000,20000,30000",
    5_000,
    3.0,
    15.0,
    "1000,2000",
    10,
    60.0,
)


def enough_files(mode: Mode, only: list[str]) -> None:
    """Raise this process's open-files limit (the server and the generator inherit it) to what
    the largest workload holds, or stop with what to do."""
    sockets = max(
        mode.conns if "conns" in only else 0,
        max(int(n) for n in mode.sizes.split(",")) + 1 if "fanout" in only else 0,
    )
    need = sockets + SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need or soft == resource.RLIM_INFINITY:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise SystemExit(
            f"{sockets:,} connections need an open-files limit of at least {need:,}; the hard "
            f"limit is {hard:,} (ulimit -Hn): raise it, or pass a smaller --conns / --sizes"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


# -- running -----------------------------------------------------------------------------------
def settle(pid: int, limit_s: float = 15.0) -> None:
    """Wait until the server is idle (under 15 % of a core for a second): the previous
    workload's closes and presence leaves must not bill the next one."""
    deadline = time.monotonic() + limit_s
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        quiet = quiet + 1 if cpu_seconds(pid) - before < 0.075 else 0


def generator_args(kind: str, workload: str, mode: Mode, rates: str) -> list[str]:
    if workload == "conns":
        return [
            "--conns",
            str(mode.conns),
            "--in-flight",
            str(JOINS_IN_FLIGHT),
            "--hold",
            str(mode.hold_s),
            "--idle",
            str(mode.idle_s),
            "--heartbeat-s",
            str(HEARTBEAT_S),
        ]
    if workload == "fanout":
        return [
            "--sizes",
            mode.sizes,
            "--broadcasts",
            str(mode.broadcasts),
            "--spacing-ms",
            str(BROADCAST_SPACING_MS),
            "--in-flight",
            str(FANOUT_IN_FLIGHT),
            "--join-budget",
            str(mode.join_budget_s),
            # The gateway's join is done when the member has the room's presence; the bare
            # server has none, so its join is done at the reply.
            "--join-until",
            "presence_state" if kind == "gateway" else "reply",
        ]
    if workload == "echo":
        return ["--warmup", str(mode.warmup_s), "--duration", str(mode.echo_s)]
    if workload == "relay":
        return [
            "--rates",
            rates,
            "--warmup",
            str(mode.warmup_s / 2),
            "--duration",
            str(mode.relay_step_s),
            "--drain",
            str(mode.relay_drain_s),
            "--p99-ms",
            str(P99_LIMIT_MS),
            "--min-delivered",
            str(MIN_DELIVERED),
        ]
    return ["--warmup", str(mode.warmup_s), "--duration", str(mode.churn_s)]


def shares(window: dict[str, Any], ops: float) -> dict[str, float]:
    wall = window["wall_s"]
    return {
        "srv_pct": 100 * window["srv_cpu_s"] / wall,
        "gen_pct": 100 * window["gen_cpu_s"] / wall,
        "us_per_op": window["srv_cpu_s"] / ops * 1e6 if ops else float("nan"),
    }


def figures(workload: str, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The figures of one workload's run by name; `bound_pct` is the server's share of its core
    at the saturation point, which decides whether the figure is the server's."""
    out: dict[str, dict[str, Any]] = {}
    if workload == "echo":
        for w in raw["windows"]:
            row = {
                "value": w["replies"] / w["wall_s"],
                "p50_ms": w["p50_ms"],
                "p99_ms": w["p99_ms"],
                "errors": w["errors"],
                **shares(w, w["replies"]),
            }
            out[f"echo W={w['W']}"] = {**row, "bound_pct": row["srv_pct"]}
    elif workload == "churn":
        row = {
            "value": raw["cycles"] / raw["wall_s"],
            "p50_ms": raw["p50_ms"],
            "p99_ms": raw["p99_ms"],
            "errors": raw["errors"],
            **shares(raw, raw["cycles"]),
        }
        out["churn"] = {**row, "bound_pct": row["srv_pct"]}
    elif workload == "conns":
        out["conns"] = conns_row(raw)
    elif workload == "fanout":
        for size in raw["sizes"]:
            out[f"fanout {size['size']}"] = fanout_row(size)
    else:
        steps = [
            {
                "offered": s["offered"],
                "value": s["received"] / s["wall_s"],
                "delivered_pct": 100 * s["delivered_frac"],
                "p99_ms": s["p99_ms"] if s["p99_ms"] is not None else float("nan"),
                "errors": s["errors"],
                "pass": 1.0 if s["pass"] else 0.0,
                **shares(s, s["received"]),
            }
            for s in raw["steps"]
        ]
        passed = [s for s in steps if s["pass"]]
        best = passed[-1] if passed else {"value": 0.0, "offered": 0.0}
        # The first failing step, or the top step when none failed (the rates ran out first).
        saturation = next((s for s in steps if not s["pass"]), steps[-1])
        out["relay max sustained"] = {
            **best,
            "bound_pct": saturation["srv_pct"],
            "saturation_offered": saturation["offered"],
            "saturation_srv_pct": saturation["srv_pct"],
            "saturation_gen_pct": saturation["gen_pct"],
        }
        out["relay steps"] = {"steps": steps}
    return out


def conns_row(raw: dict[str, Any]) -> dict[str, Any]:
    """RSS growth per joined connection after the hold and after the idle spell (the figure);
    srv/gen and µs per connection over the opening, where the CPU goes."""
    joined = raw["joined"]

    def per(kb: int) -> float:
        return (kb - raw["rss_before_kb"]) / joined if joined else float("nan")

    sent = raw["heartbeats_sent"]
    hold = raw["hold"]
    return {
        "value": per(raw["rss_idle_kb"]),
        "held_kb": per(raw["rss_held_kb"]),
        "conns": raw["conns"],
        "joined": joined,
        "errors": raw["errors"],
        "joins_per_s": joined / raw["open"]["wall_s"],
        "heartbeats_pct": 100 * raw["heartbeats_answered"] / sent if sent else float("nan"),
        "hold_srv_pct": 100 * hold["srv_cpu_s"] / hold["wall_s"],
        "hold_gen_pct": 100 * hold["gen_cpu_s"] / hold["wall_s"],
        **shares(raw["open"], joined),
    }


def fanout_row(size: dict[str, Any]) -> dict[str, Any]:
    """Deliveries/s of one room size; srv/gen are over the bursts (send to the last member's
    copy), the only time the server is busy, so `bound_pct` is the server's share there."""
    join = size["join"]
    row = {
        "value": size["deliveries_per_s"],
        "size": size["size"],
        "members": size["members"],
        "budget_ended": 1.0 if size["budget_ended"] else 0.0,
        "join_s": join["wall_s"],
        "joins_per_s": size["joins_per_s"],
        "join_errors": size["join_errors"],
        "join_srv_pct": 100 * join["srv_cpu_s"] / join["wall_s"],
        "join_gen_pct": 100 * join["gen_cpu_s"] / join["wall_s"],
        "last_ms": size["last_ms"],
        "p50_ms": size["p50_ms"],
        "p99_ms": size["p99_ms"],
        "delivered_pct": 100 * size["deliveries"] / size["expected"] if size["expected"] else 0.0,
        "incomplete": size["incomplete"],
        **shares(size, size["deliveries"]),
    }
    return {**row, "bound_pct": row["srv_pct"]}


def measure(kind: str, mode: Mode, only: list[str], rates: str) -> dict[str, dict[str, Any]]:
    args = GATEWAY_ARGS if kind == "gateway" else ()
    out: dict[str, dict[str, Any]] = {}
    with server(kind, *args, cpu=SERVER_CPU) as (port, pid):
        for workload in only:
            settle(pid)
            print(f"  {kind}: {workload}", file=sys.stderr, flush=True)
            out.update(
                figures(
                    workload,
                    generate(port, pid, workload, *generator_args(kind, workload, mode, rates)),
                )
            )
    return out


# -- medians over runs -------------------------------------------------------------------------
def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key, first in rows[0].items():
        values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
        merged[key] = statistics.median(values) if values and len(values) == len(rows) else first
    return merged


def median_runs(runs: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in runs[0]:
        if name == "relay steps":
            depth = min(len(r[name]["steps"]) for r in runs)
            out[name] = {
                "steps": [median_row([r[name]["steps"][i] for r in runs]) for i in range(depth)]
            }
        else:
            out[name] = median_row([r[name] for r in runs])
    return out


# -- printing ----------------------------------------------------------------------------------
def num(x: float | None, digits: int = 0) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:,.{digits}f}"


def cpu(row: dict[str, Any]) -> str:
    return f"srv {row['srv_pct']:3.0f}%  gen {row['gen_pct']:3.0f}%"


def errors(row: dict[str, Any]) -> str:
    """The row's failed operations, when there were any."""
    return f"  {row['errors']:.0f} errors" if row["errors"] else ""


def ratio(name: str, results: dict[str, dict[str, dict[str, Any]]]) -> str:
    g, b = results["gateway"][name], results["bare"][name]
    bound = [k for k, r in (("gateway", g), ("bare", b)) if r["bound_pct"] < SATURATED_PCT]
    if bound:
        detail = ", ".join(f"{k} srv {results[k][name]['bound_pct']:.0f}%" for k in bound)
        return f"generator-bound ({detail})"
    if not b["value"]:
        return "n/a"
    # Both servers were busy, but a generator near its own limit too makes the figure a floor.
    gen = max(r.get("saturation_gen_pct", r["gen_pct"]) for r in (g, b))
    note = f" (gen up to {gen:.0f}%)" if gen >= GENERATOR_NEAR_PCT else ""
    return f"{g['value'] / b['value']:.2f}x{note}"


def report(results: dict[str, dict[str, dict[str, Any]]], mode: Mode, runs: int) -> None:
    summary: list[str] = []
    spread = f"median of {runs} runs" if runs > 1 else "one run"
    print(
        f"\ngateway vs bare aiohttp ({mode.name} mode, {spread}): servers pinned to CPU {SERVER_CPU}, "
        f"Node generator to CPU {GENERATOR_CPU}"
    )
    if not pinned(SERVER_CPU) or not pinned(GENERATOR_CPU):
        print("  (not pinned: taskset or a second core is missing; srv/gen share cores)")
    print(
        "srv/gen: share of one core each used over the window; µs: the server's CPU per operation"
    )
    gw = results["gateway"]
    echo_names = [n for n in gw if n.startswith("echo W=")]
    if echo_names:
        print(f"\necho, 100 connections on echo:<uuid>, closed loop, {mode.echo_s:g} s")
        for name in echo_names:
            for kind in KINDS:
                r = results[kind][name]
                label = name.removeprefix("echo ") if kind == "gateway" else ""
                print(
                    f"  {label:<5} {kind:<8} {num(r['value']):>8} replies/s  p50 {num(r['p50_ms'], 2):>6} ms  "
                    f"p99 {num(r['p99_ms'], 2):>6} ms  {num(r['us_per_op'], 1):>6} µs/rt  {cpu(r)}{errors(r)}"
                )
            print(f"        gateway/bare {ratio(name, results)}")
            summary.append(f"{name} {ratio(name, results)}")
    if "relay steps" in gw:
        print(
            f"\nrelay, 500 rooms x 2 peers, ~1 KB offers with `to`, open loop, {mode.relay_step_s:g} s steps"
        )
        head = "delivered/s      %  p99 ms  µs/msg  srv  gen  ok"
        print(f"  {'offered/s':>9} | gateway {head} | bare    {head}")
        depth = max(len(results[k]["relay steps"]["steps"]) for k in KINDS)
        for i in range(depth):
            cells = []
            offered = 0.0
            for kind in KINDS:
                steps = results[kind]["relay steps"]["steps"]
                if i >= len(steps):
                    cells.append(" " * (len(head) + 8))  # this server failed sooner
                    continue
                s = steps[i]
                offered = s["offered"]
                cells.append(
                    f"{num(s['value']):>19} {s['delivered_pct']:6.1f} {num(s['p99_ms'], 1):>7} "
                    f"{num(s['us_per_op'], 1):>7} {s['srv_pct']:3.0f}% {s['gen_pct']:3.0f}% "
                    f"{'yes' if s['pass'] else ' no'}"
                )
            print(f"  {num(offered):>9} | {cells[0]} | {cells[1]}")
        print(
            f"  ok: p99 < {P99_LIMIT_MS:.0f} ms and >= {100 * MIN_DELIVERED:.0f} % delivered; "
            "no step runs after a failed one. Max sustained, the highest ok step:"
        )
        for kind in KINDS:
            r = results[kind]["relay max sustained"]
            print(
                f"    {kind:<8} {num(r['value']):>8} msgs/s  p99 {num(r.get('p99_ms'), 1)} ms  "
                f"{num(r.get('us_per_op'), 1)} µs/msg  {cpu(r) if 'srv_pct' in r else ''}; "
                f"saturation at {num(r['saturation_offered'])}/s: srv {r['saturation_srv_pct']:.0f}% "
                f"gen {r['saturation_gen_pct']:.0f}%"
            )
        name = "relay max sustained"
        print(f"    gateway/bare {ratio(name, results)}")
        summary.append(f"{name} {ratio(name, results)}")
    if "churn" in gw:
        print(f"\nchurn, 50 loops of connect, join room:<uuid>, leave, close, {mode.churn_s:g} s")
        for kind in KINDS:
            r = results[kind]["churn"]
            print(
                f"  {kind:<8} {num(r['value']):>6} cycles/s  p50 {num(r['p50_ms'], 1):>5} ms  "
                f"p99 {num(r['p99_ms'], 1):>5} ms  {num(r['us_per_op']):>5} µs/cycle  {cpu(r)}{errors(r)}"
            )
        print(f"  gateway/bare {ratio('churn', results)}")
        summary.append(f"churn {ratio('churn', results)}")
    fanout_names = [n for n in gw if n.startswith("fanout ")]
    if fanout_names:
        report_fanout(results, fanout_names, mode)
        summary.extend(f"{name} {ratio(name, results)}" for name in fanout_names)
    if "conns" in gw:
        report_conns(results, mode)
        summary.append(f"memory per connection {memory_ratio(results)}")
    print(f"\ngateway / bare aiohttp: {'; '.join(summary)}")


def report_fanout(
    results: dict[str, dict[str, dict[str, Any]]], names: list[str], mode: Mode
) -> None:
    print(
        f"\nfan-out, one room:<uuid> grown by joins ({FANOUT_IN_FLIGHT} in flight, budget "
        f"{mode.join_budget_s:g} s; the gateway's join is done at its presence_state), then one "
        f"more member sends {mode.broadcasts} new_msg, each {BROADCAST_SPACING_MS} ms after the "
        "last copy of the one before"
    )
    print(
        "  deliveries/s: members / send to the last member's copy (median); p50/p99: each "
        "member's copy; srv/gen over those bursts"
    )
    for name in names:
        for kind in KINDS:
            r = results[kind][name]
            label = num(r["size"]) if kind == "gateway" else ""
            short = f" of {num(r['size'])} (join budget ended)" if r["budget_ended"] else ""
            lost = f"  {r['delivered_pct']:.1f} % delivered" if r["delivered_pct"] < 100 else ""
            print(
                f"  {label:>5} {kind:<8} {num(r['value']):>8} deliveries/s  last {num(r['last_ms'], 1):>5} ms  "
                f"p50 {num(r['p50_ms'], 1):>5} ms  p99 {num(r['p99_ms'], 1):>5} ms  "
                f"{num(r['us_per_op'], 2):>5} µs/delivery  {cpu(r)}{lost}"
            )
            print(
                f"        {'':<8} {num(r['members'])} members{short} in {num(r['join_s'], 1)} s "
                f"({num(r['joins_per_s'])} joins/s, srv {r['join_srv_pct']:.0f}% gen "
                f"{r['join_gen_pct']:.0f}%)"
                + (f", {r['join_errors']:.0f} join errors" if r["join_errors"] else "")
            )
        print(f"        gateway/bare {ratio(name, results)}")


def report_conns(results: dict[str, dict[str, dict[str, Any]]], mode: Mode) -> None:
    print(
        f"\nmemory, {num(mode.conns)} connections each joined to its own room:<uuid> "
        f"({JOINS_IN_FLIGHT} in flight), a heartbeat on each every {HEARTBEAT_S:g} s"
    )
    print(
        f"  server RSS growth per joined connection after a {mode.hold_s:g} s hold and "
        f"{mode.idle_s:g} s more; srv/gen and µs over the opening, then while holding"
    )
    for kind in KINDS:
        r = results[kind]["conns"]
        print(
            f"  {kind:<8} {num(r['value'], 1):>5} KB/conn ({num(r['held_kb'], 1)} after the hold)  "
            f"{num(r['joined'])} joined  {num(r['joins_per_s'])} joins/s  "
            f"{num(r['us_per_op'])} µs/join  {cpu(r)}; holding srv {r['hold_srv_pct']:.0f}% "
            f"gen {r['hold_gen_pct']:.0f}%; heartbeats answered {num(r['heartbeats_pct'], 1)} %"
            f"{errors(r)}"
        )
    print(f"  gateway/bare {memory_ratio(results)}")


def memory_ratio(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    # Memory is not a rate: the generator cannot bound it, so no generator-bound here.
    g, b = results["gateway"]["conns"], results["bare"]["conns"]
    if not b["value"] or b["value"] != b["value"]:
        return "n/a"
    return f"{g['value'] / b['value']:.2f}x KB per connection (lower is better)"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short windows and fewer members")
    parser.add_argument("--runs", type=int, default=1, help="interleaved runs; medians printed")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="comma list of workloads")
    parser.add_argument("--rates", default="", help="relay steps, total offered msgs/s")
    parser.add_argument("--conns", type=int, default=0, help="conns: connections to hold")
    parser.add_argument("--sizes", default="", help="fanout: room sizes, e.g. 2000,5000")
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "compare.json"))
    args = parser.parse_args()
    mode = QUICK if args.quick else FULL
    mode = replace(mode, conns=args.conns or mode.conns, sizes=args.sizes or mode.sizes)
    only = [w for w in WORKLOADS if w in args.only.split(",")]
    enough_files(mode, only)
    runs: dict[str, list[dict[str, dict[str, Any]]]] = {kind: [] for kind in KINDS}
    for n in range(args.runs):
        # Alternating which server goes first spreads a drift of the machine over both.
        for kind in KINDS if n % 2 == 0 else KINDS[::-1]:
            print(f"run {n + 1}/{args.runs}", file=sys.stderr, flush=True)
            runs[kind].append(measure(kind, mode, only, args.rates or mode.rates))
    results = {kind: median_runs(runs[kind]) for kind in KINDS}
    report(results, mode, args.runs)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mode": mode.name, "runs": runs, "medians": results}, indent=2))
    print(f"raw figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
