"""The demo joins its room before the camera answers: chat, participants and the data channel
work while the camera prompt waits or after it was refused (headless Chromium, real gateway)."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.support.gateway_proc import GatewayFactory

pytestmark = pytest.mark.browser

# The user's answer to the camera prompt, given before the page's own script runs.
REFUSED = """
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException("Permission denied", "NotAllowedError"))
"""
UNANSWERED = "navigator.mediaDevices.getUserMedia = () => new Promise(() => {})"


async def open_demo(page: Page, url: str, answer: str) -> str:
    await page.add_init_script(answer)
    await page.goto(url)
    await expect(page.locator("#user-id")).not_to_have_text("…", timeout=15_000)
    return await page.locator("#user-id").inner_text()


@pytest.mark.parametrize("answer", [REFUSED, UNANSWERED], ids=["refused", "unanswered"])
async def test_chat_and_participants_without_a_camera(
    gateway: GatewayFactory, browser_context: BrowserContext, page: Page, answer: str
) -> None:
    gw = await gateway()
    url = f"{gw.url}/demo#{uuid.uuid4()}"
    other = await browser_context.new_page()
    ids = [await open_demo(p, url, answer) for p in (page, other)]

    for p in (page, other):
        for user in ids:
            await expect(p.locator(f'#participants li[data-user="{user}"]')).to_have_count(1)
    if answer is REFUSED:
        await expect(page.locator("#media-state")).to_contain_text("refused (NotAllowedError)")
    else:
        await expect(page.locator("#media-state")).to_have_text("waiting for permission")

    await other.fill("#chat-input", "no camera needed")
    await other.click("#chat-form button")
    await expect(page.locator("#chat li")).to_contain_text([f"{ids[1][:8]}: no camera needed"])

    # The data channel still comes up between the two pages.
    for p in (page, other):
        await expect(p.locator("#dc-state")).to_have_text("open", timeout=20_000)
