"""Capture the WebSocket traffic of browser pages over the Chrome DevTools Protocol into a HAR
file shaped as Chrome DevTools saves it ("Save all as HAR with content"), frames included.

Playwright's own HAR recorder leaves WebSocket frames out; DevTools keeps them in
`entries[]._webSocketMessages`. This module listens to the same `Network.webSocket*` events
DevTools does, turns their monotonic timestamps into wall-clock seconds the way DevTools does
(the handshake's `wallTime` minus its `timestamp`), and writes one entry per socket: `request`,
`response` (101 for an accepted upgrade), `_resourceType: "websocket"`, `_webSocketMessages`.
Only WebSocket entries are written; `import-har` ignores every other entry anyway.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from playwright.async_api import Browser, CDPSession, Page, Playwright, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Host ICE candidates as plain addresses: mDNS names do not resolve between headless pages.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
)
WS_EVENTS = (
    "Network.webSocketCreated",
    "Network.webSocketWillSendHandshakeRequest",
    "Network.webSocketHandshakeResponseReceived",
    "Network.webSocketFrameSent",
    "Network.webSocketFrameReceived",
    "Network.webSocketFrameError",
    "Network.webSocketClosed",
)
# DevTools' NetworkRequest frame types; an error frame carries opcode -1.
_FRAME_TYPES = {
    "Network.webSocketFrameSent": "send",
    "Network.webSocketFrameReceived": "receive",
}


def _iso(epoch_s: float) -> str:
    # DevTools writes `new Date(...).toJSON()`: UTC, milliseconds, a trailing Z.
    moment = datetime.datetime.fromtimestamp(epoch_s, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _name_values(headers: dict[str, Any] | None) -> list[dict[str, str]]:
    return [{"name": k, "value": str(v)} for k, v in (headers or {}).items()]


@dataclass
class _Socket:
    """What DevTools' NetworkRequest keeps for one WebSocket."""

    page: int
    url: str
    initiator: dict[str, Any] | None
    created_wall: float
    wall_offset: float | None = None  # wall seconds minus monotonic seconds
    start_mono: float | None = None
    end_mono: float | None = None
    request_headers: dict[str, Any] = field(default_factory=dict)
    status: int = 0
    status_text: str = ""
    response_headers: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class _Page:
    started_wall: float
    title: str = ""


class HarCapture:
    """Collects the `Network.webSocket*` events of the pages it is attached to."""

    def __init__(self) -> None:
        self._pages: list[_Page] = []
        self._sessions: list[CDPSession] = []
        self._sockets: dict[tuple[int, str], _Socket] = {}
        self._last_event = time.monotonic()

    async def attach(self, page: Page) -> None:
        """Listen to `page` from now on; attach before navigating to see its first socket."""
        index = len(self._pages)
        self._pages.append(_Page(time.time()))
        cdp = await page.context.new_cdp_session(page)
        for method in WS_EVENTS:
            cdp.on(method, lambda params, m=method: self.handle(index, m, params))
        await cdp.send("Network.enable")
        self._sessions.append(cdp)

    def handle(self, page: int, method: str, params: dict[str, Any]) -> None:
        """Apply one CDP event, as DevTools' NetworkManager does."""
        self._last_event = time.monotonic()
        key = (page, str(params.get("requestId")))
        if method == "Network.webSocketCreated":
            self._sockets[key] = _Socket(page, params["url"], params.get("initiator"), time.time())
            return
        sock = self._sockets.get(key)
        if sock is None:
            return  # created before we attached
        ts = float(params.get("timestamp", 0.0))
        if method == "Network.webSocketWillSendHandshakeRequest":
            sock.wall_offset = float(params.get("wallTime", time.time())) - ts
            sock.start_mono = ts
            sock.request_headers = dict(params.get("request", {}).get("headers", {}))
        elif method == "Network.webSocketHandshakeResponseReceived":
            response = params.get("response", {})
            sock.status = int(response.get("status", 0))
            sock.status_text = str(response.get("statusText", ""))
            sock.response_headers = dict(response.get("headers", {}))
        elif method in _FRAME_TYPES:
            frame = params["response"]
            sock.messages.append(
                {
                    "type": _FRAME_TYPES[method],
                    "time": self._wall(sock, ts),
                    "opcode": int(frame["opcode"]),
                    "data": frame["payloadData"],
                }
            )
        elif method == "Network.webSocketFrameError":
            sock.error = str(params.get("errorMessage", ""))
            sock.messages.append(
                {"type": "error", "time": self._wall(sock, ts), "opcode": -1, "data": sock.error}
            )
        elif method == "Network.webSocketClosed":
            sock.end_mono = ts

    def _wall(self, sock: _Socket, mono: float) -> float:
        if sock.wall_offset is None:
            return time.time()
        return sock.wall_offset + mono

    async def settle(self, quiet_s: float = 0.3, timeout_s: float = 5.0) -> None:
        """Wait until no WebSocket event has arrived for `quiet_s` (frames in flight land)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            idle = time.monotonic() - self._last_event
            if idle >= quiet_s:
                return
            await asyncio.sleep(quiet_s - idle)

    async def finish(self, pages: list[Page]) -> None:
        """Note the pages' titles and stop listening."""
        for meta, page in zip(self._pages, pages, strict=False):
            if not page.is_closed():
                meta.title = await page.title()
        for cdp in self._sessions:
            await cdp.detach()
        self._sessions.clear()

    @property
    def sockets(self) -> int:
        return len(self._sockets)

    @property
    def frames(self) -> int:
        return sum(len(s.messages) for s in self._sockets.values())

    def har(self, browser_version: str = "") -> dict[str, Any]:
        """The HAR 1.2 document: one page per attached page, one entry per socket."""
        log: dict[str, Any] = {
            "version": "1.2",
            "creator": {"name": "gateway-loadtest-capture-har", "version": "1"},
        }
        if browser_version:
            log["browser"] = {"name": "Chromium", "version": browser_version}
        log["pages"] = [
            {
                "startedDateTime": _iso(p.started_wall),
                "id": f"page_{i + 1}",
                "title": p.title,
                "pageTimings": {"onContentLoad": -1, "onLoad": -1},
            }
            for i, p in enumerate(self._pages)
        ]
        log["entries"] = [_entry(s) for s in self._sockets.values()]
        return {"log": log}

    def write(self, path: Path | str, browser_version: str = "") -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.har(browser_version), indent=2) + "\n")
        return path


def _entry(sock: _Socket) -> dict[str, Any]:
    started = sock.created_wall
    if sock.wall_offset is not None and sock.start_mono is not None:
        started = sock.wall_offset + sock.start_mono
    url = urlsplit(sock.url)
    query = [{"name": k, "value": v} for k, v in parse_qsl(url.query, keep_blank_values=True)]
    # DevTools has no request timing for a socket: only what it cannot know is -1.
    timings = {"blocked": -1, "dns": -1, "ssl": -1, "connect": -1, "send": 0, "wait": 0,
               "receive": 0, "_blocked_queueing": -1}  # fmt: skip
    entry: dict[str, Any] = {
        "_initiator": sock.initiator,
        "_priority": None,
        "_resourceType": "websocket",
        "cache": {},
        "pageref": f"page_{sock.page + 1}",
        "request": {
            "method": "GET",
            "url": sock.url,
            "httpVersion": "HTTP/1.1",
            "headers": _name_values(sock.request_headers),
            "queryString": query,
            "cookies": [],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": sock.status,
            "statusText": sock.status_text,
            "httpVersion": "HTTP/1.1",
            "headers": _name_values(sock.response_headers),
            "cookies": [],
            "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": 0,
            "_transferSize": 0,
            "_error": sock.error,
        },
        "serverIPAddress": "",
        "startedDateTime": _iso(started),
        "time": 0,
        "timings": timings,
        "_webSocketMessages": sock.messages,
    }
    return entry


async def launch_chromium(playwright: Playwright, executable: str = CHROMIUM) -> Browser:
    """Headless Chromium from `executable` (never a downloaded browser)."""
    return await playwright.chromium.launch(
        executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
    )


@dataclass
class CaptureResult:
    path: Path
    sockets: int
    frames: int


async def capture_url(
    url: str, out: Path | str, seconds: float, pages: int = 1, executable: str = CHROMIUM
) -> CaptureResult:
    """Open `url` in `pages` tabs of one headless Chromium for `seconds`, then write the HAR.

    Tabs share one browser context, as tabs of one window do; a URL naming a room (the demo
    page's `#<room id>`) puts them in the same room.
    """
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright, executable)
        try:
            context = await browser.new_context()
            capture = HarCapture()
            opened: list[Page] = []
            for _ in range(max(1, pages)):
                page = await context.new_page()
                await capture.attach(page)
                await page.goto(url)
                opened.append(page)
            await asyncio.sleep(seconds)
            await capture.settle()
            await capture.finish(opened)
            path = capture.write(out, browser.version)
            return CaptureResult(path, capture.sockets, capture.frames)
        finally:
            await browser.close()
