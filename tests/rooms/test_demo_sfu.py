"""The demo's SFU room: three headless Chromium pages on `/demo?media=sfu#<room>` against a
gateway with `--sfu-url` and a real Janus (tests/support/janus_server.py).

Each page publishes its fake camera through the gateway's bridge and shows the other two
members' video. The pages hide their host addresses behind mDNS names (Chromium's default),
which this Janus ignores: it learns each page's address from the page's checks to its only
candidate, 127.0.0.1, so all media stays on `lo`.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.support.gateway_proc import GatewayFactory
from tests.support.janus_server import ADMIN_KEY, JanusServer

pytestmark = pytest.mark.browser

WIDTHS = """() => Object.fromEntries([...document.querySelectorAll("#videos video[data-peer]")]
    .map((v) => [v.dataset.peer, v.videoWidth]))"""


async def open_demo(context: BrowserContext, url: str) -> tuple[Page, str]:
    page = await context.new_page()
    await page.goto(url)
    await expect(page.locator("#user-id")).not_to_have_text("…", timeout=15_000)
    return page, await page.locator("#user-id").inner_text()


@pytest.mark.timeout(120)
async def test_three_demo_pages_see_each_other_through_janus(
    gateway: GatewayFactory, janus_server: JanusServer, browser_context: BrowserContext
) -> None:
    gw = await gateway("--sfu-url", janus_server.url, "--sfu-admin-key", ADMIN_KEY)
    url = f"{gw.url}/demo?media=sfu#{uuid.uuid4()}"
    opened = [await open_demo(browser_context, url) for _ in range(3)]
    ids = [user for _, user in opened]
    assert len(set(ids)) == 3

    for page, me in opened:
        await expect(page.locator("#media")).to_have_text("sfu")
        others = set(ids) - {me}
        await page.wait_for_function(
            f"(n) => Object.values(({WIDTHS})()).filter((w) => w > 0).length === n",
            arg=len(others),
            # Three pages encode and decode video through Janus: slow when the cores are busy.
            timeout=45_000,
        )
        widths = await page.evaluate(WIDTHS)
        assert set(widths) == others and all(w > 0 for w in widths.values()), widths
        assert await page.evaluate("window.demo.media") == "sfu"
        assert await page.locator("#status").inner_text() == ""
        assert await page.locator("#sfu-link").is_hidden()

    # One leaves: the two others drop its video.
    leaving_page, leaving = opened[2]
    await leaving_page.close()
    for page, _ in opened[:2]:
        await expect(page.locator(f'video[data-peer="{leaving}"]')).to_have_count(0)


async def test_the_mesh_demo_offers_the_sfu_room_when_the_gateway_has_one(
    gateway: GatewayFactory, janus_server: JanusServer, browser_context: BrowserContext
) -> None:
    gw = await gateway("--sfu-url", janus_server.url, "--sfu-admin-key", ADMIN_KEY)
    page, _ = await open_demo(browser_context, f"{gw.url}/demo#{uuid.uuid4()}")
    await expect(page.locator("#media")).to_have_text("mesh")
    await expect(page.locator("#sfu-link a")).to_have_attribute("href", "/demo?media=sfu")

    plain = await gateway()
    page, _ = await open_demo(browser_context, f"{plain.url}/demo#{uuid.uuid4()}")
    await expect(page.locator("#media")).to_have_text("mesh")
    assert await page.locator("#sfu-link").is_hidden()
