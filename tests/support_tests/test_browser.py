"""Debian's Chromium launches headless under Playwright with fake media devices and WebRTC."""

import pytest
from playwright.async_api import Browser, Page

from tests.support.browser import CHROMIUM
from tests.support.gateway_proc import GatewayFactory

LOOPBACK_DATA_CHANNEL = """async () => {
  const a = new RTCPeerConnection(), b = new RTCPeerConnection()
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate)
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate)
  const channel = a.createDataChannel("probe")
  const opened = new Promise((resolve) => { channel.onopen = () => resolve(channel.readyState) })
  await a.setLocalDescription()
  await b.setRemoteDescription(a.localDescription)
  await b.setLocalDescription()
  await a.setRemoteDescription(b.localDescription)
  return await opened
}"""


@pytest.mark.browser
async def test_launches_debian_chromium(browser: Browser) -> None:
    assert CHROMIUM == "/usr/bin/chromium"
    assert browser.is_connected()
    assert browser.version.split(".")[0].isdigit()


@pytest.mark.browser
async def test_fake_media_and_webrtc_on_the_gateway_origin(
    gateway: GatewayFactory, page: Page
) -> None:
    gw = await gateway()
    response = await page.goto(f"{gw.url}/healthz")
    assert response is not None and response.status == 200
    assert await page.evaluate("isSecureContext") is True
    kinds = await page.evaluate(
        "navigator.mediaDevices.getUserMedia({audio: true, video: true})"
        ".then((s) => s.getTracks().map((t) => t.kind).sort())"
    )
    assert kinds == ["audio", "video"]
    assert await page.evaluate(LOOPBACK_DATA_CHANNEL) == "open"
