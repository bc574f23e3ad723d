"""Replay honours recorded timing scaled by --speed; the package sees the server only through
the wire (of the gateway it imports only the recording format, `gateway.recording`)."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import pytest

import loadtest
from gateway.recording import FrameLine, Header, Recording, write_recording
from loadtest.fleet import FleetConfig, run_fleet
from loadtest.report import build_report
from tests.loadtest.conftest import ServerFactory


def _paced_recording(path: Path) -> None:
    def push(ref: str, t: float) -> FrameLine:
        return FrameLine("in", t, text=json.dumps(["1", ref, "echo:t", "tick", {"ref": ref}]))

    frames = [FrameLine("in", 0.0, text=json.dumps(["1", "1", "echo:t", "phx_join", {}]))]
    frames += [push(str(i + 2), 100.0 + 150.0 * i) for i in range(4)]  # at 100, 250, 400, 550
    header = Header(session_id="paced", group_id="g", recorded_at="2026-01-01T00:00:00Z")
    write_recording(path, Recording(header, frames))


@pytest.mark.parametrize(("speed", "expected_s"), [(1.0, 0.45), (3.0, 0.15)])
async def test_replay_keeps_recorded_gaps_scaled_by_speed(
    phoenix_server: ServerFactory, tmp_path: Path, speed: float, expected_s: float
) -> None:
    srv = await phoenix_server()
    _paced_recording(tmp_path / "paced.jsonl")
    cfg = FleetConfig(url=srv.url, users=1, recordings=[str(tmp_path)], speed=speed)
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    assert report.errors == 0, report.errors_by_reason
    ticks = [t for t, _, event in srv.arrivals if event == "tick"]
    assert len(ticks) == 4
    span = ticks[-1] - ticks[0]  # recorded 450 ms between first and last push
    assert expected_s * 0.9 <= span <= expected_s * 1.2 + 0.02, span


def test_loadtest_imports_only_the_recording_format_of_the_gateway() -> None:
    root = Path(loadtest.__file__).parent
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name == "gateway" or name.startswith("gateway."):
                    assert name == "gateway.recording", f"{path.name} imports {name}"
