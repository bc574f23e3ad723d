"""Two headless Chromium pages call each other through the gateway's /demo page."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.gateway_proc import GatewayFactory

pytestmark = pytest.mark.browser

# Without this, Chromium hides host candidates behind mDNS names, which do not resolve here.
WEBRTC_ARGS = ("--disable-features=WebRtcHideLocalIpsWithMdns",)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """The suite's Chromium, plus the flag that lets two local pages find each other."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *WEBRTC_ARGS]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def test_two_pages_connect_talk_and_chat(
    gateway: GatewayFactory, browser_context: BrowserContext, page: Page
) -> None:
    gw = await gateway()
    room = uuid.uuid4()
    other: Page = await browser_context.new_page()
    await page.goto(f"{gw.url}/demo#{room}")
    await expect(page.locator("#user-id")).not_to_have_text("…")
    await other.goto(f"{gw.url}/demo#{room}")
    await expect(other.locator("#user-id")).not_to_have_text("…")
    ids = [await p.locator("#user-id").inner_text() for p in (page, other)]
    assert all(str(uuid.UUID(i)) == i for i in ids) and ids[0] != ids[1]

    # The participant list (phoenix.js Presence) shows both, on both pages.
    for p in (page, other):
        for user in ids:
            await expect(p.locator(f'#participants li[data-user="{user}"]')).to_have_count(1)

    # The peer connection and its data channel come up.
    for p in (page, other):
        await expect(p.locator("#conn-state")).to_have_text("connected", timeout=20_000)
        await expect(p.locator("#dc-state")).to_have_text("open", timeout=10_000)
    state = await page.evaluate("window.demo.peers()")
    assert state == [{"id": ids[1], "connection": "connected", "channel": "open"}]

    # Remote video plays from the fake camera.
    remote = other.locator(f'video[data-peer="{ids[0]}"]')
    await expect(remote).to_have_count(1)
    await other.wait_for_function(
        f"document.querySelector('video[data-peer=\"{ids[0]}\"]').videoWidth > 0", timeout=10_000
    )

    # A data-channel message crosses.
    await page.fill("#data-input", "ping over webrtc")
    await page.click("#data-form button")
    await expect(other.locator("#data-log li")).to_contain_text([f"{ids[0][:8]}: ping over webrtc"])

    # A chat message appears on the other page.
    await other.fill("#chat-input", "hello through the gateway")
    await other.click("#chat-form button")
    await expect(page.locator("#chat li")).to_contain_text(
        [f"{ids[1][:8]}: hello through the gateway"]
    )
    await expect(other.locator("#chat li")).to_contain_text(["me: hello through the gateway"])
    assert await page.locator("#status").inner_text() == ""
