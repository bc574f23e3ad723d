"""The /demo page and its assets are served when `demo` is on, and absent when it is off."""

from __future__ import annotations

import aiohttp

from tests.rooms.conftest import StartServer


async def fetch(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def test_demo_page_and_assets(room_server: StartServer) -> None:
    srv = await room_server(demo=True)
    status, kind, html = await fetch(f"{srv.http}/demo")
    assert status == 200 and kind.startswith("text/html")
    assert '<script type="module" src="/demo/demo.js">' in html
    status, kind, js = await fetch(f"{srv.http}/demo/demo.js")
    assert status == 200 and kind.startswith("text/javascript")
    assert 'from "/demo/phoenix.mjs"' in js
    status, kind, js = await fetch(f"{srv.http}/demo/demo_sfu.js")
    assert status == 200 and kind.startswith("text/javascript")
    assert "export function sfuCall" in js
    # The official client from the npm package, not a copy.
    status, kind, phoenix = await fetch(f"{srv.http}/demo/phoenix.mjs")
    assert status == 200 and kind.startswith("text/javascript")
    assert "export {" in phoenix and "Presence" in phoenix


async def test_demo_can_be_switched_off(room_server: StartServer) -> None:
    srv = await room_server(demo=False)
    for path in ("/demo", "/demo/demo.js", "/demo/demo_sfu.js", "/demo/phoenix.mjs"):
        assert (await fetch(f"{srv.http}{path}"))[0] == 404
