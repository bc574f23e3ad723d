"""CPU per message of the gateway's own work, without sockets: a frame handed to a connection
as the WebSocket reader would, through the real runtime and channels, to the recording sink.

What the socket benchmarks measure on top of this is the event loop, aiohttp's frame parser
and the kernel; this isolates the part the gateway's code decides. Figures are
medians of several rounds, in microseconds of one core per message.

    .venv/bin/python -m bench.bench_path [--messages 8000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable

from gateway.testing import ChannelTest, Client

SDP = "v=0\r\n" + "a=candidate:1 1 udp 2122260223 192.168.1.10 54321 typ host generation 0\r\n" * 12


async def _joined(t: ChannelTest, user: str, topic: str) -> Client:
    client = t.connect(user)
    await client.reply(client.join(topic))
    await t.settle()
    return client


async def _per_message(frames: list[bytes], client: Client, sinks: list[Client]) -> float:
    for c in sinks:
        c.sink.frames.clear()
    receive: Callable[[bytes], None] = client.conn.receive_text
    started = time.process_time()
    for frame in frames:
        receive(frame)
    spent = time.process_time() - started
    return spent / len(frames) * 1e6


async def relay(n: int) -> float:
    """An `offer` with `to`: validated, stamped, delivered to the peer, answered."""
    t, topic = (
        ChannelTest.build(rate_signaling=10**9, burst_signaling=10**9),
        f"room:{uuid.uuid4()}",
    )
    ann, bob = await _joined(t, "ann", topic), await _joined(t, "bob", topic)
    offer = {"to": "bob", "sdp": SDP, "type": "offer"}
    jr = ann.join_refs[topic]
    frames = [json.dumps([jr, str(i), topic, "offer", offer]).encode() for i in range(n)]
    figure = await _per_message(frames, ann, [ann, bob])
    await t.settle()  # the bookkeeping queued behind the replies runs after the round
    return figure


async def echo(n: int) -> float:
    """A push on `echo:*` answered with its payload."""
    t, topic = ChannelTest.build(), f"echo:{uuid.uuid4()}"
    ann = await _joined(t, "ann", topic)
    jr = ann.join_refs[topic]
    frames = [json.dumps([jr, str(i), topic, "ping", {"body": "ping"}]).encode() for i in range(n)]
    figure = await _per_message(frames, ann, [ann])
    await t.settle()
    return figure


async def main_async(messages: int, rounds: int) -> None:
    # Within the bookkeeping queue's bound (10,000), so no round drops store writes.
    for name, run in (("relay offer with to", relay), ("echo push", echo)):
        figures = [await run(messages) for _ in range(rounds)]
        print(
            f"{name:22} {statistics.median(figures):6.1f} µs CPU per message "
            f"(rounds: {', '.join(f'{f:.1f}' for f in figures)})",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=8_000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    asyncio.run(main_async(a.messages, a.rounds))


if __name__ == "__main__":
    main()
