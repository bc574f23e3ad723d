"""Debian's headless Chromium under Playwright, screenshotting each page when a test fails."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.support.reporting import attach_log, phase_failed

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A fresh headless Chromium (``/usr/bin/chromium``; never a downloaded browser)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} not found; `make test` installs Debian's chromium "
            "(scripts/setup-test-deps.sh)",
            pytrace=False,
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def browser_context(
    request: pytest.FixtureRequest, browser: Browser
) -> AsyncIterator[BrowserContext]:
    """A browser context whose pages are screenshotted into test-artifacts/ if the test fails.

    Console messages and page errors of every page are collected and shown in the failure
    report.
    """
    context = await browser.new_context()
    console: list[str] = []

    def watch(page: Page) -> None:
        index = len(context.pages) - 1  # the new page is already listed
        page.on("console", lambda msg: console.append(f"[page {index}] {msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: console.append(f"[page {index}] pageerror: {err}"))

    context.on("page", watch)
    attach_log(request.node, "browser console", lambda: "\n".join(console))
    try:
        yield context
    finally:
        if phase_failed(request.node):
            ARTIFACTS.mkdir(exist_ok=True)
            stem = _safe_name(request.node.nodeid)
            for index, page in enumerate(context.pages):
                if not page.is_closed():
                    await page.screenshot(path=str(ARTIFACTS / f"{stem}-page{index}.png"))
        await context.close()


@pytest.fixture
async def page(browser_context: BrowserContext) -> Page:
    """One page in ``browser_context`` (screenshotted on failure)."""
    return await browser_context.new_page()
