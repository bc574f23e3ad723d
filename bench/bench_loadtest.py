"""The load tester's own ceiling: the echo scenario, closed loop, with 1, 2 and 4 worker
processes against the fastest Phoenix-speaking echo available locally.

    .venv/bin/python bench/bench_loadtest.py [--target auto|gateway|aiohttp] [--users 100]
        [--duration 5] [--processes 1,2,4] [--json PATH]

`gateway` runs `python -m gateway serve` and uses its `echo:*` channel; `aiohttp` runs the
minimal echo below in its own process; `auto` tries the gateway first. Besides messages per
second (bounded by whichever side saturates first), it prints messages per CPU second of the
load tester's workers: the figure that says what one core of load generation is worth.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loadtest.fleet import FleetConfig, run_fleet  # noqa: E402
from loadtest.report import build_report  # noqa: E402
from loadtest.scenarios import ScenarioOptions  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _echo_server(port: int) -> None:
    """A minimal Phoenix V2 echo: heartbeats, joins ok, every push replied with its payload."""
    import uvloop
    from aiohttp import WSMsgType, web

    from gateway.protocol.serializers import V2

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                m = V2.decode_text(msg.data)
                response: Any = {} if m.event in ("phx_join", "heartbeat") else m.payload
                frame = V2.reply(m.join_ref, m.ref, m.topic, "ok", response)
                await ws.send_bytes(frame.data) if not frame.text else await ws.send_str(
                    frame.data.decode()
                )
            elif msg.type == WSMsgType.BINARY:
                m = V2.decode_binary(msg.data)
                frame = V2.reply(m.join_ref, m.ref, m.topic, "ok", m.payload)
                await ws.send_bytes(frame.data)
        return ws

    app = web.Application()
    app.router.add_get("/socket/websocket", handle)
    app.router.add_get("/healthz", lambda _r: web.json_response({"status": "ok"}))
    web.run_app(app, host="127.0.0.1", port=port, print=None, loop=uvloop.new_event_loop())


def _wait_healthy(port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


class Target:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.mp: multiprocessing.process.BaseProcess | None = None

    def start(self) -> bool:
        if self.kind == "gateway":
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--no-rate-limits",
                 "--max-connections-per-ip", "1000000"],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        else:
            self.mp = multiprocessing.get_context("spawn").Process(
                target=_echo_server, args=(self.port,), daemon=True
            )
            self.mp.start()
        if _wait_healthy(self.port):
            return True
        self.stop()
        return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.mp is not None:
            self.mp.terminate()
            self.mp.join(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/socket"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--target", choices=["auto", "gateway", "aiohttp"], default="auto")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--processes", default="1,2,4")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    kinds = ["gateway", "aiohttp"] if args.target == "auto" else [args.target]
    target = None
    for kind in kinds:
        candidate = Target(kind)
        if candidate.start():
            target = candidate
            break
        print(f"target {kind} did not start", file=sys.stderr)
    if target is None:
        return 1
    rows = []
    try:
        print(f"target: {target.kind} echo at {target.url}; {args.users} users, closed loop, "
              f"{args.duration:.0f} s; {os.cpu_count()} cores")  # fmt: skip
        print(f"{'processes':>9} {'msgs/s':>10} {'tester CPU s':>13} {'msgs/CPU s':>11} "
              f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")  # fmt: skip
        for procs in (int(p) for p in args.processes.split(",")):
            cfg = FleetConfig(
                url=target.url, users=args.users, duration=args.duration, processes=procs,
                scenario=ScenarioOptions(name="echo", rate=0.0, body_bytes=32),
            )  # fmt: skip
            report = build_report(run_fleet(cfg))
            reply = report.latency.get("reply")
            row = {
                "processes": procs,
                "messages_per_s": report.messages_per_s,
                "client_cpu_s": report.client_cpu_s,
                "messages_per_cpu_s": report.messages_per_cpu_s,
                "p50_ms": reply.p50_ms if reply else None,
                "p99_ms": reply.p99_ms if reply else None,
                "errors": report.errors,
            }
            rows.append(row)
            print(f"{procs:>9} {report.messages_per_s:>10,.0f} {report.client_cpu_s:>13.1f} "
                  f"{report.messages_per_cpu_s:>11,.0f} {row['p50_ms']:>8} {row['p99_ms']:>8} "
                  f"{report.errors:>7}")  # fmt: skip
    finally:
        target.stop()
    if args.json is not None:
        args.json.write_text(json.dumps({"target": target.kind, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
