"""Wire core benchmark: broadcast fan-out and memory per idle joined connection.

Every figure is measured for the gateway and for a bare aiohttp WebSocket server doing the same
minimal work in the same run, and printed with the ratio. Load comes from Python worker
processes, which may limit the fan-out figure. bench/bench_compare.py measures both (its
`fanout` and `conns` workloads, in rooms as clients use them) against the bare server with the
Node generator on a core of its own, which shows whether a figure is the server's; it also
measures echo round trips, relay and churn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import time
from typing import Any

import aiohttp

from bench.common import percentile, ratio, rss_kb, server

FANOUT_SUBSCRIBERS = 10_000
IDLE_CONNECTIONS = 4_000


# -- fan-out ----------------------------------------------------------------------------------
def _fan_worker(port: int, conns: int, rounds: int, ready: Any, out: Any) -> None:
    import uvloop

    out.put(uvloop.run(_fan(port, conns, rounds, ready)))


async def _fan(port: int, conns: int, rounds: int, ready: Any) -> list[float]:
    url = f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = []
        for _ in range(conns):
            ws = await session.ws_connect(url, max_msg_size=0)
            await ws.send_str('["1","1","echo:fan","phx_join",{}]')
            await ws.receive()
            sockets.append(ws)
        ready.put(conns)
        arrivals: list[list[float]] = [[] for _ in range(rounds)]

        async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
            for r in range(rounds):
                await ws.receive()
                arrivals[r].append(time.time())

        await asyncio.gather(*(reader(ws) for ws in sockets))
        for ws in sockets:
            await ws.close()
    return [max(a) for a in arrivals]


def run_fanout(port: int, rounds: int, workers: int) -> dict[str, float]:
    ready: Any = mp.Queue()
    out: Any = mp.Queue()
    per = FANOUT_SUBSCRIBERS // workers
    procs = [
        mp.Process(target=_fan_worker, args=(port, per, rounds, ready, out)) for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    sent_at: list[float] = []

    async def sender_joined() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            ws = await session.ws_connect(
                f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0", max_msg_size=0
            )
            await ws.send_str('["1","1","echo:fan","phx_join",{}]')
            await ws.receive()
            for r in range(rounds):
                sent_at.append(time.time())
                await ws.send_str(
                    f'["1","{r + 2}","echo:fan","broadcast",{{"round":{r},"body":"fan-out payload"}}]'
                )
                got_reply = False
                while not got_reply:
                    msg = await ws.receive()
                    got_reply = "phx_reply" in msg.data
                await asyncio.sleep(1.5)
            await ws.close()

    asyncio.run(sender_joined())
    lasts = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    spans = [max(w[r] for w in lasts) - sent_at[r] for r in range(rounds)]
    best = min(spans)
    return {
        "last_delivery_ms": best * 1000,
        "median_ms": percentile(spans, 50) * 1000,
        "deliveries_per_s": FANOUT_SUBSCRIBERS / best,
    }


# -- idle memory ------------------------------------------------------------------------------
def _idle_worker(port: int, conns: int, ready: Any, done: Any) -> None:
    import uvloop

    uvloop.run(_idle(port, conns, ready, done))


async def _idle(port: int, conns: int, ready: Any, done: Any) -> None:
    url = f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = []
        for i in range(conns):
            ws = await session.ws_connect(url)
            await ws.send_str(f'["1","1","echo:idle-{i}","phx_join",{{}}]')
            await ws.receive()
            sockets.append(ws)
        ready.put(conns)
        while not done.is_set():
            await asyncio.sleep(0.1)
        for ws in sockets:
            await ws.close()


def run_idle(port: int, pid: int, workers: int) -> dict[str, float]:
    time.sleep(0.5)
    before = rss_kb(pid)
    ready: Any = mp.Queue()
    done = mp.Event()
    procs = [
        mp.Process(target=_idle_worker, args=(port, IDLE_CONNECTIONS // workers, ready, done))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    time.sleep(1.0)
    after = rss_kb(pid)
    done.set()
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.terminate()
    return {"kb_per_connection": (after - before) / IDLE_CONNECTIONS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=["fanout", "idle"], default=None)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in ("fanout", "idle"):
        if args.only and args.only != name:
            continue
        results[name] = {}
        for kind in ("bare", "gateway"):
            with server(kind) as (port, pid):
                if name == "fanout":
                    results[name][kind] = run_fanout(port, args.rounds, args.workers)
                else:
                    results[name][kind] = run_idle(port, pid, args.workers)
    print("\nwire core benchmark (gateway vs bare aiohttp, same run)")
    if "fanout" in results:
        g, b = results["fanout"]["gateway"], results["fanout"]["bare"]
        print(
            f"fan-out to {FANOUT_SUBSCRIBERS} subscribers: gateway last delivery {g['last_delivery_ms']:.1f} ms ({g['deliveries_per_s']:.0f} deliveries/s) | "
            f"bare {b['last_delivery_ms']:.1f} ms ({b['deliveries_per_s']:.0f}/s) | ratio {ratio(g['deliveries_per_s'], b['deliveries_per_s'])} (target >= 0.8x)"
        )
    if "idle" in results:
        g, b = results["idle"]["gateway"], results["idle"]["bare"]
        print(
            f"RSS per idle joined connection ({IDLE_CONNECTIONS}): gateway {g['kb_per_connection']:.1f} KB | bare {b['kb_per_connection']:.1f} KB | "
            f"ratio {ratio(g['kb_per_connection'], b['kb_per_connection'])} (target <= 1.5x)"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
