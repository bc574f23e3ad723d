"""The Redis pub/sub adapter: ferries envelopes between nodes through one Redis (or a cluster).

A node subscribes only to the keys it has local subscribers for (channel `gw:<key>`), on one
dedicated connection. Publishes are msgpack-encoded once, queued without blocking the caller,
and sent by a flusher task as one pipeline per loop iteration on a second connection. When Redis
goes away, local delivery is unaffected (it never passes through here); the adapter reports
itself unhealthy, reconnects with capped exponential backoff, resubscribes every current key,
and sends the publishes buffered meanwhile (bounded: the oldest are dropped and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Iterable
from typing import Any, Protocol

import msgspec
import structlog
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.observability import events, metrics
from gateway.pubsub.adapter import Deliver, Envelope
from gateway.pubsub.redis_errors import LINK_ERRORS

log = structlog.get_logger("gateway.pubsub.redis")

CHANNEL_PREFIX = "gw:"
_SUBSCRIBE_CHUNK = 500  # channels per SUBSCRIBE command when resubscribing many keys


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)


def encode_envelope(env: Envelope) -> bytes:
    return _encoder.encode(env)


def decode_envelope(data: bytes) -> Envelope:
    return _decoder.decode(data)


class Link(Protocol):
    """One live session with Redis: a subscriber side and a publisher side.

    A link is used until it fails once; the adapter then throws it away and opens a new one.
    """

    async def open(self, channels: Iterable[bytes]) -> None:
        """Connect both sides and subscribe to `channels` before returning."""

    async def subscribe(self, channels: list[bytes]) -> None: ...

    async def unsubscribe(self, channels: list[bytes]) -> None: ...

    async def read(self, timeout: float) -> tuple[bytes, bytes] | None:
        """The next (channel, data) message; None after `timeout` seconds without one.

        `(channel, b"")` is Redis confirming a subscription to `channel`, `(b"", b"")` a sign
        of life (a pong)."""

    async def ping(self) -> None:
        """Ask the subscriber side for a sign of life (its reply is read, and ignored, by `read`)."""

    async def publish(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Publish all `messages` in one round trip; raises if any was not accepted."""

    async def close(self) -> None: ...


class StandaloneLink:
    """SUBSCRIBE/PUBLISH over two raw redis-py connections to one server."""

    def __init__(self, url: str, connect_timeout: float) -> None:
        # No retries inside redis-py: the adapter owns backoff and must see every failure.
        self._pool = ConnectionPool.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            # RESP2: pub/sub messages are plain arrays read in order. redis-py 8 defaults to
            # RESP3, where they are out-of-band pushes routed to a handler instead.
            protocol=2,
            socket_connect_timeout=connect_timeout,
            socket_keepalive=True,
        )
        self._sub: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        self._pub: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        self._closed = False

    async def open(self, channels: Iterable[bytes]) -> None:
        await self._sub.connect()  # type: ignore[no-untyped-call]
        await self._pub.connect()  # type: ignore[no-untyped-call]
        chunk: list[bytes] = []
        for channel in channels:
            chunk.append(channel)
            if len(chunk) == _SUBSCRIBE_CHUNK:
                await self.subscribe(chunk)
                chunk = []
        if chunk:
            await self.subscribe(chunk)

    def _check(self) -> None:
        # redis-py reconnects a disconnected connection on the next send; a stale link must
        # fail instead, or it would come back without its subscriptions.
        if self._closed or not self._sub.is_connected or not self._pub.is_connected:
            raise ConnectionError("redis link is closed")

    async def subscribe(self, channels: list[bytes]) -> None:
        self._check()
        await self._sub.send_command("SUBSCRIBE", *channels, check_health=False)

    async def unsubscribe(self, channels: list[bytes]) -> None:
        self._check()
        await self._sub.send_command("UNSUBSCRIBE", *channels, check_health=False)

    async def ping(self) -> None:
        self._check()
        await self._sub.send_command("PING", check_health=False)

    async def read(self, timeout: float) -> tuple[bytes, bytes] | None:
        while True:
            self._check()
            reply = await self._sub.read_response(disable_decoding=True, timeout=timeout)
            if reply is None:
                return None
            # RESP2 push: [b"message", channel, data]; subscribe confirmations and pongs are
            # also arrays on a subscribed connection.
            if isinstance(reply, list) and len(reply) == 3:
                if reply[0] == b"message":
                    return reply[1], reply[2]
                if reply[0] == b"subscribe":
                    return reply[1], b""  # Redis confirms the subscription
            if reply == b"PONG" or (isinstance(reply, list) and reply and reply[0] == b"pong"):
                return b"", b""  # a sign of life, not a message

    async def publish(self, messages: list[tuple[bytes, bytes]]) -> None:
        self._check()
        conn = self._pub
        await conn.send_packed_command(
            conn.pack_commands([("PUBLISH", channel, data) for channel, data in messages]),
            check_health=False,
        )
        for _ in messages:
            await conn.read_response(disable_decoding=True, timeout=math.inf)

    async def close(self) -> None:
        self._closed = True
        for conn in (self._sub, self._pub):
            with contextlib.suppress(*LINK_ERRORS):
                await conn.disconnect(nowait=True)
        with contextlib.suppress(*LINK_ERRORS):
            await self._pool.disconnect()


class RedisPubSubAdapter:
    """`PubSubAdapter` over Redis; see the module docstring for the fault behaviour."""

    def __init__(
        self,
        url: str,
        node: str,
        *,
        cluster: bool = False,
        buffer_limit: int = 10_000,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        health_interval_s: float = 1.0,
        connect_timeout_s: float = 2.0,
        resubscribe_grace_s: float | None = None,
        prefix: str = CHANNEL_PREFIX,
    ) -> None:
        self.url = url
        self.node = node
        self.cluster = cluster
        self.buffer_limit = buffer_limit
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.health_interval_s = health_interval_s
        self.connect_timeout_s = connect_timeout_s
        self.prefix = prefix
        # Redis pub/sub drops what nobody is subscribed to. After an outage every node
        # reconnects within one backoff period; publishing the backlog sooner would reach only
        # the nodes that happened to be back first.
        self.resubscribe_grace_s = (
            backoff_max_s * 1.5 if resubscribe_grace_s is None else resubscribe_grace_s
        )
        self._hold_until = 0.0
        # Counters, read by the metrics layer.
        self.published = 0  # envelopes Redis accepted
        self.received = 0  # envelopes from other nodes handed to the core
        self.dropped = 0  # envelopes lost: buffer full, or undecodable input
        self.buffered = 0  # envelopes that had to wait for a reconnect
        self.reconnects = 0  # links re-opened after a failure
        self.batches = 0  # pipelines sent (published / batches is the batching factor)
        self._deliver: Deliver | None = None
        self._keys: set[str] = set()  # keys with local subscribers: what Redis should send us
        self._subscribed: set[str] = set()  # what the current link has been told
        self._dirty: set[str] = set()  # keys whose subscription changed since the last flush
        # Subscribe commands sent on the current link that Redis has not confirmed yet, and
        # who waits for them: a message published before Redis has the subscription is lost.
        self._inflight: dict[str, int] = {}
        self._settle_waiters: dict[str, asyncio.Future[None]] = {}
        self.settle_timeout_s = connect_timeout_s
        self._pending: deque[tuple[bytes, bytes]] = deque()
        self._link: Link | None = None
        self._healthy = False
        self._stopping = False
        self._wake = asyncio.Event()
        self._broken = asyncio.Event()
        self._flush_lock = asyncio.Lock()  # one pipeline at a time keeps publishes in order
        self._tasks: list[asyncio.Task[None]] = []

    # -- PubSubAdapter ----------------------------------------------------------------------
    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._stopping = False
        # The first connection is awaited so a node that starts healthy is really connected;
        # a Redis that is down at start is retried in the background like any outage.
        with contextlib.suppress(*LINK_ERRORS):
            await self._connect()
        self._tasks = [
            asyncio.create_task(self._supervise(), name="redis-pubsub-supervisor"),
            asyncio.create_task(self._flush_forever(), name="redis-pubsub-flusher"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        if self._link is not None and self._pending:
            # Best effort: publishes made during the drain (presence leaves) reach the others.
            with contextlib.suppress(*LINK_ERRORS):
                await self._flush_once(self._link)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._drop_link()

    def subscribe(self, key: str) -> None:
        self._keys.add(key)
        self._dirty.add(key)
        self._wake.set()

    def unsubscribe(self, key: str) -> None:
        self._keys.discard(key)
        self._dirty.add(key)
        self._wake.set()

    def publish(self, envelope: Envelope) -> None:
        if len(self._pending) >= self.buffer_limit:
            self._pending.popleft()  # the oldest goes: recent messages matter more to rooms
            self._count_dropped(1)
        self._pending.append(((self.prefix + envelope.key).encode(), encode_envelope(envelope)))
        if not self._healthy:
            self.buffered += 1
            metrics.REDIS_BUFFERED.set(len(self._pending))
        self._wake.set()

    def settling(self, keys: Iterable[str]) -> Awaitable[None] | None:
        if not self._healthy:
            return None  # nothing to wait for: broadcasts reach no other node until it is back
        waiters = []
        for key in keys:
            if key not in self._keys or (key in self._subscribed and not self._inflight.get(key)):
                continue
            waiter = self._settle_waiters.get(key)
            if waiter is None:
                waiter = self._settle_waiters[key] = asyncio.get_running_loop().create_future()
            waiters.append(waiter)
        return self._settle(waiters) if waiters else None

    async def _settle(self, waiters: list[asyncio.Future[None]]) -> None:
        # Bounded: a Redis that stalls delays a join by this much at most, as if unreachable.
        await asyncio.wait(waiters, timeout=self.settle_timeout_s)

    def _confirmed(self, channel: bytes) -> None:
        key = channel.decode()[len(self.prefix) :]
        left = self._inflight.get(key, 0) - 1
        if left > 0:
            self._inflight[key] = left
            return
        self._inflight.pop(key, None)
        self._release(key)

    def _release(self, key: str) -> None:
        waiter = self._settle_waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _count_dropped(self, n: int) -> None:
        self.dropped += n
        metrics.REDIS_DROPPED.inc(n)
        if self.dropped == n or self.dropped % 1000 < n:
            log.warning(events.REDIS_MESSAGE_DROPPED, dropped=self.dropped, url=self.url)

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def keys(self) -> frozenset[str]:
        """The keys this node wants from Redis (those with local subscribers)."""
        return frozenset(self._keys)

    async def flush(self) -> None:
        """Send every subscription change and publish made so far; raises if Redis is away."""
        link = self._link
        if link is None:
            raise ConnectionError("redis is unreachable")
        await self._flush_once(link)

    @property
    def backlog(self) -> int:
        """Publishes waiting to be sent."""
        return len(self._pending)

    # -- connection management --------------------------------------------------------------
    def _new_link(self) -> Link:
        if self.cluster:
            from gateway.pubsub.redis_cluster import ClusterLink

            return ClusterLink(self.url, self.connect_timeout_s)
        return StandaloneLink(self.url, self.connect_timeout_s)

    async def _connect(self) -> None:
        link = self._new_link()
        # Snapshot first: keys added while SUBSCRIBE is in flight stay dirty for the flusher.
        keys = set(self._keys)
        self._dirty -= keys
        try:
            await link.open(self._channel(key) for key in keys)
        except BaseException:
            self._dirty |= keys
            await link.close()
            raise
        self._link = link
        self._subscribed = keys
        self._inflight = dict.fromkeys(keys, 1)
        self._broken.clear()
        self._healthy = True
        metrics.set_redis_up("pubsub", True)
        log.info(events.REDIS_CONNECTED, url=self.url)
        self._wake.set()  # flush whatever waited for us

    async def _drop_link(self) -> None:
        self._healthy = False
        metrics.set_redis_up("pubsub", False)
        link, self._link = self._link, None
        # Everything must be subscribed again on the next link.
        self._dirty |= self._keys | self._subscribed
        self._subscribed = set()
        self._inflight = {}
        for key in list(self._settle_waiters):
            self._release(key)  # unhealthy now: joins do not wait for Redis
        if link is not None:
            await link.close()

    async def _supervise(self) -> None:
        """Read while connected; on failure reconnect with capped exponential backoff."""
        delay = self.backoff_initial_s
        while not self._stopping:
            if self._link is not None:
                reader = asyncio.create_task(self._read_forever(self._link))
                broken = asyncio.create_task(self._broken.wait())
                try:
                    await asyncio.wait({reader, broken}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (reader, broken):
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, *LINK_ERRORS):
                            await task
                if self._stopping:
                    return
                log.warning(events.REDIS_DISCONNECTED, url=self.url, local_delivery="continues")
                await self._drop_link()
                delay = self.backoff_initial_s
            # Full jitter keeps a fleet of nodes from reconnecting in lockstep.
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.backoff_max_s)
            try:
                await self._connect()
            except LINK_ERRORS as exc:
                log.debug(
                    "redis_disconnected",
                    problem="reconnect failed",
                    error=str(exc),
                    retry_in_s=delay,
                )
                continue
            self.reconnects += 1
            metrics.REDIS_RECONNECTS.inc()
            self._hold_until = asyncio.get_running_loop().time() + self.resubscribe_grace_s

    async def _read_forever(self, link: Link) -> None:
        assert self._deliver is not None
        deliver = self._deliver
        node = self.node
        waiting_pong = False
        while True:
            message = await link.read(self.health_interval_s)
            if message is None:
                # Silence: a half-open TCP connection looks exactly like a quiet Redis.
                if waiting_pong:
                    raise ConnectionError("redis did not answer PING")
                await link.ping()
                waiting_pong = True
                continue
            waiting_pong = False
            channel, data = message
            if not data:
                if channel:
                    self._confirmed(channel)
                continue
            try:
                env = decode_envelope(data)
            except msgspec.DecodeError:
                self.dropped += 1
                log.warning(events.REDIS_MESSAGE_DROPPED, error="undecodable", size=len(data))
                continue
            if env.node == node:
                continue  # our own publish coming back
            self.received += 1
            deliver(env)

    # -- publishing and subscription changes ------------------------------------------------
    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            link = self._link
            if link is None:
                continue  # the supervisor wakes us once a link is back
            try:
                hold = self._hold_until - asyncio.get_running_loop().time()
                if hold > 0:
                    async with self._flush_lock:
                        if self._dirty:
                            await self._sync_subscriptions(link)
                    await asyncio.sleep(hold)
                    if link is not self._link:
                        continue
                await self._flush_once(link)
            except LINK_ERRORS as exc:
                log.warning("redis_disconnected", problem="publish failed", error=str(exc))
                if link is self._link:  # a failure of an already replaced link is old news
                    self._broken.set()

    async def _flush_once(self, link: Link) -> None:
        async with self._flush_lock:
            await self._flush_locked(link)

    async def _flush_locked(self, link: Link) -> None:
        if self._dirty:
            await self._sync_subscriptions(link)
        while self._pending:
            batch = list(self._pending)
            self._pending.clear()
            started = time.perf_counter()
            try:
                await link.publish(batch)
            except BaseException:
                # Not acknowledged: keep them (in order, ahead of newer ones) for the next link.
                self._pending.extendleft(reversed(batch))
                dropped = 0
                while len(self._pending) > self.buffer_limit:
                    self._pending.popleft()
                    dropped += 1
                if dropped:
                    self._count_dropped(dropped)
                self.buffered += len(batch)
                metrics.REDIS_BUFFERED.set(len(self._pending))
                raise
            metrics.REDIS_PUBLISH.observe(time.perf_counter() - started)
            metrics.REDIS_BUFFERED.set(len(self._pending))
            self.published += len(batch)
            self.batches += 1

    async def _sync_subscriptions(self, link: Link) -> None:
        dirty, self._dirty = self._dirty, set()
        add = [k for k in dirty if k in self._keys and k not in self._subscribed]
        remove = [k for k in dirty if k not in self._keys and k in self._subscribed]
        try:
            if add:
                for key in add:
                    self._inflight[key] = self._inflight.get(key, 0) + 1
                await link.subscribe([self._channel(k) for k in add])
                self._subscribed.update(add)
            if remove:
                await link.unsubscribe([self._channel(k) for k in remove])
                self._subscribed.difference_update(remove)
                for key in remove:
                    self._release(key)  # nobody here waits for it any more
        except BaseException:
            self._dirty |= dirty
            raise

    def _channel(self, key: str) -> bytes:
        return (self.prefix + key).encode()

    def stats(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "received": self.received,
            "dropped": self.dropped,
            "buffered": self.buffered,
            "reconnects": self.reconnects,
            "backlog": len(self._pending),
            "healthy": self._healthy,
        }
