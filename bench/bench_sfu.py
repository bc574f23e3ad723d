"""SFU rooms measured with headless Chromium, a gateway and a real Janus, all on 127.0.0.1.

    .venv/bin/python bench/bench_sfu.py [--runs 5] [--cycles 20] [--max-pages 12] [--json PATH]

1. Join to first decoded remote frame, mesh against SFU: 3 `/demo` pages (`/demo#<room>` and
   `/demo?media=sfu#<room>`) open at once, per run a new room. Per page: from the moment it
   sends its `phx_join` to its first remote video with a frame (and to frames from both
   others). Medians over `--runs` runs x 3 pages.
2. The gateway's CPU per SFU signaling cycle: page A publishes, page B gets `peer-ready` and the
   SFU's offer, answers it and decodes A's video, A unpublishes and B is told; `--cycles`
   times. The gateway's user+system CPU (/proc/<pid>/stat) over the cycles, per cycle and per
   push to "sfu" (offer, answer, ice-candidate, unpublish).
3. Capacity: pages join one SFU room one at a time (each publishes its fake camera and
   subscribes to all others) until some page no longer decodes every other page's video at
   >= 5 frames/s. Reported per size: the lowest rate, the cores Chromium, the gateway and
   Janus used, the machine's idle share, load and available memory (what ran out).

The gateway and Janus run as their own processes (the tests' Janus configuration: ICE on `lo`
only). Mesh pages show Chromium their host addresses (no mDNS, as tests/rooms/test_browser_call.py
does); SFU pages send Janus none, it learns them from their checks to its 127.0.0.1 candidate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from playwright.async_api import Browser, Page, async_playwright  # noqa: E402

from bench.common import cpu_seconds, server  # noqa: E402
from tests.rooms.test_sfu_browsers import PAGE, PHOENIX_MJS  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.janus_server import ADMIN_KEY, JanusServer  # noqa: E402
from tests.support.wire_server import serve_app  # noqa: E402

NO_MDNS = "--disable-features=WebRtcHideLocalIpsWithMdns"
# Times in the demo page: its phx_join and, per remote peer, the first frame shown.
TIMING = """
window.bench = { join: null, frames: {} }
const send = WebSocket.prototype.send
WebSocket.prototype.send = function (data) {
  if (window.bench.join === null && typeof data === "string" && data.includes('"phx_join"')
      && data.includes('"room:')) window.bench.join = performance.now()
  return send.call(this, data)
}
setInterval(() => {
  for (const v of document.querySelectorAll("video[data-peer]")) {
    if (v.videoWidth > 0) window.bench.frames[v.dataset.peer] ??= performance.now()
  }
}, 5)
"""
# Pushes to "sfu" from the test page, counted.
COUNT_PUSHES = """() => {
  window.pushes = 0
  const push = window.room.push.bind(window.room)
  window.room.push = (event, payload, timeout) => {
    if (payload && (payload.to === "sfu" || event === "unpublish")) window.pushes++
    return push(event, payload, timeout)
  }
}"""
# Decoded video frames per publisher, on a test page.
FRAMES = """async () => {
  const out = {}
  for (const [feed, n] of Object.entries(await window.inbound())) out[feed] = n.video
  return out
}"""


@contextlib.asynccontextmanager
async def chromium(*extra: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra]
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def test_page_server() -> AsyncIterator[str]:
    """The SFU test page of tests/rooms/test_sfu_browsers.py and phoenix.mjs."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def phoenix(request: web.Request) -> web.Response:
        return web.Response(text=PHOENIX_MJS.read_text(), content_type="text/javascript")

    app = web.Application()
    app.router.add_get("/sfu.html", page)
    app.router.add_get("/phoenix.mjs", phoenix)
    runner, port = await serve_app(app)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# -- 1. join to first frame ----------------------------------------------------------------
async def demo_run(browser: Browser, base: str, sfu: bool) -> list[tuple[float, float]]:
    """One room of 3 demo pages: per page (ms to the first remote frame, ms to both)."""
    context = await browser.new_context()
    await context.add_init_script(TIMING)
    url = f"{base}/demo{'?media=sfu' if sfu else ''}#{uuid.uuid4()}"
    try:
        pages = [await context.new_page() for _ in range(3)]
        await asyncio.gather(*(p.goto(url) for p in pages))
        for p in pages:
            await p.wait_for_function(
                "Object.keys(window.bench.frames).length === 2", timeout=30_000
            )
        out = []
        for p in pages:
            b = await p.evaluate("window.bench")
            times = sorted(b["frames"].values())
            out.append((times[0] - b["join"], times[-1] - b["join"]))
        return out
    finally:
        await context.close()


async def join_to_frame(base: str, runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for mode, extra in (("mesh", (NO_MDNS,)), ("sfu", ())):
        firsts: list[float] = []
        alls: list[float] = []
        async with chromium(*extra) as browser:
            await demo_run(browser, base, mode == "sfu")  # warm-up (browser, Janus session)
            for _ in range(runs):
                for first, both in await demo_run(browser, base, mode == "sfu"):
                    firsts.append(first)
                    alls.append(both)
        result[mode] = {
            "first_frame_ms_median": round(statistics.median(firsts)),
            "both_frames_ms_median": round(statistics.median(alls)),
            "first_frame_ms_max": round(max(firsts)),
            "samples": len(firsts),
        }
        print(mode, result[mode], flush=True)
    return result


# -- 2. CPU per signaling cycle -------------------------------------------------------------
async def open_test_page(browser: Browser, pages_url: str, ws: str, user: str, room: str) -> Page:
    page = await browser.new_page()
    await page.goto(f"{pages_url}/sfu.html?user={user}&room={room}&socket={ws}")
    await page.evaluate("window.joined")
    return page


async def cpu_per_cycle(pages_url: str, ws: str, pid: int, cycles: int) -> dict[str, Any]:
    room = str(uuid.uuid4())
    async with chromium() as browser:
        a = await open_test_page(browser, pages_url, ws, "pub", room)
        b = await open_test_page(browser, pages_url, ws, "sub", room)
        for page in (a, b):
            await page.evaluate(COUNT_PUSHES)

        async def cycle(i: int) -> None:
            await a.evaluate("window.publish()")
            deadline = time.monotonic() + 20
            while (await b.evaluate(FRAMES)).get("pub", 0) == 0:  # B decodes A's video
                if time.monotonic() > deadline:
                    raise RuntimeError("no video from the publisher within 20 s")
                await asyncio.sleep(0.02)
            await a.evaluate("window.unpublish()")
            await b.wait_for_function(f"window.seen.unpublished.length === {i + 1}", polling=20)

        await cycle(0)  # warm-up
        for page in (a, b):
            await page.evaluate("window.pushes = 0")
        started, before = time.monotonic(), cpu_seconds(pid)
        for i in range(1, cycles + 1):
            await cycle(i)
        used, wall = cpu_seconds(pid) - before, time.monotonic() - started
        pushes = sum([await p.evaluate("window.pushes") for p in (a, b)])
    result = {
        "cycles": cycles,
        "gateway_cpu_ms_per_cycle": round(used / cycles * 1000, 2),
        "pushes_to_sfu_per_cycle": round(pushes / cycles, 1),
        "gateway_cpu_ms_per_push": round(used / pushes * 1000, 2) if pushes else None,
        "wall_s_per_cycle": round(wall / cycles, 2),
    }
    print("cpu", result, flush=True)
    return result


# -- 3. capacity ----------------------------------------------------------------------------
def process_cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for name, group in pids.items():
        total[name] = 0.0
        for pid in group:
            with contextlib.suppress(OSError):
                total[name] += cpu_seconds(pid)
    return total


def machine_idle() -> tuple[float, float]:
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)  # idle + iowait, all


def mem_available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return -1


def chromium_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if "chrom" in (entry / "comm").read_text():
                    found.append(int(entry.name))
    return found


async def decode_rates(pages: list[Page], window: float) -> list[dict[str, float]]:
    first = [await p.evaluate(FRAMES) for p in pages]
    await asyncio.sleep(window)
    second = [await p.evaluate(FRAMES) for p in pages]
    return [
        {feed: (after.get(feed, 0) - before.get(feed, 0)) / window for feed in after}
        for before, after in zip(first, second, strict=True)
    ]


async def capacity(
    pages_url: str, ws: str, gateway_pid: int, janus_pid: int, max_pages: int
) -> dict[str, Any]:
    room = str(uuid.uuid4())
    held = 0
    steps: list[dict[str, Any]] = []
    async with chromium() as browser:
        pages: list[Page] = []
        for n in range(1, max_pages + 1):
            page = await open_test_page(browser, pages_url, ws, f"u{n}", room)
            await page.evaluate("window.publish()")
            pages.append(page)
            if n == 1:
                continue
            await asyncio.sleep(6)  # subscriptions negotiated, decoders warmed up
            pids = {"chromium": chromium_pids(), "gateway": [gateway_pid], "janus": [janus_pid]}
            idle0, all0 = machine_idle()
            cpu0, t0 = process_cpu(pids), time.monotonic()
            rates = await decode_rates(pages, 4.0)
            cpu1, wall = process_cpu(pids), time.monotonic() - t0
            idle1, all1 = machine_idle()
            lowest = min((r for page_rates in rates for r in page_rates.values()), default=0.0)
            complete = all(len(r) == n - 1 for r in rates)
            step = {
                "pages": n,
                "streams_decoded": n * (n - 1),
                "lowest_fps": round(lowest, 1),
                "all_subscribed": complete,
                "cpu_cores": {k: round((cpu1[k] - cpu0[k]) / wall, 2) for k in cpu0},
                "machine_idle": round((idle1 - idle0) / (all1 - all0), 2),
                "load_1m": float(Path("/proc/loadavg").read_text().split()[0]),
                "mem_available_mb": mem_available_mb(),
            }
            steps.append(step)
            print("capacity", step, flush=True)
            if not complete or lowest < 5:
                break
            held = n
    return {"held_pages": held, "cores": os.cpu_count(), "steps": steps}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        janus = JanusServer(Path(tmp))
        janus.start()
        try:
            assert janus.proc is not None
            sfu_args = ("--sfu-url", janus.url, "--sfu-admin-key", ADMIN_KEY)
            with server("gateway", "--trust-token-as-user-id", *sfu_args) as (port, pid):
                ws = f"ws://127.0.0.1:{port}/socket"
                results: dict[str, Any] = {}
                if not args.skip_latency:
                    results["join_to_frame"] = await join_to_frame(
                        f"http://127.0.0.1:{port}", args.runs
                    )
                async with test_page_server() as pages_url:
                    if not args.skip_cpu:
                        results["cpu"] = await cpu_per_cycle(pages_url, ws, pid, args.cycles)
                    if not args.skip_capacity:
                        results["capacity"] = await capacity(
                            pages_url, ws, pid, janus.proc.pid, args.max_pages
                        )
                return results
        finally:
            janus.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--max-pages", type=int, default=12)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
