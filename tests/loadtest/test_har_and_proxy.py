"""Recordings from outside the server: a Chrome DevTools HAR file, and the recording proxy
relaying a live session to an upstream server. Both are then replayed."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from gateway.recording import SCRUBBED, read_recording
from loadtest.fleet import FleetConfig, run_fleet
from loadtest.har import import_har
from loadtest.metrics import Metrics
from loadtest.proxy import start_proxy
from loadtest.report import build_report
from loadtest.user import VirtualUser
from loadtest.wire import encode_binary_push
from tests.loadtest.conftest import ServerFactory

T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def _ws_entry(url: str, messages: list[tuple[str, float, int, str]]) -> dict[str, object]:
    """An entry as Chrome DevTools exports a WebSocket: `_resourceType` websocket, 101, frames."""
    return {
        "startedDateTime": "2026-01-01T00:00:00.000Z",
        "time": 1234.5,
        "request": {"method": "GET", "url": url, "httpVersion": "HTTP/1.1", "headers": [],
                    "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": 101, "statusText": "Switching Protocols", "httpVersion": "HTTP/1.1",
                     "headers": [], "cookies": [], "content": {"size": 0, "mimeType": "x-unknown"},
                     "redirectURL": "", "headersSize": -1, "bodySize": 0},
        "cache": {}, "timings": {"blocked": -1, "dns": -1, "ssl": -1, "connect": -1, "send": 0,
                                 "wait": 0, "receive": 0},
        "_resourceType": "websocket",
        "_webSocketMessages": [
            {"type": t, "time": T0 + at, "opcode": op, "data": data} for t, at, op, data in messages
        ],
    }  # fmt: skip


def _frame(*fields: object) -> str:
    return json.dumps(list(fields), separators=(",", ":"))


def _ok(jr: str, ref: str, topic: str, response: object) -> str:
    return _frame(jr, ref, topic, "phx_reply", {"response": response, "status": "ok"})


def write_har(path: Path) -> None:
    # kind 1 reply: JR "4", ref "6", topic "echo:lobby", status "ok", payload 01 02
    binary_reply = base64.b64encode(b"\x01\x01\x01\x0a\x02" + b"46echo:lobbyok\x01\x02").decode()
    binary = base64.b64encode(
        encode_binary_push("4", "6", "echo:lobby", "bin", b"\x01\x02")
    ).decode()
    phoenix = _ws_entry(
        "ws://localhost:4000/socket/websocket?token=SECRET&user_id=9&vsn=2.0.0",
        [
            ("send", 0.010, 1, _frame("4", "4", "echo:lobby", "phx_join", {"password": "pw"})),
            ("receive", 0.012, 1, _ok("4", "4", "echo:lobby", {"user_id": "9"})),
            ("send", 0.050, 1, _frame("4", "5", "echo:lobby", "ping", {"body": "hi"})),
            ("receive", 0.051, 1, _ok("4", "5", "echo:lobby", {"body": "hi"})),
            ("send", 0.080, 2, binary),
            ("receive", 0.081, 2, binary_reply),
            ("send", 0.100, 1, _frame(None, "7", "phoenix", "heartbeat", {})),
        ],
    )  # fmt: skip
    second = _ws_entry(
        "ws://localhost:4000/socket/websocket?vsn=2.0.0&token=a&token=LAST",
        [("send", 0.5, 1, _frame("1", "1", "echo:other", "phx_join", {}))],
    )
    not_phoenix = _ws_entry("ws://localhost:4000/live?x=1", [("send", 0.1, 1, "hello")])
    xhr = {
        "startedDateTime": "2026-01-01T00:00:00.000Z",
        "request": {"method": "GET", "url": "http://localhost:4000/"},
        "response": {"status": 200},
    }
    har = {"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"},
                   "pages": [], "entries": [xhr, phoenix, not_phoenix, second]}}  # fmt: skip
    path.write_text(json.dumps(har))


async def test_har_import_makes_one_scrubbed_recording_per_socket(
    phoenix_server: ServerFactory, tmp_path: Path
) -> None:
    har = tmp_path / "session.har"
    write_har(har)
    written = import_har(har, tmp_path / "recs")
    assert [p.name for p in written] == ["session-0.jsonl", "session-1.jsonl"]
    first, second = (read_recording(p) for p in written)
    assert "SECRET" not in written[0].read_text() and '\\"pw\\"' not in written[0].read_text()
    h = first.header
    assert (h.vsn, h.path, h.source) == ("2.0.0", "/socket", "har")
    assert h.params == {"token": SCRUBBED, "user_id": "9"}
    assert second.header.params == {"token": SCRUBBED}  # the last `token` won, then scrubbed
    assert first.header.group_id == second.header.group_id
    assert [f.d for f in first.frames] == ["in", "out", "in", "out", "in", "out", "in"]
    assert [f.t for f in first.frames[:3]] == [10.0, 12.0, 50.0]
    assert json.loads(first.frames[0].data)[4] == {"password": SCRUBBED}
    assert not first.frames[4].is_text and first.frames[4].data.endswith(b"\x01\x02")

    # The imported sessions replay: text and binary pushes, replies expected as recorded.
    srv = await phoenix_server()
    cfg = FleetConfig(url=srv.url, users=4, recordings=[str(tmp_path / "recs")],
                      token_template="har-{n}")  # fmt: skip
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    assert report.errors == 0, report.errors_by_reason
    assert report.latency["reply"].count == 2 * 2  # text ping + binary push, for 2 users
    assert sorted(srv.topics_joined) == ["echo:lobby"] * 2 + ["echo:other"] * 2


async def test_recording_proxy_records_a_live_session(
    phoenix_server: ServerFactory, tmp_path: Path
) -> None:
    srv = await phoenix_server()
    out = tmp_path / "recorded"
    runner, port, proxy = await start_proxy("127.0.0.1", 0, srv.url, out)
    try:
        m = Metrics()
        user = VirtualUser(0, f"ws://127.0.0.1:{port}/socket", m, params={"token": "tok-1"})
        assert await user.connect()
        assert await user.join("echo:proxied", b'{"password":"pw"}')
        waiter = user.send("echo:proxied", "ping", b'{"body":"through"}', wait=True)
        assert waiter is not None
        reply = await waiter
        assert reply is not None and bytes(reply.payload) == b'{"body":"through"}'
        await user.close()
        assert m.counters.errors == 0
        for _ in range(100):
            if proxy.sessions and list(out.glob("*.jsonl")):
                break
            await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()
    assert srv.params_seen[0]["token"] == "tok-1"  # the proxy is transparent
    (path,) = out.glob("*.jsonl")
    rec = read_recording(path)
    assert rec.header.source == "proxy" and rec.header.params == {"token": SCRUBBED}
    assert [f.d for f in rec.frames] == ["in", "out", "in", "out"]
    header_line, join_line = path.read_text().splitlines()[:2]
    assert "tok-1" not in header_line and '\\"pw\\"' not in join_line
    assert json.loads(rec.frames[0].data)[4] == {"password": SCRUBBED}

    cfg = FleetConfig(url=srv.url, users=3, recordings=[str(path)], token_template="again-{n}")
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    assert report.errors == 0, report.errors_by_reason
    assert report.latency["reply"].count == 3 and report.latency["join"].count == 3
