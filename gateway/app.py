"""Composition root: settings -> backends -> pub/sub -> router -> the aiohttp application."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.appkeys import SERVICES, SETTINGS
from gateway.channels.echo import EchoChannel
from gateway.channels.room import RoomChannel
from gateway.channels.router import Router
from gateway.config import Settings
from gateway.presence.memory import MemoryPresenceStore
from gateway.presence.tracker import PresenceTracker
from gateway.pubsub.adapter import LocalAdapter, PubSubAdapter
from gateway.pubsub.core import PubSub
from gateway.pubsub.redis import RedisPubSubAdapter
from gateway.runtime.longpoll_locator import LocalSessionLocator, SessionLocator
from gateway.runtime.longpoll_redis import RedisSessionLocator
from gateway.services import Services
from gateway.signaling.grace import MemoryGraceQueue
from gateway.signaling.rooms import RoomLimits, Rooms
from gateway.signaling.sessions import MemorySessionStore
from gateway.transports.longpoll import add_longpoll
from gateway.transports.rooms_http import add_room_routes
from gateway.transports.websocket import websocket_handler


def build_router(settings: Settings) -> Router:
    router = Router()
    if settings.echo:
        router.route("echo:*", EchoChannel)
    router.route("room:*", RoomChannel)
    return router


def build_rooms(settings: Settings, pubsub: PubSub) -> Rooms:
    """The room channels' shared parts, on the memory backends (Redis comes with scale-out)."""
    presence = PresenceTracker(
        MemoryPresenceStore(),
        pubsub,
        settings.node,
        coalesce_ms=settings.presence_coalesce_ms,
        ttl_s=settings.presence_ttl_s,
    )
    sessions = MemorySessionStore(settings.session_retention_s)
    return Rooms(RoomLimits.from_settings(settings), pubsub, presence, sessions, MemoryGraceQueue())


def build_pubsub_adapter(settings: Settings) -> PubSubAdapter:
    """In-memory for one process; Redis (or Redis Cluster) when the rooms span processes."""
    if not settings.redis_url:
        return LocalAdapter()
    return RedisPubSubAdapter(
        settings.redis_url,
        settings.node,
        cluster=settings.redis_cluster,
        buffer_limit=settings.redis_buffer,
        backoff_max_s=settings.redis_backoff_max_ms / 1000,
    )


def build_services(settings: Settings) -> Services:
    pubsub = PubSub(settings.node, build_pubsub_adapter(settings))
    services = Services(settings, pubsub, build_router(settings), time.monotonic)
    services.extras["rooms"] = build_rooms(settings, pubsub)
    return services


def build_session_locator(settings: Settings) -> SessionLocator:
    """How long-poll requests reach the node owning their session: through Redis, if any."""
    if settings.redis_url:
        timeout_s = settings.longpoll_pubsub_timeout_ms / 1000
        return RedisSessionLocator(settings.redis_url, settings.node, timeout_s)
    return LocalSessionLocator()


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
        # Degraded: this node still serves its own clients, but not across nodes.
        status = "unavailable" if services.hub.draining else "degraded"
        return web.json_response({"status": status, "problems": problems}, status=503)
    return web.json_response({"status": "ready", "connections": len(services.hub)})


def build_app(settings: Settings, services: Services | None = None) -> web.Application:
    services = services or build_services(settings)
    app = web.Application()
    app[SERVICES] = services
    app[SETTINGS] = settings
    base = settings.socket_path
    if settings.websocket:
        app.router.add_route("*", f"{base}/websocket", websocket_handler)
    if settings.longpoll:
        add_longpoll(app, services, build_session_locator(settings))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    rooms: Rooms = services.extras["rooms"]
    add_room_routes(app, rooms, settings.admin_token, settings.demo)

    async def on_startup(app: web.Application) -> None:
        await services.pubsub.start()
        await rooms.start()

    async def on_cleanup(app: web.Application) -> None:
        await rooms.stop()
        await services.pubsub.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
