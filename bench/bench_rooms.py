"""Room benchmark: a presence join storm into one room.

    .venv/bin/python bench/bench_rooms.py [--storm 5000] [--storm-off 1500] [--json PATH]

`--storm` members join one room (member cap raised) with presence coalescing on (50 ms), then
`--storm-off` members with it off (each join then costs a diff frame to every member, so the
full size would take very long). Reported: joins per second and presence frames received per
join. Signaling throughput (rooms of two, offers with `to`) is measured beside a bare relay by
bench/bench_compare.py, whose Node generator on a core of its own shows whether a figure is the
server's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import server  # noqa: E402


# -- join storm ----------------------------------------------------------------------------
async def storm_load(port: int, members: int, concurrency: int, limit_s: float) -> dict[str, Any]:
    import uuid

    import aiohttp

    topic = f"room:{uuid.uuid4()}"
    counts = {"diff": 0, "state": 0}
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    sockets: list[Any] = []
    joined = 0
    gate = asyncio.Semaphore(concurrency)
    deadline = time.monotonic() + limit_s

    async def member(n: int) -> None:
        nonlocal joined
        async with gate:
            if time.monotonic() > deadline:
                return
            ws = await session.ws_connect(
                f"ws://127.0.0.1:{port}/socket/websocket?token=m{n}&vsn=2.0.0",
                max_msg_size=0,
                compress=0,
            )
            sockets.append(ws)
            await ws.send_str(json.dumps(["1", "1", topic, "phx_join", {}]))
            reply = await ws.receive()
            assert '"ok"' in reply.data[-20:], reply.data[:200]
            joined += 1
        async for msg in ws:
            head = msg.data[:120]
            if '"presence_diff"' in head:
                counts["diff"] += 1
            elif '"presence_state"' in head:
                counts["state"] += 1

    start = time.monotonic()
    tasks = [asyncio.create_task(member(n)) for n in range(members)]
    while joined < members and time.monotonic() < deadline + 1:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - start
    await asyncio.sleep(1.0)  # the last windows and states
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()
    return {
        "members": joined,
        "joins_per_s": joined / elapsed,
        "diff_frames": counts["diff"],
        "state_frames": counts["state"],
        "diff_frames_per_join": counts["diff"] / max(joined, 1),
        "presence_frames_per_join": (counts["diff"] + counts["state"]) / max(joined, 1),
    }


def storm(members: int, coalesce_ms: int, limit_s: float) -> dict[str, Any]:
    with server(
        "gateway",
        "--trust-token-as-user-id",
        "--room-max-members", str(members + 10),
        "--presence-coalesce-ms", str(coalesce_ms),
        "--max-connections", str(members + 100),
    ) as (port, _pid):  # fmt: skip
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
        result = asyncio.run(storm_load(port, members, 64, limit_s))
    return {"coalesce_ms": coalesce_ms, "target_members": members, **result}


# -- main ----------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--storm", type=int, default=5000)
    parser.add_argument("--storm-off", type=int, default=1500)
    parser.add_argument("--storm-limit-s", type=float, default=60.0)
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "rooms.json"))
    args = parser.parse_args()
    on = storm(args.storm, 50, args.storm_limit_s)
    off = storm(args.storm_off, 0, args.storm_limit_s)
    print("join storm into one room:")
    for row in (on, off):
        print(
            f"  coalesce {row['coalesce_ms']:>2} ms: {row['members']} members joined, "
            f"{row['joins_per_s']:.0f} joins/s, {row['diff_frames_per_join']:.1f} diff frames "
            f"per join, {row['state_frames']} states, {row['diff_frames']} diff frames in all"
        )
    report = {"storm": {"coalesced": on, "uncoalesced": off}}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
