"""A HAR captured over CDP from headless Chromium on the /demo page, in Chrome DevTools' shape,
imported with `import-har` and replayed by 10 virtual users against a real gateway."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from gateway.cli import main  # `python -m gateway loadtest …`, as docs/loadtest.md runs it
from gateway.recording import SCRUBBED, read_recording
from loadtest.har_capture import HarCapture, launch_chromium
from loadtest.plan import build_plan
from tests.support.browser import CHROMIUM
from tests.support.gateway_proc import GatewayFactory

pytestmark = pytest.mark.browser

GATEWAY_FLAGS = (
    "--trust-token-as-user-id", "--no-rate-limits", "--max-connections-per-ip", "1000000",
)  # fmt: skip
CHAT = "hello from a captured session"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """The suite's Chromium launched with the capture's flags (plain host ICE candidates)."""
    async with async_playwright() as playwright:
        launched = await launch_chromium(playwright, CHROMIUM)
        try:
            yield launched
        finally:
            await launched.close()


def _text_frames(entry: dict[str, Any], kind: str) -> list[list[Any]]:
    return [json.loads(m["data"]) for m in entry["_webSocketMessages"] if m["type"] == kind
            and m["opcode"] == 1]  # fmt: skip


def _reply_to(entry: dict[str, Any], topic: str, event: str) -> tuple[list[Any], dict[str, Any]]:
    """The first `event` pushed on `topic` by this socket, and the phx_reply with its ref."""
    push = next(f for f in _text_frames(entry, "send") if f[2] == topic and f[3] == event)
    reply = next(
        f for f in _text_frames(entry, "receive") if f[3] == "phx_reply" and f[1] == push[1]
    )
    return push, reply[4]


def _started(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00")).timestamp()


async def _open_demo(page: Page, base: str, user: str, room: uuid.UUID) -> None:
    await page.goto(f"{base}/demo?user={user}#{room}")
    await expect(page.locator("#user-id")).to_have_text(user)


@pytest.mark.timeout(150)
async def test_har_captured_on_the_demo_page_replays_with_ten_users(
    gateway: GatewayFactory, browser_context: BrowserContext, page: Page, tmp_path: Path
) -> None:
    gw = await gateway(*GATEWAY_FLAGS)
    room = uuid.uuid4()
    topic = f"room:{room}"
    other = await browser_context.new_page()
    capture = HarCapture()
    for p in (page, other):
        await capture.attach(p)

    # Two tabs in one room: presence, a real offer/answer/ICE exchange, then a chat message.
    await _open_demo(page, gw.url, "har-alice", room)
    await _open_demo(other, gw.url, "har-bob", room)
    for p in (page, other):
        await expect(p.locator("#conn-state")).to_have_text("connected", timeout=20_000)
    await page.fill("#chat-input", CHAT)
    await page.click("#chat-form button")
    await expect(other.locator("#chat li")).to_contain_text([f"har-alic: {CHAT}"])
    await expect(page.locator("#chat li")).to_contain_text([f"me: {CHAT}"])
    await capture.settle()
    await capture.finish([page, other])
    browser = browser_context.browser
    assert browser is not None
    har_path = capture.write(tmp_path / "demo.har", browser.version)

    # The HAR as Chrome DevTools saves it: an entry per socket, frames in _webSocketMessages.
    har = json.loads(har_path.read_text())["log"]
    assert har["version"] == "1.2"
    assert [p["id"] for p in har["pages"]] == ["page_1", "page_2"]
    entries = har["entries"]
    assert [e["pageref"] for e in entries] == ["page_1", "page_2"]
    for entry, user in zip(entries, ("har-alice", "har-bob"), strict=True):
        assert entry["_resourceType"] == "websocket"
        assert entry["response"]["status"] == 101
        url = urlsplit(entry["request"]["url"])
        assert url.path == "/socket/websocket"
        assert parse_qs(url.query) == {"token": [user], "vsn": ["2.0.0"]}
        assert {"name": "token", "value": user} in entry["request"]["queryString"]
        times = [m["time"] for m in entry["_webSocketMessages"]]
        assert times == sorted(times) and 0 <= times[0] - _started(entry) < 5.0
        join, reply = _reply_to(entry, topic, "phx_join")
        assert join[4] == {"tracks": ["video"]} and join[0] == join[1]
        assert reply == {"status": "ok", "response": {"user_id": user}}
    alice, bob = entries
    push, reply = _reply_to(alice, topic, "new_msg")
    assert push[4] == {"body": CHAT} and reply["status"] == "ok"
    sent_events = {f[3] for e in entries for f in _text_frames(e, "send")}
    assert {"offer", "answer", "ice-candidate"} <= sent_events
    assert any(f[3] == "new_msg" and f[4]["body"] == CHAT for f in _text_frames(bob, "receive"))

    # import-har: one recording per socket, token scrubbed.
    recordings = tmp_path / "recordings"
    assert await asyncio.to_thread(main, ["loadtest", "import-har", str(har_path),
                                          "-o", str(recordings)]) == 0  # fmt: skip
    files = sorted(recordings.glob("*.jsonl"))
    assert [f.name for f in files] == ["demo-0.jsonl", "demo-1.jsonl"]
    plans = [build_plan(read_recording(f)) for f in files]
    assert [p.params for p in plans] == [{"token": SCRUBBED}] * 2
    assert [p.user_id for p in plans] == ["har-alice", "har-bob"]
    # Pushes whose reply was recorded are timed; 10 users are 5 copies of the recorded pair.
    answered = sum(1 for p in plans for s in p.steps if s.expect and s.event != "phx_join")
    assert answered >= 4  # at least the chat message, an offer, an answer and a candidate

    report_path = tmp_path / "report.json"
    code = await asyncio.to_thread(main, [
        "loadtest", "replay", str(recordings), "--url", gw.ws_url, "--users", "10",
        "--token-template", "user-{n}", "--json", str(report_path), "--max-error-rate", "0",
        "--quiet",
    ])  # fmt: skip
    report = json.loads(report_path.read_text())
    assert report["errors"] == 0, report["errors_by_reason"]
    assert code == 0, report["thresholds"]
    assert report["users"] == 10 and report["users_started"] == 10
    assert report["connects"] == 10 and report["disconnects"] == 0
    latency = report["latency"]
    assert latency["connect"]["count"] == 10
    assert latency["join"]["count"] == 10
    assert latency["reply"]["count"] == 5 * answered
    assert 0 < latency["reply"]["p50_ms"] <= latency["reply"]["p99_ms"]
    assert report["messages_sent"] >= 5 * sum(len(p.steps) for p in plans)


@pytest.mark.timeout(90)
async def test_capture_har_command_writes_the_demo_sessions(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw = await gateway(*GATEWAY_FLAGS)
    room = uuid.uuid4()
    har_path = tmp_path / "cli.har"
    code = await asyncio.to_thread(main, [
        "loadtest", "capture-har", f"{gw.url}/demo?user=cli-user#{room}", "-o", str(har_path),
        "--seconds", "2", "--pages", "2", "--chromium", CHROMIUM,
    ])  # fmt: skip
    assert code == 0
    har = json.loads(har_path.read_text())["log"]
    assert [p["title"] for p in har["pages"]] == ["gateway room demo"] * 2
    assert har["browser"]["name"] == "Chromium"
    entries = har["entries"]
    assert len(entries) == 2
    for entry in entries:
        assert entry["_resourceType"] == "websocket" and entry["response"]["status"] == 101
        _, reply = _reply_to(entry, f"room:{room}", "phx_join")
        assert reply == {"status": "ok", "response": {"user_id": "cli-user"}}
        # Both tabs are one user: the presence state lists it once.
        state = next(f[4] for f in _text_frames(entry, "receive") if f[3] == "presence_state")
        assert list(state) == ["cli-user"]
