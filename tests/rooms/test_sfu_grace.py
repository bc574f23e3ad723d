"""A member of an SFU room drops and comes back within its grace period (real Janus, Chromium).

What "sfu" would have sent a dropped member is not queued: its offers belong to Janus handles
that only the member's own channel holds, and those ended with the drop (docs/rooms.md, "The
grace period in an SFU room"). The rejoin replays instead: a `peer-ready` and a fresh `offer`
for each member publishing now (one who started while it was away included, one who stopped
not), and the page, told by its join reply that it holds nothing at the SFU, publishes again.
Nobody gets `undeliverable` for "sfu", and no handle is left behind.
"""

from __future__ import annotations

import asyncio
import uuid

from playwright.async_api import BrowserContext, Page

from tests.rooms.test_sfu_browsers import (
    handles_metric,
    open_page,
    page_server,  # noqa: F401 (the fixture)
    sfu_gateway,
    wait_inbound,
)
from tests.support.gateway_proc import GatewayFactory
from tests.support.janus_server import JanusServer

# A network blip on demand: `drop()` closes the page's WebSockets and refuses new ones
# (phoenix.js keeps retrying) until `reconnect()`.
BLIP = """
const Native = window.WebSocket
const opened = []
window.offline = false
window.WebSocket = class extends Native {
  constructor(url, protocols) {
    super(window.offline ? "ws://127.0.0.1:9/" : url, protocols)
    opened.push(this)
  }
}
window.drop = () => { window.offline = true; opened.forEach((ws) => ws.close()) }
window.reconnect = () => { window.offline = false }
"""


async def test_a_dropped_member_rejoins_and_gets_the_current_publishers(
    gateway: GatewayFactory,
    janus_server: JanusServer,
    browser_context: BrowserContext,
    page_server: str,  # noqa: F811
) -> None:
    gw = await sfu_gateway(gateway, janus_server)
    room = str(uuid.uuid4())
    await browser_context.add_init_script(BLIP)
    pages: dict[str, Page] = {}
    for user in ("ann", "bob", "cid"):
        pages[user] = await open_page(browser_context, page_server, gw, user, room)
        await pages[user].evaluate("window.publish()")
    for user, page in pages.items():
        await wait_inbound(page, {"ann", "bob", "cid"} - {user})

    # cid's network blips: its handles end with its channel, the others are told.
    await pages["cid"].evaluate("window.drop()")
    for user in ("ann", "bob"):
        await pages[user].wait_for_function("window.seen.unpublished.includes('cid')")
    # cid is in its grace period: a member's message to it is queued, as in any room.
    reply = await pages["ann"].evaluate(
        """new Promise((resolve) => window.room.push("ice-candidate", {candidate: "", to: "cid"})
            .receive("ok", resolve).receive("error", resolve))"""
    )
    assert reply == {"queued": True}, reply
    # While cid is away: bob stops publishing, dan joins and publishes.
    await pages["bob"].evaluate("window.unpublish()")
    await pages["ann"].wait_for_function("window.seen.unpublished.includes('bob')")
    pages["dan"] = await open_page(browser_context, page_server, gw, "dan", room)
    await pages["dan"].evaluate("window.publish()")
    await wait_inbound(pages["dan"], {"ann"})

    # cid comes back: fresh offers for ann and dan (not bob), and it publishes again.
    await pages["cid"].evaluate("window.reconnect()")
    await wait_inbound(pages["cid"], {"ann", "dan"})
    await wait_inbound(pages["ann"], {"dan", "cid"})
    await wait_inbound(pages["dan"], {"ann", "cid"})
    await wait_inbound(pages["bob"], {"ann", "dan", "cid"})
    ready = await pages["cid"].evaluate("window.seen.ready.map((r) => r.from)")
    assert ready[-2:] in (["ann", "dan"], ["dan", "ann"]), ready
    for page in pages.values():
        assert await page.evaluate("window.seen.undeliverable") == []
    # Publishers ann, dan, cid; subscriptions 2 (ann) + 3 (bob) + 2 (cid) + 2 (dan).
    await asyncio.sleep(0.3)
    assert await handles_metric(gw) == 12
