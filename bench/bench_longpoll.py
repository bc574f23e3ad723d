"""Long-poll against WebSocket: delivered messages per second and delivery latency, same load.

    .venv/bin/python bench/bench_longpoll.py [--users 1000] [--room-size 10] [--interval 2.0]
        [--duration 10] [--window-ms 10000] [--transports websocket,longpoll] [--json PATH]

Starts `python -m gateway serve` (rate limits off) and, for each transport in turn, connects
`--users` users in `echo:` rooms of `--room-size`. Every user broadcasts a small message to its
room every `--interval` seconds (jittered); every member receives it. Latency is from the
sender's send to each member's receipt (same process, one clock). Long-poll users hold one
GET at a time and POST ndjson, as phoenix.js does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

REPO = Path(__file__).resolve().parents[1]

_decode = msgspec.json.Decoder().decode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Stats:
    def __init__(self) -> None:
        self.sent = 0
        self.latencies: list[float] = []
        self.errors = 0
        self.measuring = False

    def delivered(self, frame: Any) -> None:
        # [join_ref, ref, topic, event, payload]
        if self.measuring and frame[3] == "broadcast":
            self.latencies.append(time.perf_counter() - frame[4]["t"])


def broadcast_frame(room: str, ref: int, user: int) -> bytes:
    payload = {"t": time.perf_counter(), "from": user, "text": "hello room"}
    return msgspec.json.encode(["1", str(ref), room, "broadcast", payload])


async def sender(send: Any, room: str, user: int, interval: float, stop: asyncio.Event) -> None:
    await asyncio.sleep(random.random() * interval)
    ref = 1
    while not stop.is_set():
        ref += 1
        await send(broadcast_frame(room, ref, user))
        await asyncio.sleep(interval * (0.9 + 0.2 * random.random()))


# -- WebSocket users -------------------------------------------------------------------------


async def ws_user(
    http: aiohttp.ClientSession, base: str, room: str, user: int, args: Any, stats: Stats,
    ready: asyncio.Event, stop: asyncio.Event,
) -> None:  # fmt: skip
    async with http.ws_connect(f"{base}/socket/websocket?vsn=2.0.0", compress=0) as ws:
        await ws.send_str(json.dumps(["1", "1", room, "phx_join", {}]))
        while True:
            msg = await ws.receive()
            if _decode(msg.data)[3] == "phx_reply":
                break
        await ready.wait()

        async def send(data: bytes) -> None:
            stats.sent += stats.measuring
            await ws.send_str(data.decode())

        task = asyncio.create_task(sender(send, room, user, args.interval, stop))
        try:
            while not stop.is_set():
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                stats.delivered(_decode(msg.data))
        finally:
            task.cancel()


# -- long-poll users -------------------------------------------------------------------------


async def lp_user(
    http: aiohttp.ClientSession, base: str, room: str, user: int, args: Any, stats: Stats,
    ready: asyncio.Event, stop: asyncio.Event,
) -> None:  # fmt: skip
    url = f"{base}/socket/longpoll?vsn=2.0.0"
    async with http.get(url) as resp:
        token = (await resp.json())["token"]
    polled = f"{url}&token={token}"
    headers = {"Content-Type": "application/x-ndjson"}

    async def post(data: bytes) -> None:
        async with http.post(polled, data=data, headers=headers) as resp:
            if (await resp.json()).get("status") != 200:
                stats.errors += 1

    await post(msgspec.json.encode(["1", "1", room, "phx_join", {}]))
    await ready.wait()

    async def send(data: bytes) -> None:
        stats.sent += stats.measuring
        await post(data)

    task = asyncio.create_task(sender(send, room, user, args.interval, stop))
    try:
        while not stop.is_set():
            async with http.get(polled) as resp:
                body = _decode(await resp.read())
            if body["status"] not in (200, 204):
                stats.errors += 1
                break
            for message in body["messages"]:
                stats.delivered(_decode(message))
    finally:
        task.cancel()


# -- one run ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(transport: str, base: str, args: Any) -> dict[str, Any]:
    stats = Stats()
    ready, stop = asyncio.Event(), asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=args.window_ms / 1000 + 30)
    user_fn = ws_user if transport == "websocket" else lp_user
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tasks = []
        for user in range(args.users):
            room = f"echo:bench-{transport}-{user // args.room_size}"
            tasks.append(
                asyncio.create_task(user_fn(http, base, room, user, args, stats, ready, stop))
            )
            if user % 50 == 49:
                await asyncio.sleep(0.05)  # connect in waves, as a real crowd does
        await asyncio.sleep(1.0)
        ready.set()
        await asyncio.sleep(args.interval)  # warm-up: every sender has started
        cpu0, wall0 = time.process_time(), time.perf_counter()
        stats.measuring = True
        await asyncio.sleep(args.duration)
        stats.measuring = False
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        stop.set()
        await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [
        r for r in results if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)
    ]
    lat = stats.latencies
    return {
        "transport": transport,
        "users": args.users,
        "rooms": -(-args.users // args.room_size),
        "sent_per_s": stats.sent / wall,
        "delivered_per_s": len(lat) / wall,
        "p50_ms": percentile(lat, 0.50) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "max_ms": (max(lat) if lat else float("nan")) * 1000,
        "errors": stats.errors + len(failures),
        "client_cpu": cpu / wall,
    }


def start_gateway(port: int, args: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--no-rate-limits", "--longpoll-window-ms", str(args.window_ms), "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("gateway did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--window-ms", type=int, default=10_000)
    parser.add_argument("--transports", default="websocket,longpoll")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    rows = []
    for transport in args.transports.split(","):
        port = free_port()
        proc = start_gateway(port, args)
        try:
            rows.append(asyncio.run(run(transport, f"http://127.0.0.1:{port}", args)))
        finally:
            proc.terminate()
            proc.wait(10)
    header = f"{'transport':<10} {'users':>6} {'rooms':>6} {'sent/s':>8} {'deliv/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6} {'client cpu':>10}"
    print(header)
    for r in rows:
        print(
            f"{r['transport']:<10} {r['users']:>6} {r['rooms']:>6} {r['sent_per_s']:>8.0f} "
            f"{r['delivered_per_s']:>9.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
            f"{r['max_ms']:>8.1f} {r['errors']:>6} {r['client_cpu']:>10.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
