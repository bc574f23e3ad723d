"""The numbers are right: a server that answers after a known delay shows up as that delay,
thresholds decide the exit code, and the JSON report and chart are written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from loadtest.cli import EXIT_OK, EXIT_THRESHOLD, main
from loadtest.fleet import FleetConfig, run_fleet
from loadtest.report import Report, build_report
from loadtest.scenarios import ScenarioOptions
from tests.loadtest.conftest import ServerFactory

# Long enough that scheduling noise on a busy two-core machine stays well inside 10%.
DELAY_S = 0.150


async def _echo_report(url: str) -> Report:
    cfg = FleetConfig(
        url=url, users=30, duration=2.0,
        scenario=ScenarioOptions(name="echo", rate=0.0),
    )  # fmt: skip
    return build_report(await asyncio.to_thread(run_fleet, cfg))


async def test_known_server_delay_is_reported_as_that_delay(phoenix_server: ServerFactory) -> None:
    # The same fleet against the same server without the delay, in the same conditions: what
    # the machine adds (scheduling on a busy core) is measured, not assumed away.
    base = await _echo_report((await phoenix_server(delay=0.0)).url)
    report = await _echo_report((await phoenix_server(delay=DELAY_S)).url)
    for kind in ("reply", "join"):
        latency = report.latency[kind]
        added = latency.p50_ms - base.latency[kind].p50_ms
        assert latency.p50_ms >= DELAY_S * 1000, (kind, latency)
        assert DELAY_S * 1000 * 0.9 <= added <= DELAY_S * 1000 * 1.10, (kind, latency, base)
    assert report.latency["reply"].count > 100
    assert report.errors == 0, report.errors_by_reason
    # Closed loop: each user has one push in flight, so throughput is users / delay.
    assert 30 / DELAY_S * 0.7 < report.sent_per_s < 30 / DELAY_S * 1.05


async def test_paced_mode_corrects_for_coordinated_omission(phoenix_server: ServerFactory) -> None:
    # 20 msgs/s per user (50 ms apart) against 200 ms replies: a sender that waited would see
    # only 200 ms; the schedule-corrected histogram also counts the sends the stall delayed.
    srv = await phoenix_server(delay=0.2)
    cfg = FleetConfig(
        url=srv.url, users=2, duration=2.0,
        scenario=ScenarioOptions(name="echo", rate=20.0),
    )  # fmt: skip
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    reply = report.latency["reply"]
    sent = report.messages_sent - 2  # minus the joins
    assert reply.count > sent  # the corrected samples were added
    assert reply.p50_ms < 200 <= reply.p99_ms


async def test_thresholds_set_the_exit_code(phoenix_server: ServerFactory, tmp_path: Path) -> None:
    srv = await phoenix_server(delay=0.02)
    base = ["scenario", "echo", "--url", srv.url, "--users", "3", "--duration", "1",
            "--rate", "0", "--quiet"]  # fmt: skip
    report_path = tmp_path / "report.json"
    chart_path = tmp_path / "chart.png"
    ok = await asyncio.to_thread(
        main, [*base, "--max-p99", "500", "--max-error-rate", "0.01", "--json", str(report_path),
               "--chart", str(chart_path)],
    )  # fmt: skip
    assert ok == EXIT_OK
    data = json.loads(report_path.read_text())
    for key in ("users", "messages_sent", "messages_received", "errors"):
        assert key in data
    assert data["users"] == 3 and data["errors"] == 0
    for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "count"):
        assert key in data["latency"]["reply"]
    assert data["thresholds"]["passed"] is True
    assert chart_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    too_slow = await asyncio.to_thread(main, [*base, "--max-p99", "5"])
    assert too_slow == EXIT_THRESHOLD


async def test_error_rate_threshold_fails_on_refused_joins(
    phoenix_server: ServerFactory, tmp_path: Path
) -> None:
    srv = await phoenix_server(refuse_joins=True)
    report_path = tmp_path / "r.json"
    code = await asyncio.to_thread(
        main,
        ["scenario", "chat-rooms", "--url", srv.url, "--users", "4", "--duration",
         "1", "--max-error-rate", "0.1", "--quiet", "--json", str(report_path)],
    )  # fmt: skip
    assert code == EXIT_THRESHOLD
    data = json.loads(report_path.read_text())
    assert data["errors_by_reason"] == {"join_error:unauthorized": 4}
    assert data["thresholds"]["passed"] is False


async def test_connect_refused_is_an_error_by_reason(phoenix_server: ServerFactory) -> None:
    srv = await phoenix_server()
    url = srv.url
    await srv.stop()
    cfg = FleetConfig(url=url, users=2, duration=1.0, scenario=ScenarioOptions(name="echo"))
    report = build_report(await asyncio.to_thread(run_fleet, cfg), max_error_rate=0.5)
    assert report.errors_by_reason.get("connect_refused", 0) >= 2
    assert report.connects == 0
    assert not report.thresholds.passed


async def test_one_worker_drives_over_20k_messages_per_cpu_second(
    phoenix_server: ServerFactory,
) -> None:
    # The tester's own cost, independent of how fast the server is: frames sent plus frames
    # received per CPU second of the worker process.
    srv = await phoenix_server()
    cfg = FleetConfig(url=srv.url, users=50, duration=2.0,
                      scenario=ScenarioOptions(name="echo", rate=0.0))  # fmt: skip
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    assert report.errors == 0, report.errors_by_reason
    assert report.messages_per_cpu_s >= 20_000, report.messages_per_cpu_s


async def test_missing_recordings_are_a_usage_error(tmp_path: Path) -> None:
    code = await asyncio.to_thread(
        main, ["replay", str(tmp_path / "nothing"), "--url", "ws://127.0.0.1:1/socket"]
    )
    assert code == 2
