"""Three headless Chromium pages in one SFU room, their media routed by a real Janus.

The gateway runs with `--sfu-url` pointing at a Janus the test starts (VideoRoom over
WebSockets, ICE on the loopback interface only, tests/support/janus_server.py). Each page joins
with `media: "sfu"`, publishes its fake camera and microphone by pushing `offer` to `"sfu"`,
and answers the offers `"sfu"` sends for the others' streams: the front-end code of
docs/rooms.md. Pages send Janus only candidates on 127.0.0.1 (they have none, so Janus learns
theirs from their connectivity checks to its 127.0.0.1 candidate): all media stays on `lo`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import BrowserContext, Page

from gateway.sfu.bridge import SfuBridge
from gateway.sfu.janus import JanusClient
from tests.support.gateway_proc import GatewayFactory, GatewayProcess
from tests.support.janus_server import ADMIN_KEY, JanusServer
from tests.support.wire_server import serve_app

pytestmark = pytest.mark.browser

PHOENIX_MJS = (
    Path(__file__).resolve().parents[1] / "js/node_modules/phoenix/priv/static/phoenix.mjs"
)

# The front-end code of docs/rooms.md ("Rooms through an SFU"), plus hooks the test reads.
PAGE = """<!doctype html>
<html><body><div id="videos"></div><script type="module">
import { Socket } from "/phoenix.mjs"

const query = new URLSearchParams(location.search)
const socket = new Socket(query.get("socket"), { params: { token: query.get("user") } })
socket.connect()
const room = socket.channel(`room:${query.get("room")}`, { media: "sfu" })
window.room = room
const onLoopback = (c) => c === "" || c.split(" ")[4] === "127.0.0.1"  // the test's rule
const seen = (window.seen = { ready: [], unpublished: [], ended: [], errors: [], undeliverable: [] })

let publisher = null                 // my RTCPeerConnection to the SFU
const subscriptions = new Map()      // publisher user id -> RTCPeerConnection from the SFU
const ask = (event, payload) => new Promise((resolve, reject) =>
  room.push(event, payload).receive("ok", resolve).receive("error", reject))
const trickle = (pc, extra) => {
  pc.onicecandidate = ({ candidate }) => {
    const init = candidate ? candidate.toJSON() : { candidate: "" }
    if (onLoopback(init.candidate)) room.push("ice-candidate", { ...init, ...extra, to: "sfu" })
  }
}

// Every join, a rejoin after a reconnect too, starts with nothing at the SFU: the gateway
// ended the handles of the channel that dropped. So a rejoin closes what the page had.
let joins = 0
window.joined = new Promise((resolve, reject) =>
  room.join().receive("ok", (reply) => {
    if (joins++ > 0) rejoined()
    resolve(reply)
  }).receive("error", reject))
function rejoined() {
  const wasPublishing = publisher !== null
  for (const feed of [...subscriptions.keys()]) dropFeed(feed)
  publisher?.close()
  publisher = null
  if (wasPublishing) window.publish()
}

window.publish = async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true })
  publisher = new RTCPeerConnection()
  stream.getTracks().forEach((track) => publisher.addTrack(track, stream))
  trickle(publisher, {})
  await publisher.setLocalDescription()
  await ask("offer", { sdp: publisher.localDescription.sdp, to: "sfu" })
}
window.unpublish = async () => {
  await ask("unpublish", {})
  publisher?.close()
  publisher = null
}
window.leave = () => new Promise((resolve) => room.leave().receive("ok", resolve))

room.on("answer", async ({ from, type, sdp }) => {
  if (from === "sfu") await publisher.setRemoteDescription({ type, sdp })
})
room.on("peer-ready", ({ from, via, tracks }) => via === "sfu" && seen.ready.push({ from, tracks }))
room.on("offer", async ({ from, publisher: feed, type, sdp }) => {
  if (from !== "sfu") return
  subscriptions.get(feed)?.close()
  const pc = new RTCPeerConnection()
  subscriptions.set(feed, pc)
  trickle(pc, { publisher: feed })
  pc.ontrack = ({ track, streams }) => {
    if (track.kind !== "video") return
    const video = document.createElement("video")
    video.dataset.publisher = feed
    video.autoplay = video.muted = video.playsInline = true
    video.srcObject = streams[0] ?? new MediaStream([track])
    document.getElementById("videos").append(video)
  }
  await pc.setRemoteDescription({ type, sdp })
  await pc.setLocalDescription()
  await ask("answer", { sdp: pc.localDescription.sdp, to: "sfu", publisher: feed })
})
room.on("ice-candidate", async ({ from, publisher: feed, candidate, sdpMid, sdpMLineIndex }) => {
  if (from !== "sfu" || !onLoopback(candidate)) return
  const pc = feed ? subscriptions.get(feed) : publisher
  await pc?.addIceCandidate(candidate ? { candidate, sdpMid, sdpMLineIndex } : null)
})
function dropFeed(feed) {
  subscriptions.get(feed)?.close()
  subscriptions.delete(feed)
  document.querySelectorAll(`video[data-publisher="${feed}"]`).forEach((v) => v.remove())
}
room.on("unpublished", ({ from }) => {
  seen.unpublished.push(from)
  dropFeed(from)
})
room.on("undeliverable", (p) => seen.undeliverable.push(p))
room.on("sfu-ended", ({ reason }) => seen.ended.push(reason))

// What arrives from each publisher: decoded video frames and audio packets.
window.inbound = async () => {
  const out = {}
  for (const [feed, pc] of subscriptions) {
    const stats = await pc.getStats()
    const got = { video: 0, audio: 0 }
    stats.forEach((s) => {
      if (s.type !== "inbound-rtp") return
      if (s.kind === "video") got.video = s.framesDecoded ?? 0
      if (s.kind === "audio") got.audio = s.packetsReceived ?? 0
    })
    out[feed] = got
  }
  return out
}
window.videoWidths = () => Object.fromEntries(
  [...document.querySelectorAll("video")].map((v) => [v.dataset.publisher, v.videoWidth]))
</script></body></html>
"""

USERS = ("ann", "bob", "cid")


@pytest.fixture
async def page_server() -> AsyncIterator[str]:
    """The test page and phoenix.mjs, served from 127.0.0.1 (its own port)."""

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


@pytest.fixture
async def janus_view(janus_server: JanusServer) -> AsyncIterator[SfuBridge]:
    """The test's own Janus session, to list what the gateway left in the VideoRoom."""
    bridge = SfuBridge((janus_server.url,), JanusClient, admin_key=ADMIN_KEY)
    try:
        yield bridge
    finally:
        await bridge.stop()


async def sfu_gateway(gateway: GatewayFactory, janus: JanusServer) -> GatewayProcess:
    return await gateway(
        "--trust-token-as-user-id", "--sfu-url", janus.url, "--sfu-admin-key", ADMIN_KEY
    )


async def open_page(
    context: BrowserContext, base: str, gw: GatewayProcess, user: str, room: str
) -> Page:
    page = await context.new_page()
    await page.goto(f"{base}/sfu.html?user={user}&room={room}&socket={gw.ws_url}")
    reply = await page.evaluate("window.joined")
    assert reply["user_id"] == user and reply["media"] == "sfu", reply
    return page


async def handles_metric(gw: GatewayProcess) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    (line,) = [x for x in text.splitlines() if x.startswith("gateway_sfu_handles ")]
    return float(line.split()[1])


async def wait_inbound(page: Page, publishers: set[str], timeout: float = 20.0) -> dict[str, Any]:
    """Until `page` decodes video and receives audio from each of `publishers`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        inbound: dict[str, Any] = await page.evaluate("window.inbound()")
        if set(inbound) == publishers and all(
            v["video"] > 0 and v["audio"] > 0 for v in inbound.values()
        ):
            return inbound
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"inbound after {timeout} s: {inbound}")
        await asyncio.sleep(0.25)


async def test_three_pages_see_and_hear_each_other_through_janus(
    gateway: GatewayFactory,
    janus_server: JanusServer,
    janus_view: SfuBridge,
    browser_context: BrowserContext,
    page_server: str,
) -> None:
    gw = await sfu_gateway(gateway, janus_server)
    room = str(uuid.uuid4())
    pages = {u: await open_page(browser_context, page_server, gw, u, room) for u in USERS}
    for page in pages.values():
        await page.evaluate("window.publish()")

    for user, page in pages.items():
        others = set(USERS) - {user}
        await wait_inbound(page, others)
        widths = await page.evaluate("window.videoWidths()")
        assert set(widths) == others and all(w > 0 for w in widths.values()), widths
        ready = await page.evaluate("window.seen.ready")
        assert {r["from"] for r in ready} == others
        assert all(r["tracks"] == ["audio", "video"] for r in ready), ready

    listed = await janus_view.participants(room)
    assert sorted(p["id"] for p in listed) == sorted(USERS)
    assert all(p["publisher"] for p in listed)
    # One handle per publisher and per subscription (3 + 3 x 2), one control handle.
    assert await handles_metric(gw) == 9
    assert sorted(len(h) for h in (await janus_server.handles()).values()) == [1, 10]

    # cid leaves: the others are told, and Janus no longer has cid's feed.
    await pages["cid"].evaluate("window.leave()")
    for user in ("ann", "bob"):
        await pages[user].wait_for_function("window.seen.unpublished.includes('cid')")
        await wait_inbound(pages[user], set(USERS) - {user, "cid"})
    listed = await janus_view.participants(room)
    assert sorted(p["id"] for p in listed) == ["ann", "bob"]

    # bob stops publishing but stays: ann loses bob's streams.
    await pages["bob"].evaluate("window.unpublish()")
    await pages["ann"].wait_for_function("window.seen.unpublished.includes('bob')")
    assert [p["id"] for p in await janus_view.participants(room)] == ["ann"]

    # Everyone leaves: no publisher, no subscription, no room is left in Janus. What stays
    # is each session's control handle (the gateway's and this test's).
    for user in ("ann", "bob"):
        await pages[user].evaluate("window.leave()")
    await asyncio.sleep(0.3)
    assert await janus_view.participants(room) == []
    assert sorted(len(h) for h in (await janus_server.handles()).values()) == [1, 1]
    assert await handles_metric(gw) == 0


async def test_three_pages_on_two_nodes(
    gateway: GatewayFactory,
    redis_url: str,
    janus_server: JanusServer,
    janus_view: SfuBridge,
    browser_context: BrowserContext,
    page_server: str,
) -> None:
    """ann on one node, bob and cid on another: each node holds its own members' handles."""
    nodes = [
        await gateway(
            "--trust-token-as-user-id",
            "--redis-url",
            redis_url,
            "--sfu-url",
            janus_server.url,
            "--sfu-admin-key",
            ADMIN_KEY,
        )
        for _ in range(2)
    ]
    room = str(uuid.uuid4())
    homes = {"ann": nodes[0], "bob": nodes[1], "cid": nodes[1]}
    pages = {u: await open_page(browser_context, page_server, homes[u], u, room) for u in USERS}
    for page in pages.values():
        await page.evaluate("window.publish()")
    for user, page in pages.items():
        await wait_inbound(page, set(USERS) - {user})
    # ann's node: 1 publisher + 2 subscriptions; the other: 2 publishers + 4 subscriptions.
    assert [await handles_metric(gw) for gw in nodes] == [3, 6]

    await pages["bob"].evaluate("window.leave()")
    for user in ("ann", "cid"):
        await pages[user].wait_for_function("window.seen.unpublished.includes('bob')")
    assert sorted(p["id"] for p in await janus_view.participants(room)) == ["ann", "cid"]
    assert [await handles_metric(gw) for gw in nodes] == [2, 2]


async def test_a_janus_restart_ends_the_media_and_a_republish_works(
    gateway: GatewayFactory,
    janus_server: JanusServer,
    browser_context: BrowserContext,
    page_server: str,
) -> None:
    gw = await sfu_gateway(gateway, janus_server)
    room = str(uuid.uuid4())
    pages = {u: await open_page(browser_context, page_server, gw, u, room) for u in USERS}
    for page in pages.values():
        await page.evaluate("window.publish()")
    for user, page in pages.items():
        await wait_inbound(page, set(USERS) - {user})

    janus_server.stop()
    for page in pages.values():
        await page.wait_for_function("window.seen.ended.length === 1", timeout=5_000)
        assert await page.evaluate("window.seen.ended") == ["sfu unavailable"]
    started = asyncio.get_running_loop().time()
    refused = await pages["ann"].evaluate("window.publish().then(() => null, (e) => e.reason)")
    assert refused == "sfu unavailable"
    assert asyncio.get_running_loop().time() - started < 2.0
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/readyz") as resp:
        assert resp.status == 200
        assert (await resp.json())["sfu"] == {janus_server.url: "idle"}
    assert await handles_metric(gw) == 0

    janus_server.start()
    for page in pages.values():
        await page.evaluate("window.publish()")
    for user, page in pages.items():
        await wait_inbound(page, set(USERS) - {user})
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/readyz") as resp:
        assert (await resp.json())["sfu"] == {janus_server.url: "connected"}
