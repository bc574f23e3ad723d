"""`--record-dir`: sampled sockets are written as load-test recordings, tokens scrubbed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.recording import load_recordings
from tests.integration.conftest import StartServer
from tests.support.raw_ws import connect


async def test_a_socket_is_recorded_both_ways_with_tokens_scrubbed(
    wire_server: StartServer, tmp_path: Path
) -> None:
    srv = await wire_server(record_dir=str(tmp_path), trust_token_as_user_id=True)
    async with connect(srv.url, params={"token": "secret-token", "room": "r1"}) as ws:
        await ws.send_v2("1", "1", "echo:rec", "phx_join", {})
        await ws.recv_json()
        await ws.send_v2("1", "2", "echo:rec", "ping", {"password": "hunter2", "n": 1})
        await ws.recv_json()
    await asyncio.sleep(0.1)
    (recording,) = load_recordings([tmp_path])
    assert recording.header.params["token"] != "secret-token"
    assert recording.header.params["room"] == "r1"
    assert recording.header.vsn == "2.0.0"
    directions = [f.d for f in recording.frames]
    assert directions == ["in", "out", "in", "out"]
    text = (tmp_path / next(p.name for p in tmp_path.iterdir())).read_text()
    assert "hunter2" not in text and "secret-token" not in text


async def test_sampling_rate_zero_records_nothing(wire_server: StartServer, tmp_path: Path) -> None:
    srv = await wire_server(record_dir=str(tmp_path), record_sample_rate=0.0)
    async with connect(srv.url) as ws:
        await ws.send_v2("1", "1", "echo:rec", "phx_join", {})
        await ws.recv_json()
    assert list(tmp_path.iterdir()) == []
