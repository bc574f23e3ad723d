"""Composition root: settings -> backends -> pub/sub -> router -> the aiohttp application."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.appkeys import SERVICES, SETTINGS
from gateway.channels.echo import EchoChannel
from gateway.channels.router import Router
from gateway.config import Settings
from gateway.pubsub.core import PubSub
from gateway.services import Services
from gateway.transports.websocket import websocket_handler


def build_router(settings: Settings) -> Router:
    router = Router()
    if settings.echo:
        router.route("echo:*", EchoChannel)
    return router


def build_services(settings: Settings) -> Services:
    pubsub = PubSub(settings.node)
    return Services(settings, pubsub, build_router(settings), time.monotonic)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    problems: list[str] = []
    if services.hub.draining:
        problems.append("draining")
    if not services.pubsub.adapter.healthy:
        problems.append("pubsub backend unreachable")
    if problems:
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    return web.json_response({"status": "ready", "connections": len(services.hub)})


def build_app(settings: Settings, services: Services | None = None) -> web.Application:
    services = services or build_services(settings)
    app = web.Application()
    app[SERVICES] = services
    app[SETTINGS] = settings
    base = settings.socket_path
    if settings.websocket:
        app.router.add_route("*", f"{base}/websocket", websocket_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    async def on_startup(app: web.Application) -> None:
        await services.pubsub.start()

    async def on_cleanup(app: web.Application) -> None:
        await services.pubsub.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
