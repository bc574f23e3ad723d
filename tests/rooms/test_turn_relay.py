"""Calls through a real coturn with the join reply's ICE servers, relay only.

Two headless Chromium pages join one room on a gateway started with `--turn-urls` and
`--turn-secret`, build `RTCPeerConnection({iceServers: reply.ice_servers, iceTransportPolicy:
"relay"})`, signal through the room and talk over a data channel: the selected candidate pair
is a relay on 127.0.0.1. A gateway whose secret coturn does not know, or credentials past their
expiry, get 401 from coturn and the call never connects.

Media stays on loopback: coturn listens and relays on 127.0.0.1 only, and the pages send and
accept only candidates on 127.0.0.1 (relay-only pages have no others to offer anyway). Chromium
binds its sockets to the machine's interface addresses (it gathers nothing on loopback), but
every packet it sends is addressed to coturn on 127.0.0.1, so it goes over `lo` and never
leaves the machine.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import BrowserContext, Page, expect

from gateway.ice import IcePolicy
from tests.support.gateway_proc import GatewayFactory, GatewayProcess
from tests.support.turn_server import SECRET, StartTurn, TurnServer, allocate
from tests.support.wire_server import serve_app

pytestmark = pytest.mark.browser

PHOENIX_MJS = (
    Path(__file__).resolve().parents[1] / "js/node_modules/phoenix/priv/static/phoenix.mjs"
)

# The front-end code of docs/rooms.md, plus hooks the test reads.
PAGE = """<!doctype html>
<html><body><script type="module">
import { Socket } from "/phoenix.mjs"

const query = new URLSearchParams(location.search)
const me = query.get("user")
const socket = new Socket(query.get("socket"), { params: { token: me } })
socket.connect()
const room = socket.channel(`room:${query.get("room")}`, {})
const onLoopback = (candidate) => candidate.split(" ")[4] === "127.0.0.1"
const call = (window.call = { state: "new", errors: [], gathered: [], received: null })
let pc = null
const pending = []

window.joined = new Promise((resolve, reject) =>
  room.join().receive("ok", resolve).receive("error", reject))

window.startCall = async (peer, offer) => {
  const reply = await window.joined
  pc = new RTCPeerConnection({ iceServers: reply.ice_servers, iceTransportPolicy: "relay" })
  const dc = pc.createDataChannel("test", { negotiated: true, id: 0 })
  dc.onopen = () => dc.send(`hello from ${me}`)
  dc.onmessage = ({ data }) => { call.received = data }
  pc.onconnectionstatechange = () => { call.state = pc.connectionState }
  pc.onicegatheringstatechange = () => { call.gathering = pc.iceGatheringState }
  pc.onicecandidateerror = (e) => call.errors.push({ code: e.errorCode, url: e.url })
  pc.onicecandidate = ({ candidate }) => {
    if (!candidate || !candidate.candidate) return
    call.gathered.push({ type: candidate.type, address: candidate.address })
    if (onLoopback(candidate.candidate)) {
      room.push("ice-candidate", { ...candidate.toJSON(), to: peer })
    }
  }
  if (offer) {
    await pc.setLocalDescription()
    room.push("offer", { sdp: pc.localDescription.sdp, to: peer })
  }
}

async function described(payload) {
  await pc.setRemoteDescription({ type: payload.type, sdp: payload.sdp })
  for (const candidate of pending.splice(0)) await pc.addIceCandidate(candidate)
}
room.on("offer", async (p) => {
  await described(p)
  await pc.setLocalDescription()
  room.push("answer", { sdp: pc.localDescription.sdp, to: p.from })
})
room.on("answer", described)
room.on("ice-candidate", async ({ candidate, sdpMid, sdpMLineIndex }) => {
  if (!onLoopback(candidate)) return
  const init = { candidate, sdpMid, sdpMLineIndex }
  if (pc && pc.remoteDescription) await pc.addIceCandidate(init)
  else pending.push(init)
})

window.selectedPair = async () => {
  const stats = await pc.getStats()
  let pair = null
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId)
  })
  if (!pair) return null
  const local = stats.get(pair.localCandidateId)
  const remote = stats.get(pair.remoteCandidateId)
  return { state: pair.state, local: local.candidateType, localAddress: local.address,
           remote: remote.candidateType, remoteAddress: remote.address }
}
</script></body></html>
"""


@pytest.fixture
async def page_server() -> AsyncIterator[str]:
    """The test page and phoenix.mjs, served for real from 127.0.0.1 (its own port): a page
    Chromium sees coming from loopback may open the gateway's loopback socket."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def phoenix(request: web.Request) -> web.Response:
        return web.Response(text=PHOENIX_MJS.read_text(), content_type="text/javascript")

    app = web.Application()
    app.router.add_get("/call.html", page)
    app.router.add_get("/phoenix.mjs", phoenix)
    runner, port = await serve_app(app)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def open_pages(
    context: BrowserContext, base: str, gw: GatewayProcess
) -> tuple[Page, Page, list[dict[str, Any]]]:
    """Ann's and Bob's pages, joined to one new room, and their join replies."""
    room = uuid.uuid4()
    pages, replies = [], []
    for user in ("ann", "bob"):
        page = await context.new_page()
        await page.goto(f"{base}/call.html?user={user}&room={room}&socket={gw.ws_url}")
        replies.append(await page.evaluate("window.joined"))
        pages.append(page)
    return pages[0], pages[1], replies


async def start_call(ann: Page, bob: Page) -> None:
    await bob.evaluate("window.startCall('ann', false)")
    await ann.evaluate("window.startCall('bob', true)")


async def gateway_for(gateway: GatewayFactory, turn: TurnServer, *args: str) -> GatewayProcess:
    return await gateway("--trust-token-as-user-id", "--turn-urls", turn.url, *args)


async def test_relay_only_call_through_coturn(
    gateway: GatewayFactory,
    turn_server: TurnServer,
    browser_context: BrowserContext,
    page_server: str,
) -> None:
    gw = await gateway_for(gateway, turn_server, "--turn-secret", SECRET)
    ann, bob, replies = await open_pages(browser_context, page_server, gw)
    for user, reply in zip(("ann", "bob"), replies, strict=True):
        (server,) = reply["ice_servers"]
        assert server["urls"] == [turn_server.url]
        expiry, _, name = server["username"].partition(":")
        assert name == user and int(expiry) > time.time() + 3000

    await start_call(ann, bob)
    for page, other in ((ann, "bob"), (bob, "ann")):
        await page.wait_for_function(
            f"window.call.received === 'hello from {other}'", timeout=20_000
        )
        call = await page.evaluate("window.call")
        assert call["state"] == "connected" and call["errors"] == []
        assert call["gathered"] and {(c["type"], c["address"]) for c in call["gathered"]} == {
            ("relay", "127.0.0.1")
        }
        # A consent check in flight shows the selected pair "in-progress" for a moment. The
        # predicate must answer at once: each poll starts a getStats and reads the last one's.
        found = await page.wait_for_function(
            """() => {
                window.selectedPair().then((p) => { window.lastPair = p })
                const p = window.lastPair
                return p && p.state === "succeeded" && p
            }""",
            timeout=15_000,
        )
        pair = await found.json_value()
        assert pair == {
            "state": "succeeded",
            "local": "relay",
            "localAddress": "127.0.0.1",
            "remote": "relay",
            "remoteAddress": "127.0.0.1",
        }
    assert "Cannot find credentials" not in turn_server.log()


async def assert_refused(ann: Page, bob: Page, turn: TurnServer) -> None:
    """coturn answers 401 to both pages, no relay is gathered, the call never connects."""
    for page in (ann, bob):
        await page.wait_for_function("window.call.gathering === 'complete'", timeout=15_000)
    await asyncio.sleep(2.0)  # time for a connection that would come up over a relay
    for page in (ann, bob):
        call = await page.evaluate("window.call")
        assert call["gathered"] == [], call
        assert any(e["code"] == 401 and str(turn.port) in e["url"] for e in call["errors"]), call
        assert call["state"] != "connected" and call["received"] is None, call
    assert "Cannot find credentials of user" in turn.log()


async def test_wrong_secret_is_refused_by_coturn(
    gateway: GatewayFactory,
    turn_server: TurnServer,
    browser_context: BrowserContext,
    page_server: str,
) -> None:
    gw = await gateway_for(gateway, turn_server, "--turn-secret", "not-the-coturn-secret")
    ann, bob, _ = await open_pages(browser_context, page_server, gw)
    await start_call(ann, bob)
    await assert_refused(ann, bob, turn_server)


async def test_expired_credentials_are_refused_by_coturn(
    gateway: GatewayFactory,
    turn_server: TurnServer,
    browser_context: BrowserContext,
    page_server: str,
) -> None:
    gw = await gateway_for(gateway, turn_server, "--turn-secret", SECRET, "--turn-ttl-s", "1")
    ann, bob, replies = await open_pages(browser_context, page_server, gw)
    expiry = max(int(r["ice_servers"][0]["username"].split(":")[0]) for r in replies)
    # coturn refuses a username whose expiry second has passed.
    await asyncio.sleep(max(0.0, expiry + 1.2 - time.time()))
    await start_call(ann, bob)
    await assert_refused(ann, bob, turn_server)


async def test_the_demo_calls_through_coturn_with_the_join_reply_servers(
    gateway: GatewayFactory, turn_server: TurnServer, browser_context: BrowserContext
) -> None:
    """/demo?relay: the demo's peer connections take the join reply's ICE servers, TURN only."""
    gw = await gateway_for(gateway, turn_server, "--turn-secret", SECRET)
    room = uuid.uuid4()
    pages = []
    for user in ("ann", "bob"):
        page = await browser_context.new_page()
        await page.goto(f"{gw.url}/demo?user={user}&relay#{room}")
        await expect(page.locator("#user-id")).to_have_text(user)
        pages.append(page)
    for page in pages:
        await expect(page.locator("#conn-state")).to_have_text("connected", timeout=20_000)
        await expect(page.locator("#dc-state")).to_have_text("open", timeout=10_000)
        (server,) = await page.evaluate("window.demo.iceServers()")
        assert server["urls"] == [turn_server.url]
        routes = await page.evaluate("window.demo.routes()")
        assert [(r["local"], r["remote"]) for r in routes] == [("relay", "relay")]
    await pages[0].fill("#data-input", "relayed by coturn")
    await pages[0].click("#data-form button")
    await expect(pages[1].locator("#data-log li")).to_contain_text(["ann: relayed by coturn"])


def test_coturn_accepts_every_rotation_secret_and_refuses_expiry(turn_factory: StartTurn) -> None:
    """During a rotation coturn lists the new and the old secret: credentials signed with either
    get a relay; a secret it does not list, or an expiry in the past, gets 401."""
    turn = turn_factory(secrets=["new-secret", "old-secret"])
    now = time.time()

    def ask(secret: str, at: float) -> int | str:
        policy = IcePolicy.parse(turn_urls=turn.url, turn_secret=f"{secret},unused")
        server = policy.servers("ann", True, at)[0]
        assert server.username is not None and server.credential is not None
        return allocate(turn.port, server.username, server.credential)

    for secret in ("new-secret", "old-secret"):
        relayed = ask(secret, now)
        assert isinstance(relayed, str) and relayed.startswith("127.0.0.1:"), relayed
    assert ask("retired-secret", now) == 401
    assert ask("new-secret", now - 3600 - 5) == 401
