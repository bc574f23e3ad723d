"""Headless Chromium: a page whose WebSocket is refused falls back to long-poll by itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, Route

from tests.support.gateway_proc import GatewayFactory
from tests.support.node_client import NodeClientFactory

pytestmark = [pytest.mark.browser, pytest.mark.js]

PHOENIX_MJS = (
    Path(__file__).resolve().parents[1] / "js/node_modules/phoenix/priv/static/phoenix.mjs"
)

PAGE = """<!doctype html>
<html><body><script type="module">
import { Socket, LongPoll } from "/test-assets/phoenix.mjs"
window.events = []
window.broadcasts = []
const socket = new Socket("/socket", { longPollFallbackMs: 1500 })
socket.onOpen(() => events.push("open:" + (socket.transport === LongPoll ? "longpoll" : "websocket")))
socket.onError(() => events.push("error"))
socket.connect()
const channel = socket.channel("echo:browser", {})
channel.on("broadcast", (payload) => broadcasts.push(payload))
channel.join().receive("ok", () => {
  events.push("joined")
  channel.push("hello", { from: "chromium" }).receive("ok", (reply) => {
    window.reply = reply
    channel.push("broadcast", { from: "chromium" })
  })
})
</script></body></html>
"""


async def serve_test_assets(page: Page, base: str) -> None:
    """The test page and phoenix.mjs come from test routes on the gateway's own origin."""

    async def page_route(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body=PAGE)

    async def phoenix_route(route: Route) -> None:
        await route.fulfill(
            status=200, content_type="text/javascript", body=PHOENIX_MJS.read_text()
        )

    await page.route(f"{base}/test-assets/fallback.html", page_route)
    await page.route(f"{base}/test-assets/phoenix.mjs", phoenix_route)


async def test_refused_websocket_falls_back_to_longpoll_and_chats(
    gateway: GatewayFactory, node_client: NodeClientFactory, page: Page
) -> None:
    gw = await gateway("--no-websocket", "--longpoll-window-ms", "2000", "--no-rate-limits")
    await serve_test_assets(page, gw.url)
    other = await node_client(gw.ws_url, transport="longpoll")
    assert (await other.join("c", "echo:browser"))["status"] == "ok"

    await page.goto(f"{gw.url}/test-assets/fallback.html")
    await page.wait_for_function("window.reply !== undefined", timeout=15_000)
    assert await page.evaluate("window.reply") == {"from": "chromium"}
    events = await page.evaluate("window.events")
    assert "open:longpoll" in events and "open:websocket" not in events, events
    got = await other.expect_ev("message", 10.0, id="c", event="broadcast")
    assert got["payload"] == {"from": "chromium"}

    await other.push("c", "broadcast", {"from": "node"})
    await page.wait_for_function("window.broadcasts.some((b) => b.from === 'node')", timeout=10_000)
    stored = await page.evaluate("sessionStorage.getItem('phx:fallback:LongPoll')")
    # The WebSocket never passed its health check: the tab stays on long-poll (section 5.8).
    assert stored == "true"
