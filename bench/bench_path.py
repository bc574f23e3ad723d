"""CPU per message of the gateway's own work, without sockets: a frame handed to a connection
as the WebSocket reader would, through the real runtime and channels, to the recording sink.

What the socket benchmarks measure on top of this is the event loop, aiohttp's frame parser
and the kernel; this isolates the part the gateway's code decides. Figures are
medians of several rounds, in microseconds of one core per message.

    .venv/bin/python -m bench.bench_path [--messages 8000] [--rounds 5] [--from-bytes]
        [--only relay,echo] [--frames N]

`--from-bytes` starts one step earlier: masked WebSocket frames go through the socket's parser
(`ClientFrameReader`, `DirectQueue`) and its `WebSocketSink`, whose transport is in memory, so the
figure covers everything the process does per message except the event loop and the system
calls. `bench/bench_instructions.py` counts its instructions, which shared machines do not blur.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.testing import ChannelTest, Client
from gateway.testing.sockets import MemoryTransport, ParserProtocol, client_text_frame
from gateway.transports.outbound_budget import OutboundBudget
from gateway.transports.websocket import WebSocketSink, flush_held
from gateway.transports.ws_reader import ClientFrameReader, DirectQueue

SDP = "v=0\r\n" + "a=candidate:1 1 udp 2122260223 192.168.1.10 54321 typ host generation 0\r\n" * 12


async def _joined(t: ChannelTest, user: str, topic: str) -> Client:
    client = t.connect(user)
    await client.reply(client.join(topic))
    await t.settle()
    return client


def _socket_of(client: Client) -> tuple[Callable[[bytes], Any], MemoryTransport]:
    """Put `client` behind a real parser and sink; returns what a read feeds, and the transport."""
    transport = MemoryTransport()
    sink = WebSocketSink(None, transport, 1 << 30, OutboundBudget(1 << 40))  # type: ignore[arg-type]
    sink._conn = client.conn
    client.conn.sink = sink
    queue = DirectQueue(ParserProtocol(), 1 << 16, loop=asyncio.get_running_loop())
    reader = ClientFrameReader(queue, 1 << 20, compress=False, decode_text=True)
    queue.attach(sink.on_message)
    return reader.feed_data, transport


async def _per_message(
    t: ChannelTest, texts: list[bytes], client: Client, peers: list[Client], options: Options
) -> float:
    """CPU µs per message to hand the first `options.messages` of `texts` to `client`."""
    if options.from_bytes:
        feed, _ = _socket_of(client)
        for peer in peers:
            _socket_of(peer)
        frames = [client_text_frame(text) for text in texts]
    else:
        feed = client.conn.receive_text
        frames = texts
    for c in (client, *peers):
        c.sink.frames.clear()
    frames = frames[: options.messages]
    started = time.process_time()
    for frame in frames:
        feed(frame)
        flush_held()  # the end of the loop step that read it: held frames are written
    spent = time.process_time() - started
    await t.settle()  # the bookkeeping queued behind the replies runs after the round
    return spent / len(frames) * 1e6


async def relay(options: Options) -> float:
    """An `offer` with `to`: validated, stamped, delivered to the peer, answered."""
    t, topic = (
        ChannelTest.build(rate_signaling=10**9, burst_signaling=10**9),
        f"room:{uuid.uuid4()}",
    )
    ann, bob = await _joined(t, "ann", topic), await _joined(t, "bob", topic)
    offer = {"to": "bob", "sdp": SDP, "type": "offer"}
    jr = ann.join_refs[topic]
    texts = [json.dumps([jr, str(i), topic, "offer", offer]).encode() for i in range(options.made)]
    return await _per_message(t, texts, ann, [bob], options)


async def echo(options: Options) -> float:
    """A push on `echo:*` answered with its payload."""
    t, topic = ChannelTest.build(), f"echo:{uuid.uuid4()}"
    ann = await _joined(t, "ann", topic)
    jr = ann.join_refs[topic]
    body = {"body": "ping"}
    texts = [json.dumps([jr, str(i), topic, "ping", body]).encode() for i in range(options.made)]
    return await _per_message(t, texts, ann, [], options)


WORKLOADS = {"relay": ("relay offer with to", relay), "echo": ("echo push", echo)}


@dataclass(frozen=True)
class Options:
    messages: int
    from_bytes: bool
    frames: int  # frames made (at least `messages`): the same setup whatever `messages` is

    @property
    def made(self) -> int:
        return max(self.frames, self.messages)


async def main_async(options: Options, rounds: int, only: list[str]) -> None:
    # Within the bookkeeping queue's bound (10,000), so no round drops store writes.
    for key in only:
        name, run = WORKLOADS[key]
        figures = [await run(options) for _ in range(rounds)]
        print(
            f"{name:22} {statistics.median(figures):6.1f} µs CPU per message "
            f"(rounds: {', '.join(f'{f:.1f}' for f in figures)})",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=8_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--from-bytes", action="store_true", help="start at the socket's parser")
    ap.add_argument("--only", default="relay,echo", help="comma list of: relay, echo")
    ap.add_argument("--frames", type=int, default=0, help="frames to make (default: --messages)")
    a = ap.parse_args()
    only = [w for w in a.only.split(",") if w]
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    options = Options(a.messages, a.from_bytes, a.frames)
    asyncio.run(main_async(options, a.rounds, only))


if __name__ == "__main__":
    main()
