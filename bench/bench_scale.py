"""Scale-out benchmark: 1 gateway process versus 2 (`--workers 2` sharing Redis) on one host.

Workloads, both on the built-in echo channel (`broadcast` goes to every subscriber):
- fan-out: SUBS subscribers of one topic, PUBS publishers each keeping WINDOW broadcasts in
  flight; figure: deliveries per second at the subscribers.
- relay: PAIRS two-member topics, both members pushing; figure: deliveries per second.
Then the latency of one broadcast to a subscriber on the same node and on the other node
(two gateway processes, one Redis), p50/p99: the difference is the cost of the cross-node hop.

Subscribers count bytes, not frames (every broadcast frame has the same size), so the load
generator stays far cheaper than the servers. `python bench/bench_scale.py [--seconds N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import free_port, percentile, server
from loadtest.wsclient import encode_frame

PAYLOAD = '{"n":"%08d"}'
WS_PATH = "/socket/websocket?vsn=2.0.0"


def push_frame(topic: str, ref: int, event: str, payload: str) -> bytes:
    text = f'["1","{ref}","{topic}","{event}",{payload}]'
    return encode_frame(0x1, text.encode())


def broadcast_size(topic: str) -> int:
    body = len(f'[null,null,"{topic}","broadcast",{PAYLOAD % 0}]')
    return body + (2 if body < 126 else 4)


class Client(asyncio.Protocol):
    """A WebSocket client that counts bytes and frames just enough for the benchmark."""

    def __init__(self) -> None:
        self.bytes = 0
        self.transport: asyncio.Transport | None = None
        self.upgraded = asyncio.get_running_loop().create_future()
        self._head = b""
        self.on_data: list[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.upgraded.set_result(None)
            data = self._head[end + 4 :]
        self.bytes += len(data)
        if self.on_data is not None:
            self.on_data.append(data)

    def send(self, frame: bytes) -> None:
        assert self.transport is not None
        self.transport.write(frame)


async def connect(port: int) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(Client, "127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    client.send(
        (
            f"GET {WS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await client.upgraded
    return client


async def join(clients: list[Client], topic: str | list[str]) -> None:
    for i, c in enumerate(clients):
        t = topic if isinstance(topic, str) else topic[i]
        c.send(push_frame(t, 1, "phx_join", "{}"))
    await asyncio.sleep(1.0)  # joins answered and (with Redis) SUBSCRIBEs settled


async def fanout(port: int, subs: int, pubs: int, seconds: float, window: int) -> float:
    topic = "echo:fanout"
    listeners = [await connect(port) for _ in range(subs)]
    publishers = [await connect(port) for _ in range(pubs)]
    await join(listeners + publishers, topic)
    size = broadcast_size(topic)
    reply = len(f'["1","{1:d}","{topic}","phx_reply",{{"response":{{}},"status":"ok"}}]')
    stop = time.monotonic() + seconds + 1.0

    async def publish(c: Client) -> None:
        sent = 0
        base = c.bytes
        while time.monotonic() < stop:
            # Each push comes back as its reply plus the broadcast: keep WINDOW in flight.
            done = (c.bytes - base) // (size + reply)
            while sent - done < window:
                sent += 1
                c.send(push_frame(topic, sent + 1, "broadcast", PAYLOAD % sent))
            await asyncio.sleep(0.001)

    tasks = [asyncio.create_task(publish(p)) for p in publishers]
    await asyncio.sleep(1.0)  # warm up
    before = sum(c.bytes for c in listeners)
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    rate = (sum(c.bytes for c in listeners) - before) / size / (time.monotonic() - t0)
    await asyncio.gather(*tasks)
    for c in listeners + publishers:
        assert c.transport is not None
        c.transport.close()
    return rate


async def relay(port: int, pairs: int, seconds: float, window: int) -> float:
    topics = [f"echo:pair{i:04d}" for i in range(pairs)]
    members = [await connect(port) for _ in range(pairs * 2)]
    await join(members, [topics[i // 2] for i in range(len(members))])
    size = broadcast_size(topics[0])
    reply = len(f'["1","{1:d}","{topics[0]}","phx_reply",{{"response":{{}},"status":"ok"}}]')
    stop = time.monotonic() + seconds + 1.0

    async def chat(i: int, c: Client) -> None:
        sent, base = 0, c.bytes
        while time.monotonic() < stop:
            # Own reply + own broadcast + the partner's broadcast per round.
            done = (c.bytes - base) // (2 * size + reply)
            while sent - done < window:
                sent += 1
                c.send(push_frame(topics[i // 2], sent + 1, "broadcast", PAYLOAD % sent))
            await asyncio.sleep(0.001)

    tasks = [asyncio.create_task(chat(i, c)) for i, c in enumerate(members)]
    await asyncio.sleep(1.0)
    before = sum(c.bytes for c in members)
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    total = sum(c.bytes for c in members) - before
    # Bytes per round per member: 2 broadcasts and 1 reply, of which 2 are deliveries.
    rate = total / (2 * size + reply) * 2 / (time.monotonic() - t0)
    await asyncio.gather(*tasks)
    for c in members:
        assert c.transport is not None
        c.transport.close()
    return rate


async def hop_latency(port_a: int, port_b: int, rounds: int) -> tuple[list[float], list[float]]:
    """Send on node A; time the arrival at a subscriber on A and at one on B."""
    topic = "echo:latency"
    sender, near, far = await connect(port_a), await connect(port_a), await connect(port_b)
    await join([sender, near, far], topic)
    size = broadcast_size(topic)
    same: list[float] = []
    cross: list[float] = []
    for n in range(rounds):
        near_base, far_base = near.bytes, far.bytes
        t0 = time.perf_counter()
        sender.send(push_frame(topic, n + 2, "broadcast", PAYLOAD % n))
        t_near = t_far = 0.0
        while not (t_near and t_far):
            await asyncio.sleep(0)
            now = time.perf_counter()
            if not t_near and near.bytes - near_base >= size:
                t_near = now
            if not t_far and far.bytes - far_base >= size:
                t_far = now
        same.append((t_near - t0) * 1000)
        cross.append((t_far - t0) * 1000)
    for c in (sender, near, far):
        assert c.transport is not None
        c.transport.close()
    return same, cross


class Redis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is needed (Debian package redis-server)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--subs", type=int, default=400)
    parser.add_argument("--pubs", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    redis = Redis()
    common = ("--max-connections-per-ip", "100000", "--idle-timeout-ms", "600000")
    results: dict[str, dict[str, float]] = {}
    try:
        for label, extra in (
            ("1 process", ()),
            ("2 processes", ("--workers", "2", "--redis-url", redis.url)),
        ):
            with server("gateway", *common, *extra) as (port, _):
                fan = asyncio.run(fanout(port, args.subs, args.pubs, args.seconds, args.window))
            with server("gateway", *common, *extra) as (port, _):
                rel = asyncio.run(relay(port, args.pairs, args.seconds, args.window))
            results[label] = {"fanout": fan, "relay": rel}
            print(
                f"{label:12s} fan-out {fan:10,.0f} deliveries/s   relay {rel:10,.0f} deliveries/s"
            )
        one, two = results["1 process"], results["2 processes"]
        print(
            f"scaling: fan-out x{two['fanout'] / one['fanout']:.2f} (target >= 1.6), "
            f"relay x{two['relay'] / one['relay']:.2f}"
        )
        nodes = ("--redis-url", redis.url)
        with (
            server("gateway", *common, *nodes, "--node-id", "bench-a") as (port_a, _),
            server("gateway", *common, *nodes, "--node-id", "bench-b") as (port_b, _),
        ):
            same, cross = asyncio.run(hop_latency(port_a, port_b, args.rounds))
        s50, s99 = percentile(same, 50), percentile(same, 99)
        c50, c99 = percentile(cross, 50), percentile(cross, 99)
        print(f"latency same node  p50 {s50:.3f} ms  p99 {s99:.3f} ms")
        print(f"latency cross node p50 {c50:.3f} ms  p99 {c99:.3f} ms")
        print(f"cross-node hop adds p50 {c50 - s50:.3f} ms  p99 {c99 - s99:.3f} ms")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
