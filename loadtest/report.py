"""Turn a fleet's merged numbers into what people read: a progress line each second, a table,
a JSON report, a PNG chart, and the pass/fail verdict of the thresholds.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from loadtest.fleet import FleetResult
from loadtest.metrics import (
    KINDS,
    Counters,
    LatencySummary,
    Snapshot,
    decode_histogram,
    new_histogram,
    summarize,
)

# The kinds --max-p99 applies to: the ones that measure message handling, not connection setup.
GATED_KINDS = ("reply", "delivery")


class PointLatency(msgspec.Struct):
    p50_ms: float
    p90_ms: float
    p99_ms: float
    count: int


class TimelinePoint(msgspec.Struct):
    """One second of the run (all workers merged)."""

    t_s: int
    users: int
    sent: int
    received: int
    errors: int
    latency: dict[str, PointLatency]


class Thresholds(msgspec.Struct):
    max_p99_ms: float | None = None
    max_error_rate: float | None = None
    violations: list[str] = []
    passed: bool = True


class Report(msgspec.Struct):
    """The JSON report (`--json`)."""

    users: int
    users_started: int
    duration_s: float
    messages_sent: int
    messages_received: int
    bytes_sent: int
    bytes_received: int
    messages_per_s: float
    sent_per_s: float
    received_per_s: float
    connects: int
    disconnects: int
    errors: int
    error_rate: float
    errors_by_reason: dict[str, int]
    unanswered: int  # pushes nobody awaited that got no reply (fire-and-forget, not errors)
    latency: dict[str, LatencySummary]
    processes: int
    client_cpu_s: float  # CPU time the load tester's workers used
    messages_per_cpu_s: float  # (sent + received) per worker CPU second: the tester's own cost
    timeline: list[TimelinePoint]
    thresholds: Thresholds


def _merge_counters(snaps: list[Snapshot]) -> Counters:
    total = Counters()
    for s in snaps:
        total.add(s.counters)
    return total


def _point_latency(snaps: list[Snapshot], kind: str) -> PointLatency | None:
    hist = new_histogram()
    for s in snaps:
        if kind in s.histograms:
            hist.add(decode_histogram(s.histograms[kind]))
    if not hist.get_total_count():
        return None
    return PointLatency(
        p50_ms=hist.get_value_at_percentile(50) / 1000.0,
        p90_ms=hist.get_value_at_percentile(90) / 1000.0,
        p99_ms=hist.get_value_at_percentile(99) / 1000.0,
        count=hist.get_total_count(),
    )


def timeline_point(tick: int, snaps: list[Snapshot]) -> TimelinePoint:
    c = _merge_counters(snaps)
    latency = {}
    for kind in KINDS:
        point = _point_latency(snaps, kind)
        if point is not None:
            latency[kind] = point
    return TimelinePoint(tick, c.users_active, c.sent, c.received, c.errors, latency)


def progress_line(tick: int, snaps: list[Snapshot], elapsed: float, users: int) -> str:
    """`[  12s] users 100/100  out 9,812/s  in 9,811/s  reply p99 1.21 ms  errors 0`."""
    p = timeline_point(tick, snaps)
    parts = [
        f"[{elapsed:5.0f}s]",
        f"users {p.users}/{users}",
        f"out {p.sent:,}/s",
        f"in {p.received:,}/s",
    ]
    for kind in ("reply", "delivery", "join"):
        if kind in p.latency:
            parts.append(f"{kind} p99 {p.latency[kind].p99_ms:.2f} ms")
    parts.append(f"errors {p.errors}")
    return "  ".join(parts)


def build_report(
    result: FleetResult, max_p99_ms: float | None = None, max_error_rate: float | None = None
) -> Report:
    finals = result.finals
    totals = _merge_counters(finals)
    errors: dict[str, int] = {}
    for s in finals:
        for reason, count in s.errors.items():
            errors[reason] = errors.get(reason, 0) + count
    latency: dict[str, LatencySummary] = {}
    for kind in KINDS:
        hist = new_histogram()
        for s in finals:
            if kind in s.histograms:
                hist.add(decode_histogram(s.histograms[kind]))
        if hist.get_total_count():
            latency[kind] = summarize(hist)
    elapsed = max(result.elapsed_s, 1e-9)
    cpu = sum(s.cpu_s for s in finals)
    timeline = [timeline_point(t, result.ticks[t]) for t in sorted(result.ticks)]
    # Errors per operation attempted: every frame sent plus every connection opened.
    operations = totals.sent + totals.connects
    error_rate = totals.errors / operations if operations else (1.0 if totals.errors else 0.0)
    report = Report(
        users=result.config.users,
        users_started=totals.users_started,
        duration_s=round(elapsed, 3),
        messages_sent=totals.sent,
        messages_received=totals.received,
        bytes_sent=totals.bytes_sent,
        bytes_received=totals.bytes_received,
        messages_per_s=round((totals.sent + totals.received) / elapsed, 1),
        sent_per_s=round(totals.sent / elapsed, 1),
        received_per_s=round(totals.received / elapsed, 1),
        connects=totals.connects,
        disconnects=totals.disconnects,
        errors=totals.errors,
        error_rate=round(error_rate, 6),
        errors_by_reason=dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        unanswered=totals.unanswered,
        latency=latency,
        processes=len(finals),
        client_cpu_s=round(cpu, 3),
        messages_per_cpu_s=round((totals.sent + totals.received) / cpu, 1) if cpu else 0.0,
        timeline=timeline,
        thresholds=Thresholds(max_p99_ms, max_error_rate),
    )
    report.thresholds = check_thresholds(report, max_p99_ms, max_error_rate)
    return report


def check_thresholds(
    report: Report, max_p99_ms: float | None, max_error_rate: float | None
) -> Thresholds:
    violations: list[str] = []
    if max_p99_ms is not None:
        for kind in GATED_KINDS:
            s = report.latency.get(kind)
            if s is not None and s.p99_ms > max_p99_ms:
                violations.append(f"{kind} p99 {s.p99_ms:.3f} ms > {max_p99_ms} ms")
    if max_error_rate is not None and report.error_rate > max_error_rate:
        violations.append(f"error rate {report.error_rate:.6f} > {max_error_rate}")
    return Thresholds(max_p99_ms, max_error_rate, violations, not violations)


def text_table(report: Report) -> str:
    lines = [
        f"users {report.users_started}/{report.users} over {report.processes} process(es), "
        f"{report.duration_s:.1f} s",
        f"messages sent {report.messages_sent:,} ({report.sent_per_s:,.0f}/s), "
        f"received {report.messages_received:,} ({report.received_per_s:,.0f}/s)",
        f"bytes sent {report.bytes_sent:,}, received {report.bytes_received:,}",
        f"load tester CPU {report.client_cpu_s:.1f} s "
        f"({report.messages_per_cpu_s:,.0f} messages per CPU second)",
        f"connects {report.connects:,}, disconnects {report.disconnects:,}, "
        f"errors {report.errors:,} (rate {report.error_rate:.4%})",
        "",
        f"{'kind':<10}{'count':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}"
        f"{'p99.9 ms':>10}{'max ms':>10}",
    ]
    for kind, s in report.latency.items():
        lines.append(
            f"{kind:<10}{s.count:>10,}{s.p50_ms:>10.3f}{s.p90_ms:>10.3f}{s.p99_ms:>10.3f}"
            f"{s.p999_ms:>10.3f}{s.max_ms:>10.3f}"
        )
    if report.unanswered:
        lines.append("")
        lines.append(f"unanswered pushes (not awaited, not errors): {report.unanswered:,}")
    if report.errors_by_reason:
        lines.append("")
        lines.append("errors by reason:")
        for reason, count in report.errors_by_reason.items():
            lines.append(f"  {reason:<40}{count:>10,}")
    th = report.thresholds
    if th.max_p99_ms is not None or th.max_error_rate is not None:
        lines.append("")
        lines.append("thresholds: " + ("PASSED" if th.passed else "FAILED"))
        lines.extend(f"  {v}" for v in th.violations)
    return "\n".join(lines)


def write_json(report: Report, path: Path | str) -> None:
    Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")


def write_chart(report: Report, path: Path | str) -> None:
    """Throughput (top) and latency percentiles (bottom) per second, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [p.t_s for p in report.timeline]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.plot(t, [p.sent for p in report.timeline], label="sent/s")
    top.plot(t, [p.received for p in report.timeline], label="received/s")
    top.plot(t, [p.errors for p in report.timeline], label="errors/s")
    top.set_ylabel("messages per second")
    users = top.twinx()
    users.plot(t, [p.users for p in report.timeline], color="grey", linestyle=":", label="users")
    users.set_ylabel("active users")
    top.legend(loc="upper left")
    top.set_title("throughput")
    for kind in ("reply", "delivery"):
        points = [(p.t_s, p.latency[kind]) for p in report.timeline if kind in p.latency]
        if not points:
            continue
        xs = [x for x, _ in points]
        for pct in ("p50_ms", "p90_ms", "p99_ms"):
            bottom.plot(xs, [getattr(lat, pct) for _, lat in points], label=f"{kind} {pct[:-3]}")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds")
    bottom.set_title("latency percentiles")
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
