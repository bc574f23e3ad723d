"""The load tester against the real gateway process (`python -m gateway serve`) and its fixed
`echo:*` channel contract: replies echo the payload, `broadcast` reaches the whole topic."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.recording import read_recording
from loadtest.fleet import FleetConfig, run_fleet
from loadtest.metrics import Metrics
from loadtest.proxy import start_proxy
from loadtest.report import build_report
from loadtest.scenarios import ScenarioOptions
from loadtest.user import VirtualUser
from tests.support.gateway_proc import GatewayFactory

# Every virtual user comes from 127.0.0.1: per-address limits would refuse most of them.
LOADTEST_FLAGS = ("--no-rate-limits", "--max-connections-per-ip", "100000")


async def test_echo_scenario_against_the_gateway(gateway: GatewayFactory) -> None:
    gw = await gateway(*LOADTEST_FLAGS)
    cfg = FleetConfig(url=gw.ws_url, users=10, duration=2.0, processes=2,
                      scenario=ScenarioOptions(name="echo", rate=0.0))  # fmt: skip
    report = build_report(await asyncio.to_thread(run_fleet, cfg), max_error_rate=0.0)
    assert report.errors == 0, report.errors_by_reason  # includes echo_mismatch
    assert report.latency["reply"].count > 1000
    assert report.latency["join"].count == 10
    assert report.thresholds.passed


async def test_broadcast_room_against_the_gateway(gateway: GatewayFactory) -> None:
    gw = await gateway(*LOADTEST_FLAGS)
    cfg = FleetConfig(url=gw.ws_url, users=8, duration=2.0,
                      scenario=ScenarioOptions(name="broadcast-room", rate=5.0))  # fmt: skip
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    assert report.errors == 0, report.errors_by_reason
    sends = report.latency["reply"].count
    assert sends > 8
    assert report.latency["delivery"].count >= sends * 8 * 0.9


async def test_session_recorded_through_proxy_replays_against_the_gateway(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw = await gateway(*LOADTEST_FLAGS)
    out = tmp_path / "recorded"
    runner, port, _proxy = await start_proxy("127.0.0.1", 0, gw.ws_url, out)
    try:
        user = VirtualUser(0, f"ws://127.0.0.1:{port}/socket", Metrics())
        assert await user.connect()
        assert await user.join("echo:recorded")
        for waiter in (
            user.send("echo:recorded", "ping", b'{"body":"one"}', wait=True),
            user.send("echo:recorded", "broadcast", b'{"body":"all"}', wait=True),
            user.send("echo:recorded", "bin", b"\x01\x02", text=False, wait=True),
        ):
            assert waiter is not None and (await waiter) is not None
        await asyncio.sleep(0.05)  # let the broadcast arrive and be recorded
        await user.close()
        assert user.metrics.counters.errors == 0
    finally:
        await runner.cleanup()
    (path,) = out.glob("*.jsonl")
    rec = read_recording(path)
    # join + 3 pushes in; 4 replies + the broadcast out.
    assert sorted(f.d for f in rec.frames) == ["in"] * 4 + ["out"] * 5

    cfg = FleetConfig(url=gw.ws_url, users=50, recordings=[str(path)], processes=2)
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    assert report.errors == 0, report.errors_by_reason
    assert report.users_started == 50 and report.connects == 50
    assert report.latency["join"].count == 50
    assert report.latency["reply"].count == 50 * 3
    # Each copy broadcast on its own topic... the recorded topic has no room id, so all 50 share
    # it: every broadcast reaches every user that is joined at that moment.
    assert report.latency["delivery"].count >= 50
