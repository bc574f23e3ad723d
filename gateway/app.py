"""Composition root: settings -> backends -> pub/sub -> router -> the aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

from gateway.appkeys import SERVICES, SETTINGS
from gateway.channels.echo import EchoChannel
from gateway.channels.room import RoomChannel
from gateway.channels.router import Router
from gateway.config import Settings
from gateway.history.store import PostgresSessionStore, build_history
from gateway.observability import metrics, tally
from gateway.observability.exposition import render_latest
from gateway.observability.looplag import start_loop_lag_monitor
from gateway.presence.memory import MemoryPresenceStore
from gateway.presence.redis import RedisPresenceStore
from gateway.presence.store import PresenceStore
from gateway.presence.tracker import PresenceTracker
from gateway.pubsub.adapter import LocalAdapter, PubSubAdapter
from gateway.pubsub.core import PubSub
from gateway.pubsub.redis import RedisPubSubAdapter
from gateway.runtime.longpoll_forward import PubSubSessionLocator
from gateway.runtime.longpoll_locator import LocalSessionLocator, SessionLocator
from gateway.services import Services
from gateway.sfu.bridge import SfuBridge
from gateway.sfu.janus import JanusClient
from gateway.sfu.modes import MemoryRoomModes, RedisRoomModes, RoomModes
from gateway.signaling.authorize import load_authorizer
from gateway.signaling.grace import GraceQueue, MemoryGraceQueue
from gateway.signaling.redis import RedisGraceQueue, RedisSessionStore, StoreClient, connect_store
from gateway.signaling.rooms import RoomLimits, Rooms
from gateway.signaling.sessions import MemorySessionStore, SessionStore
from gateway.transports.history_http import add_history_routes
from gateway.transports.longpoll import add_longpoll
from gateway.transports.rooms_http import add_room_routes
from gateway.transports.websocket import websocket_handler


def build_router(settings: Settings) -> Router:
    router = Router()
    if settings.listen.echo:
        router.route("echo:*", EchoChannel)
    router.route("room:*", RoomChannel)
    return router


def build_rooms(
    settings: Settings,
    pubsub: PubSub,
    client: StoreClient | None = None,
    history: SessionStore | None = None,
) -> Rooms:
    """The room channels' shared parts: memory backends, or Redis ones every node shares;
    signaling sessions in PostgreSQL (`history`) when a database is configured."""
    config = settings.rooms
    store: PresenceStore
    sessions: SessionStore
    grace: GraceQueue
    if client is not None:
        store = RedisPresenceStore(client)
        sessions = RedisSessionStore(client, config.session_retention_s)
        grace = RedisGraceQueue(client)
    else:
        store = MemoryPresenceStore()
        sessions = MemorySessionStore(
            config.session_retention_s,
            max_rooms=config.session_max_rooms,
            max_chat_bytes=config.chat_max_bytes,
        )
        grace = MemoryGraceQueue()
    if history is not None:
        sessions = history
    modes: RoomModes = RedisRoomModes(client) if client is not None else MemoryRoomModes()
    presence = PresenceTracker(
        store,
        pubsub,
        settings.node,
        coalesce_ms=config.presence_coalesce_ms,
        ttl_s=config.presence_ttl_s,
    )
    return Rooms(
        RoomLimits.from_config(config),
        pubsub,
        presence,
        sessions,
        grace,
        authorize=load_authorizer(settings.auth.room_authorizer),
        ice=settings.ice.policy(),
        sfu=build_sfu(settings),
        modes=modes,
        default_media="sfu" if settings.sfu.room_media == "sfu" else "mesh",
    )


def build_sfu(settings: Settings) -> SfuBridge | None:
    """The bridge to Janus (one session per --sfu-url, made on first use); none without."""
    urls = settings.sfu.urls()
    if not urls:
        return None
    timeout_s = settings.sfu.sfu_timeout_ms / 1000
    return SfuBridge(
        urls,
        lambda url: JanusClient(url, timeout_s),
        admin_key=settings.sfu.sfu_admin_key,
        max_publishers=settings.rooms.room_max_members,
    )


def build_pubsub_adapter(settings: Settings) -> PubSubAdapter:
    """In-memory for one process; Redis (or Redis Cluster) when the rooms span processes."""
    redis = settings.redis
    if not redis.redis_url:
        return LocalAdapter()
    return RedisPubSubAdapter(
        redis.redis_url,
        settings.node,
        cluster=redis.redis_cluster,
        buffer_limit=redis.redis_buffer,
        backoff_max_s=redis.redis_backoff_max_ms / 1000,
    )


def build_services(settings: Settings) -> Services:
    pubsub = PubSub(settings.node, build_pubsub_adapter(settings))
    services = Services(settings, pubsub, build_router(settings), time.monotonic)
    client = build_store_client(settings)
    if client is not None:
        services.extras["redis"] = client  # the room stores' connection pool
    history = build_history_store(settings)
    if history is not None:
        services.extras["history"] = history
    services.extras["rooms"] = build_rooms(settings, pubsub, client, history)
    return services


def build_history_store(settings: Settings) -> PostgresSessionStore | None:
    """Sessions and chat in PostgreSQL, with --database-url; none without."""
    history = settings.history
    if not history.database_url:
        return None
    return build_history(
        history.database_url,
        queue=history.database_queue,
        batch=history.database_batch,
        backoff_max_s=history.database_backoff_max_ms / 1000,
        migrate=history.database_migrate,
        retention_days=history.retention_days,
        flush_timeout_s=history.database_flush_timeout_s,
    )


def build_store_client(settings: Settings) -> StoreClient | None:
    """The room stores' Redis client; none without Redis."""
    if not settings.redis.redis_url:
        return None
    return connect_store(settings.redis.redis_url, settings.redis.redis_cluster)


def build_session_locator(settings: Settings, pubsub: PubSub) -> SessionLocator:
    """How long-poll requests reach the node owning their session: through the pub/sub that
    joins the nodes (Redis or Redis Cluster), if any."""
    if settings.redis.redis_url:
        timeout_s = settings.longpoll.longpoll_pubsub_timeout_ms / 1000
        return PubSubSessionLocator(pubsub, settings.node, timeout_s)
    return LocalSessionLocator()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics_handler(request: web.Request) -> web.Response:
    ready_problems(request.app[SERVICES])
    tally.flush()
    body, content_type = render_latest()
    return web.Response(body=body, headers={"Content-Type": content_type})


def ready_problems(services: Services) -> list[str]:
    """Why this node should not get new traffic (empty when ready); also sets gateway_ready."""
    problems: list[str] = []
    if services.hub.draining:
        problems.append("draining")
    if not services.pubsub.adapter.healthy:
        problems.append("pubsub backend unreachable")
    metrics.READY.set(0 if problems else 1)
    history: PostgresSessionStore | None = services.extras.get("history")
    if history is not None:
        history.writer.update_gauge()
    return problems


async def _flush_tallies(services: Services) -> None:
    limiter = services.limiter
    evicted = 0
    while True:
        await asyncio.sleep(1.0)
        tally.flush()
        metrics.RATELIMIT_KEYS.set(len(limiter))
        if limiter.evicted > evicted:
            metrics.RATELIMIT_EVICTED.inc(limiter.evicted - evicted)
            evicted = limiter.evicted


async def readyz(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    problems = ready_problems(services)
    extra: dict[str, Any] = {}
    history: PostgresSessionStore | None = services.extras.get("history")
    if history is not None:
        # Not a reason to take the node out: relay and chat work, history writes queue up.
        extra["database"] = "ok" if history.healthy else "degraded"
    rooms: Rooms = services.extras["rooms"]
    if rooms.sfu is not None:
        # Janus down costs SFU rooms their media, not the node its signaling and chat.
        extra["sfu"] = rooms.sfu.states()
    if problems:
        # Degraded: this node still serves its own clients, but not across nodes.
        status = "unavailable" if services.hub.draining else "degraded"
        return web.json_response({"status": status, "problems": problems, **extra}, status=503)
    return web.json_response({"status": "ready", "connections": len(services.hub), **extra})


def build_app(settings: Settings, services: Services | None = None) -> web.Application:
    services = services or build_services(settings)
    app = web.Application()
    app[SERVICES] = services
    app[SETTINGS] = settings
    base = settings.listen.socket_path
    if settings.listen.websocket:
        app.router.add_route("*", f"{base}/websocket", websocket_handler)
    if settings.listen.longpoll:
        add_longpoll(app, services, build_session_locator(settings, services.pubsub))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    rooms: Rooms = services.extras["rooms"]
    add_room_routes(app, rooms, settings.auth.admin_token, settings.listen.demo)
    history: PostgresSessionStore | None = services.extras.get("history")
    add_history_routes(app, history)

    background: list[asyncio.Task[None]] = []

    async def on_startup(app: web.Application) -> None:
        await services.pubsub.start()
        if history is not None:
            await history.start()
        await rooms.start()
        background.append(start_loop_lag_monitor())
        background.append(asyncio.get_running_loop().create_task(_flush_tallies(services)))
        ready_problems(services)

    async def on_cleanup(app: web.Application) -> None:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await rooms.stop()  # hands its queued store writes over first
        if history is not None:
            await history.stop()  # flushes them to PostgreSQL (bounded in time)
        await services.pubsub.stop()
        tally.flush()
        if "redis" in services.extras:
            await services.extras["redis"].aclose()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
