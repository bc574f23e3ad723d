"""Forwarding long-poll requests between nodes over Redis pub/sub, request and response.

Each node listens on `gateway:lp:<node>`. A node that receives a GET or POST for another node's
session publishes it there with a reply channel of its own for this one request
(`gateway:lp:reply:<node>:<request id>`, all covered by one pattern subscription, so a request
costs no SUBSCRIBE round trip). The owner acknowledges at once, then answers when the GET or
POST is done. No acknowledgement within the pubsub timeout, or nobody listening on the owner's
channel, means the owner is gone: the session counts as gone (410), as in Phoenix.

This uses its own Redis connections, apart from the broadcast adapter's.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import msgspec
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from gateway.protocol.longpoll import POST, REQUEST_TIMEOUT, Answer, Forwarded, status_body
from gateway.runtime.longpoll_locator import Serve

log = structlog.get_logger("gateway.longpoll.redis")

REQUEST_PREFIX = "gateway:lp:"
REPLY_PREFIX = "gateway:lp:reply:"
ACK = "ack"
ANSWER = "answer"
TIMED_OUT = Answer(200, status_body(REQUEST_TIMEOUT))


class _Request(msgspec.Struct, array_like=True, frozen=True):
    reply_to: str
    request: Forwarded


class _Reply(msgspec.Struct, array_like=True, frozen=True):
    kind: str  # ACK or ANSWER
    answer: Answer | None = None


_request_codec = (msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(_Request))
_reply_codec = (msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(_Reply))


class _Pending:
    __slots__ = ("ack", "answer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ack: asyncio.Future[None] = loop.create_future()
        self.answer: asyncio.Future[Answer] = loop.create_future()


def request_channel(node: str) -> str:
    return REQUEST_PREFIX + node


class RedisSessionLocator:
    """The `SessionLocator` of nodes sharing one Redis."""

    def __init__(self, url: str, node: str, pubsub_timeout_s: float = 2.0) -> None:
        self.url = url
        self.node = node
        self.timeout_s = pubsub_timeout_s
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._serve: Serve | None = None
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, serve: Serve) -> None:
        self._serve = serve
        self._redis = aioredis.from_url(self.url)
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(request_channel(self.node))
        await self._pubsub.psubscribe(f"{REPLY_PREFIX}{self.node}:*")
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for task in list(self._tasks):
            task.cancel()
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()

    # -- the requesting side ----------------------------------------------------------------
    async def forward(self, node: str, request: Forwarded, wait_s: float) -> Answer | None:
        assert self._redis is not None, "start() first"
        reply_to = f"{REPLY_PREFIX}{self.node}:{uuid.uuid4().hex}"
        pending = self._pending[reply_to] = _Pending(asyncio.get_running_loop())
        try:
            data = _request_codec[0].encode(_Request(reply_to, request))
            try:
                listeners = await asyncio.wait_for(
                    self._redis.publish(request_channel(node), data), self.timeout_s
                )
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning(
                    "longpoll_forward_failed", problem="forward failed", node=node, error=repr(exc)
                )
                return None
            if not listeners:
                return None  # nobody owns that node's channel any more
            try:
                await asyncio.wait_for(asyncio.shield(pending.ack), self.timeout_s)
            except TimeoutError:
                log.info(
                    "longpoll_forward_failed",
                    problem="no acknowledgement",
                    node=node,
                    kind=request.kind,
                )
                return None
            try:
                return await asyncio.wait_for(pending.answer, wait_s + self.timeout_s)
            except TimeoutError:
                log.info(
                    "longpoll_forward_failed", problem="no answer", node=node, kind=request.kind
                )
                # The owner has the batch but did not finish it within the window
                # (docs/longpoll.md, "Multi-node").
                return TIMED_OUT if request.kind == POST else None
        finally:
            del self._pending[reply_to]

    # -- the reader: requests for this node, replies to this node ---------------------------
    async def _read(self) -> None:
        pubsub = self._pubsub
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("redis_disconnected", role="longpoll", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            try:
                self._dispatch(message)
            except msgspec.DecodeError:
                log.warning("redis_message_dropped", role="longpoll", error="undecodable")

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        if message["type"] == "pmessage":
            pending = self._pending.get(channel)
            if pending is None:
                return  # a late reply to a request that already timed out
            reply = _reply_codec[1].decode(message["data"])
            if not pending.ack.done():
                pending.ack.set_result(None)
            if reply.kind == ANSWER and reply.answer is not None and not pending.answer.done():
                pending.answer.set_result(reply.answer)
            return
        request = _request_codec[1].decode(message["data"])
        task = asyncio.get_running_loop().create_task(self._answer(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: _Request) -> None:
        assert self._redis is not None and self._serve is not None
        encode = _reply_codec[0].encode
        try:
            await self._redis.publish(request.reply_to, encode(_Reply(ACK)))
            answer = await self._serve(request.request)
            await self._redis.publish(request.reply_to, encode(_Reply(ANSWER, answer)))
        except (RedisError, OSError) as exc:
            log.warning("longpoll_forward_failed", problem="answer not delivered", error=repr(exc))
