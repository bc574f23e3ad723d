"""Composition root: settings -> backends -> pub/sub -> rooms -> router -> parts -> the aiohttp
application. The one place that builds the node's parts and hands each layer the ones it uses."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.auth.setup import build_authenticator, build_origin_check
from gateway.channels.echo import EchoChannel
from gateway.channels.room import RoomChannel
from gateway.channels.router import Router
from gateway.config import Settings
from gateway.errors import ConfigError
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
from gateway.recording import Recorder
from gateway.runtime.admission import Admission
from gateway.runtime.hub import Hub
from gateway.runtime.longpoll_forward import PubSubSessionLocator
from gateway.runtime.longpoll_locator import LocalSessionLocator, SessionLocator
from gateway.runtime.parts import ConnectionParts
from gateway.sfu.bridge import SfuBridge
from gateway.sfu.janus import JanusClient
from gateway.sfu.modes import MemoryRoomModes, RedisRoomModes, RoomModes
from gateway.signaling.authorize import load_authorizer
from gateway.signaling.grace import GraceQueue, MemoryGraceQueue
from gateway.signaling.redis import RedisGraceQueue, RedisSessionStore, StoreClient, connect_store
from gateway.signaling.rooms import RoomLimits, Rooms
from gateway.signaling.sessions import MemorySessionStore, SessionStore
from gateway.transports.history_http import add_history_routes
from gateway.transports.idle import IdleReaper
from gateway.transports.longpoll import add_longpoll
from gateway.transports.outbound_budget import OutboundBudget
from gateway.transports.parts import TransportParts
from gateway.transports.peer import parse_networks
from gateway.transports.rooms_http import add_room_routes
from gateway.transports.websocket import add_websocket


@dataclass(frozen=True, slots=True)
class Node:
    """Every part of one node, as built here; each layer is handed only the parts it uses."""

    settings: Settings
    pubsub: PubSub
    hub: Hub
    router: Router
    admission: Admission
    rooms: Rooms
    history: PostgresSessionStore | None  # with --database-url
    store_client: StoreClient | None  # the room stores' Redis connection pool, with --redis-url
    connection: ConnectionParts
    transport: TransportParts


NODE = web.AppKey("node", Node)


def build_router(settings: Settings, rooms: Rooms) -> Router:
    router = Router()
    if settings.listen.echo:
        router.route("echo:*", EchoChannel)
    router.route("room:*", RoomChannel, rooms=rooms)
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
        stores_in_process=client is None and history is None,
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


def build_node(settings: Settings) -> Node:
    pubsub = PubSub(settings.node, build_pubsub_adapter(settings))
    client = build_store_client(settings)
    history = build_history_store(settings)
    rooms = build_rooms(settings, pubsub, client, history)
    router = build_router(settings, rooms)
    hub = Hub()
    admission = Admission(settings.rates, time.monotonic)
    connection = ConnectionParts(hub, router, admission, pubsub, settings.connections.max_channels)
    return Node(
        settings,
        pubsub,
        hub,
        router,
        admission,
        rooms,
        history,
        client,
        connection,
        build_transport_parts(settings, connection),
    )


def build_transport_parts(settings: Settings, connection: ConnectionParts) -> TransportParts:
    limits = settings.connections
    try:
        trusted_proxies = parse_networks(limits.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"trusted_proxies: {exc}") from None
    recording = settings.recording
    return TransportParts(
        connection=connection,
        node=settings.node,
        limits=limits,
        longpoll=settings.longpoll,
        authenticator=build_authenticator(settings.auth),
        origin_check=build_origin_check(settings.listen),
        trusted_proxies=trusted_proxies,
        outbound=OutboundBudget(limits.outbound_budget_bytes),
        idle=IdleReaper(limits.idle_timeout_ms / 1000),
        recorder=Recorder(recording.record_dir, recording.record_sample_rate)
        if recording.record_dir
        else None,
    )


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
    ready_problems(request.app[NODE])
    tally.flush()
    body, content_type = render_latest()
    return web.Response(body=body, headers={"Content-Type": content_type})


def ready_problems(node: Node) -> list[str]:
    """Why this node should not get new traffic (empty when ready); also sets gateway_ready."""
    problems: list[str] = []
    if node.hub.draining:
        problems.append("draining")
    if not node.pubsub.adapter.healthy:
        problems.append("pubsub backend unreachable")
    metrics.READY.set(0 if problems else 1)
    if node.history is not None:
        node.history.writer.update_gauge()
    return problems


async def _flush_tallies(node: Node) -> None:
    limiter = node.admission.limiter
    evicted = 0
    while True:
        await asyncio.sleep(1.0)
        tally.flush()
        metrics.RATELIMIT_KEYS.set(len(limiter))
        if limiter.evicted > evicted:
            metrics.RATELIMIT_EVICTED.inc(limiter.evicted - evicted)
            evicted = limiter.evicted


async def readyz(request: web.Request) -> web.Response:
    node = request.app[NODE]
    problems = ready_problems(node)
    extra: dict[str, Any] = {}
    if node.history is not None:
        # Not a reason to take the node out: relay and chat work, history writes queue up.
        extra["database"] = "ok" if node.history.healthy else "degraded"
    if node.rooms.sfu is not None:
        # Janus down costs SFU rooms their media, not the node its signaling and chat.
        extra["sfu"] = node.rooms.sfu.states()
    if problems:
        # Degraded: this node still serves its own clients, but not across nodes.
        status = "unavailable" if node.hub.draining else "degraded"
        return web.json_response({"status": status, "problems": problems, **extra}, status=503)
    return web.json_response({"status": "ready", "connections": len(node.hub), **extra})


def build_app(settings: Settings, node: Node | None = None) -> web.Application:
    node = node or build_node(settings)
    app = web.Application()
    app[NODE] = node
    base = settings.listen.socket_path
    if settings.listen.websocket:
        add_websocket(app, node.transport, f"{base}/websocket")
    if settings.listen.longpoll:
        locator = build_session_locator(settings, node.pubsub)
        add_longpoll(app, node.transport, f"{base}/longpoll", locator)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    rooms, history = node.rooms, node.history
    add_room_routes(app, rooms, settings.auth.admin_token, settings.listen.demo)
    add_history_routes(app, history)

    background: list[asyncio.Task[None]] = []

    async def on_startup(app: web.Application) -> None:
        await node.pubsub.start()
        if history is not None:
            await history.start()
        await rooms.start()
        background.append(start_loop_lag_monitor())
        background.append(asyncio.get_running_loop().create_task(_flush_tallies(node)))
        ready_problems(node)

    async def on_cleanup(app: web.Application) -> None:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await rooms.stop()  # hands its queued store writes over first
        if history is not None:
            await history.stop()  # flushes them to PostgreSQL (bounded in time)
        await node.pubsub.stop()
        tally.flush()
        if node.store_client is not None:
            await node.store_client.aclose()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
