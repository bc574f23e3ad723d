"""Forwarding long-poll requests between nodes through the node's pub/sub, as Phoenix forwards
them through its PubSub.

Each node subscribes to two keys of its own: `lp:<node>` for requests other nodes forward to it
and `lp:reply:<node>` for the answers to the requests it forwarded. A request carries an id and
the requester's node; the owner acknowledges at once, then answers when the GET or POST is done.
No acknowledgement within the pubsub timeout means the owner is gone: the session counts as
gone (410), as in Phoenix. Everything crosses nodes on the pub/sub adapter's own connection, so
reconnects, backoff, health and Redis Cluster support are the adapter's, in one place.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import structlog

from gateway.protocol.longpoll import POST, REQUEST_TIMEOUT, Answer, Forwarded, status_body
from gateway.pubsub.core import FrameCache, PubSub
from gateway.runtime.longpoll_locator import Serve

log = structlog.get_logger("gateway.longpoll")

REQUEST_EVENT = "lp_request"
REPLY_EVENT = "lp_reply"
TIMED_OUT = Answer(200, status_body(REQUEST_TIMEOUT))


def request_key(node: str) -> str:
    return f"lp:{node}"


def reply_key(node: str) -> str:
    return f"lp:reply:{node}"


class _Request(msgspec.Struct, array_like=True, frozen=True):
    node: str  # where the answer goes
    id: str
    request: Forwarded


class _Reply(msgspec.Struct, array_like=True, frozen=True):
    id: str
    answer: Answer | None = None  # None: the acknowledgement


_encode = msgspec.msgpack.Encoder().encode
_decode_request = msgspec.msgpack.Decoder(_Request).decode
_decode_reply = msgspec.msgpack.Decoder(_Reply).decode


class _Pending:
    __slots__ = ("ack", "answer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ack: asyncio.Future[None] = loop.create_future()
        self.answer: asyncio.Future[Answer] = loop.create_future()


class _Inbox:
    """A pub/sub subscriber that hands binary payloads to a callback."""

    __slots__ = ("on_data", "sub_id")

    def __init__(self, sub_id: str, on_data: Any) -> None:
        self.sub_id = sub_id
        self.on_data = on_data

    def deliver(self, topic: str, event: str, payload: Any, frames: FrameCache) -> None:
        if isinstance(payload, bytes):
            self.on_data(payload)


class PubSubSessionLocator:
    """The `SessionLocator` of nodes sharing a pub/sub (Redis or Redis Cluster)."""

    def __init__(self, pubsub: PubSub, node: str, pubsub_timeout_s: float = 2.0) -> None:
        self.pubsub = pubsub
        self.node = node
        self.timeout_s = pubsub_timeout_s
        self._serve: Serve | None = None
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._requests = _Inbox(f"lp-requests/{node}", self._on_request)
        self._replies = _Inbox(f"lp-replies/{node}", self._on_reply)

    async def start(self, serve: Serve) -> None:
        self._serve = serve
        self.pubsub.subscribe(request_key(self.node), self._requests)
        self.pubsub.subscribe(reply_key(self.node), self._replies)

    async def stop(self) -> None:
        self.pubsub.unsubscribe(request_key(self.node), self._requests)
        self.pubsub.unsubscribe(reply_key(self.node), self._replies)
        for task in list(self._tasks):
            task.cancel()

    # -- the requesting side ----------------------------------------------------------------
    async def forward(self, node: str, request: Forwarded, wait_s: float) -> Answer | None:
        request_id = uuid.uuid4().hex
        pending = self._pending[request_id] = _Pending(asyncio.get_running_loop())
        try:
            data = _encode(_Request(self.node, request_id, request))
            self.pubsub.broadcast(request_key(node), REQUEST_EVENT, data)
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
            del self._pending[request_id]

    def _on_reply(self, data: bytes) -> None:
        try:
            reply = _decode_reply(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("redis_message_dropped", role="longpoll", error="undecodable")
            return
        pending = self._pending.get(reply.id)
        if pending is None:
            return  # a late reply to a request that already timed out
        if not pending.ack.done():
            pending.ack.set_result(None)
        if reply.answer is not None and not pending.answer.done():
            pending.answer.set_result(reply.answer)

    # -- the owning side --------------------------------------------------------------------
    def _on_request(self, data: bytes) -> None:
        try:
            request = _decode_request(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("redis_message_dropped", role="longpoll", error="undecodable")
            return
        to = reply_key(request.node)
        self.pubsub.broadcast(to, REPLY_EVENT, _encode(_Reply(request.id)))
        task = asyncio.get_running_loop().create_task(self._answer(request, to))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: _Request, to: str) -> None:
        assert self._serve is not None
        answer = await self._serve(request.request)
        self.pubsub.broadcast(to, REPLY_EVENT, _encode(_Reply(request.id, answer)))
