"""`/socket/longpoll`: GET opens or polls a session, POST sends to it, OPTIONS is CORS.

Every answer is HTTP 200 with the protocol status in a JSON body (docs/longpoll.md, "Status codes"); only an
unsupported method or an unreadable body (too large, undecodable lines) gets HTTP 400. A
session token that names another node is forwarded to that node through the `SessionLocator`.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from gateway.observability import events, metrics
from gateway.protocol import longpoll as rules
from gateway.runtime.longpoll_locator import LocalSessionLocator, SessionLocator
from gateway.runtime.longpoll_session import SessionRegistry
from gateway.transports.connect import ConnectRefused, connect_socket, request_head
from gateway.transports.params import parse_query

if TYPE_CHECKING:
    from gateway.transports.parts import TransportParts

log = structlog.get_logger("gateway.longpoll")

BASE_HEADERS = {
    "cache-control": "no-store",
    "access-control-allow-origin": "*",
}
JSON_HEADERS = {**BASE_HEADERS, "content-type": "application/json; charset=utf-8"}
_READ_CHUNK = 1 << 16


class LongPoll:
    """The long-poll transport of one node: token signing, local sessions, forwarding."""

    def __init__(self, parts: TransportParts, locator: SessionLocator | None = None) -> None:
        config = parts.longpoll
        self.parts = parts
        self.node = parts.node
        key = rules.derive_key(config.longpoll_secret, secrets.token_bytes(32))
        self.signer = rules.TokenSigner(key)
        self.window_s = config.longpoll_window_ms / 1000
        self.registry = SessionRegistry(
            parts.connection,
            self.signer,
            self.node,
            self.window_s,
            parts.limits.outbound_limit_bytes,
        )
        self.locator: SessionLocator = locator or LocalSessionLocator()
        self.max_body = config.longpoll_max_body_bytes

    async def start(self) -> None:
        await self.locator.start(self.registry.serve)

    async def stop(self) -> None:
        await self.locator.stop()

    async def route(self, ref: rules.SessionRef, request: rules.Forwarded) -> rules.Answer:
        """Serve here when this node owns the session, else ask its owner."""
        if ref.node == self.node:
            return await self.registry.serve(request)
        answer = await self.locator.forward(ref.node, request, self.window_s)
        return rules.GONE_ANSWER if answer is None else answer


LONGPOLL = web.AppKey("longpoll", LongPoll)


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, headers=JSON_HEADERS)


def _answer(answer: rules.Answer) -> web.Response:
    if answer.http_status != 200:
        return web.Response(status=answer.http_status, headers=BASE_HEADERS)
    return _json(answer.body)


async def longpoll_handler(request: web.Request) -> web.StreamResponse:
    longpoll = request.app[LONGPOLL]
    method = request.method
    if method not in ("GET", "POST", "OPTIONS"):
        return web.Response(status=400, headers=BASE_HEADERS)
    # The origin check comes first for every method, preflights included (docs/longpoll.md).
    origin_check = longpoll.parts.origin_check
    if origin_check is not None and not origin_check(
        request.headers.get("Origin"), request.scheme, request.host
    ):
        log.info(
            "socket_refused",
            transport="longpoll",
            reason="origin",
            origin=request.headers.get("Origin"),
        )
        return _json(rules.status_body(rules.FORBIDDEN))
    if method == "OPTIONS":
        return _preflight(request)
    query_token = parse_query(request.query_string).get("token")
    token = rules.pick_token(request.headers.get(rules.TOKEN_HEADER), query_token)
    ref = longpoll.signer.verify(token, time.time())
    if method == "GET":
        if ref is not None and token is not None:
            answer = await longpoll.route(ref, rules.Forwarded(rules.POLL, ref.session, token))
            if not answer.gone:
                return _answer(answer)
        return _open(longpoll, request)
    body = await _read_body(request, longpoll.max_body)
    if body is None:
        log.info(
            "frame_rejected",
            transport="longpoll",
            error="body over the limit",
            limit=longpoll.max_body,
        )
        return web.Response(status=400, headers=BASE_HEADERS)
    if ref is None or token is None:
        return _json(rules.status_body(rules.GONE))
    content_type = request.headers.get("Content-Type")
    post = rules.Forwarded(rules.POST, ref.session, token, body, content_type)
    return _answer(await longpoll.route(ref, post))


def _preflight(request: web.Request) -> web.Response:
    requested = ", ".join(request.headers.getall("Access-Control-Request-Headers", []))
    headers = {
        **BASE_HEADERS,
        "access-control-allow-headers": requested,
        "access-control-allow-methods": "get, post, options",
        "access-control-max-age": "3600",
    }
    return web.Response(status=200, headers=headers)


def _open(longpoll: LongPoll, request: web.Request) -> web.Response:
    """A GET without a live session: connect, then 410 with the new session's token."""
    auth_token = request.headers.get(rules.AUTH_HEADER)
    try:
        info, serializer = connect_socket(
            longpoll.parts, request_head(request), auth_token, "longpoll"
        )
    except ConnectRefused as refusal:
        metrics.count_connect("longpoll", refusal.result)
        log.info(events.SOCKET_REFUSED, transport="longpoll", status=refusal.status,
                 reason=refusal.reason)  # fmt: skip
        return _json(rules.status_body(rules.open_status(refused=True)))
    metrics.count_connect("longpoll", "ok")
    session = longpoll.registry.open(info, serializer)
    return _json(rules.poll_body(rules.open_status(refused=False), session.token, []))


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` (Plug's 8 MB default: HTTP 400)."""
    length = request.content_length
    if length is not None and length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def add_longpoll(
    app: web.Application, parts: TransportParts, path: str, locator: SessionLocator
) -> LongPoll:
    """Mount the long-poll transport at `path` (`{socket_path}/longpoll`) and start and stop
    it with the application."""
    longpoll = LongPoll(parts, locator)
    app[LONGPOLL] = longpoll
    app.router.add_route("*", path, longpoll_handler)

    async def on_startup(app: web.Application) -> None:
        await longpoll.start()

    async def on_cleanup(app: web.Application) -> None:
        await longpoll.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return longpoll
