"""HTTP endpoints of the rooms: the signaling-session read API and the `/demo` page."""

from __future__ import annotations

import hmac
from pathlib import Path

import msgspec
from aiohttp import web

from gateway.signaling.payloads import is_room_id
from gateway.signaling.rooms import Rooms
from gateway.signaling.sessions import StoreUnavailable

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
PHOENIX_MJS = STATIC_DIR / "node_modules" / "phoenix" / "priv" / "static" / "phoenix.mjs"
ROOMS_KEY = web.AppKey("rooms", Rooms)
ADMIN_TOKEN_KEY = web.AppKey("admin_token", str)


def _authorized(request: web.Request, token: str) -> bool:
    # No token configured: the endpoint is closed, not open.
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


async def session_handler(request: web.Request) -> web.Response:
    """`GET /api/rooms/{room_id}/session`: the room's signaling session as JSON."""
    if not _authorized(request, request.app[ADMIN_TOKEN_KEY]):
        return web.json_response(
            {"error": "unauthorized"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="gateway"'},
        )
    room_id = request.match_info["room_id"]
    if not is_room_id(room_id):
        return web.json_response({"error": "invalid room id"}, status=400)
    rooms = request.app[ROOMS_KEY]
    await rooms.bookkeeper.flush()  # what this node relayed before the request is in it
    try:
        session = await rooms.sessions.get(room_id)
    except StoreUnavailable:
        return web.json_response({"error": "database unavailable"}, status=503)
    if session is None:
        return web.json_response({"error": "no such session"}, status=404)
    return web.Response(body=msgspec.json.encode(session), content_type="application/json")


async def _demo_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "demo.html")


async def _demo_js(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "demo.js", headers={"Content-Type": "text/javascript"})


async def _demo_sfu_js(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "demo_sfu.js", headers={"Content-Type": "text/javascript"})


async def _phoenix_js(request: web.Request) -> web.StreamResponse:
    if not PHOENIX_MJS.is_file():
        # `make run` installs it (npm ci in gateway/static); say so instead of a bare 404.
        return web.Response(
            status=503, text="phoenix.mjs is not installed: run `npm ci` in gateway/static"
        )
    return web.FileResponse(PHOENIX_MJS, headers={"Content-Type": "text/javascript"})


def add_room_routes(app: web.Application, rooms: Rooms, admin_token: str, demo: bool) -> None:
    """Mount the session API, and the demo page when `demo` is on."""
    app[ROOMS_KEY] = rooms
    app[ADMIN_TOKEN_KEY] = admin_token
    app.router.add_get("/api/rooms/{room_id}/session", session_handler)
    if demo:
        app.router.add_get("/demo", _demo_page)
        app.router.add_get("/demo/", _demo_page)
        app.router.add_get("/demo/demo.js", _demo_js)
        app.router.add_get("/demo/demo_sfu.js", _demo_sfu_js)
        app.router.add_get("/demo/phoenix.mjs", _phoenix_js)
