"""Redis Cluster link for the pub/sub adapter: sharded pub/sub (SSUBSCRIBE/SPUBLISH).

A sharded channel lives on the primary that owns its slot, so a subscription must be made on
that node's connection. redis-py's async `ClusterPubSub` can do this but reads its per-node
connections one after another with a timeout each, which adds up to a full timeout of latency
per idle shard; this link instead keeps one raw connection per primary with its own reader task
feeding a shared queue. Publishes go through `RedisCluster`'s pipeline, which groups them by
node. A topology change (a slot moving, a failover) surfaces as a `sunsubscribe` push or a
connection error; either fails the link and the adapter reconnects, re-reading the slot map.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterable

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.pubsub.redis_errors import LINK_ERRORS

_Message = tuple[bytes, bytes]


class ClusterLink:
    """Sharded subscriptions over one connection per primary, publishes via the cluster client."""

    def __init__(self, url: str, connect_timeout: float) -> None:
        self._client = RedisCluster.from_url(
            url, retry=Retry(NoBackoff(), 0), protocol=2, socket_connect_timeout=connect_timeout
        )
        self._connect_timeout = connect_timeout
        self._conns: dict[str, AbstractConnection] = {}  # node name -> subscriber connection
        self._owner: dict[bytes, str] = {}  # channel -> node name it was subscribed on
        self._queue: asyncio.Queue[_Message | BaseException] = asyncio.Queue()
        self._readers: list[asyncio.Task[None]] = []
        self._closed = False

    async def open(self, channels: Iterable[bytes]) -> None:
        await self._client.initialize()
        await self.subscribe(list(channels))

    def _check(self) -> None:
        if self._closed:
            raise RedisConnectionError("redis cluster link is closed")

    async def _conn_for(self, node: ClusterNode) -> AbstractConnection:
        conn = self._conns.get(node.name)
        if conn is None:
            conn = Connection(
                host=node.host,
                port=node.port,
                retry=Retry(NoBackoff(), 0),
                protocol=2,  # messages as in-order arrays, as in the standalone link
                socket_connect_timeout=self._connect_timeout,
                socket_keepalive=True,
            )
            await conn.connect()  # type: ignore[no-untyped-call]
            self._conns[node.name] = conn
            self._readers.append(asyncio.create_task(self._read_node(conn)))
        return conn

    async def subscribe(self, channels: list[bytes]) -> None:
        self._check()
        # One SSUBSCRIBE per slot: Redis refuses channels of several slots in one (CROSSSLOT).
        by_slot: dict[int, tuple[ClusterNode, list[bytes]]] = {}
        for channel in channels:
            node = self._client.get_node_from_key(channel.decode())
            if node is None:
                raise RedisConnectionError("no cluster node owns the slot (cluster is down?)")
            by_slot.setdefault(self._client.keyslot(channel), (node, []))[1].append(channel)
        for node, chans in by_slot.values():
            conn = await self._conn_for(node)
            await conn.send_command("SSUBSCRIBE", *chans, check_health=False)
            for channel in chans:
                self._owner[channel] = node.name

    async def unsubscribe(self, channels: list[bytes]) -> None:
        self._check()
        by_slot: dict[int, tuple[str, list[bytes]]] = {}
        for channel in channels:
            name = self._owner.pop(channel, None)
            if name is not None:
                by_slot.setdefault(self._client.keyslot(channel), (name, []))[1].append(channel)
        for name, chans in by_slot.values():
            conn = self._conns.get(name)
            if conn is not None:
                await conn.send_command("SUNSUBSCRIBE", *chans, check_health=False)

    async def ping(self) -> None:
        self._check()
        if not self._conns:
            self._queue.put_nowait((b"", b""))  # nothing subscribed: nothing to watch
            return
        for conn in self._conns.values():
            await conn.send_command("PING", check_health=False)

    async def _read_node(self, conn: AbstractConnection) -> None:
        try:
            while True:
                reply = await conn.read_response(disable_decoding=True, timeout=math.inf)
                if not isinstance(reply, list) or not reply:
                    continue
                kind = reply[0]
                if kind == b"smessage" and len(reply) == 3:
                    self._queue.put_nowait((reply[1], reply[2]))
                elif kind == b"ssubscribe" and len(reply) == 3:
                    self._queue.put_nowait((reply[1], b""))  # Redis confirms the subscription
                elif kind == b"pong":
                    self._queue.put_nowait((b"", b""))
                elif kind == b"sunsubscribe" and reply[1] in self._owner:
                    # Not asked for: the slot moved away from this node.
                    raise RedisConnectionError("sharded subscription moved (topology change)")
        except LINK_ERRORS as exc:
            self._queue.put_nowait(exc)

    async def read(self, timeout: float) -> _Message | None:
        self._check()
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def publish(self, messages: list[_Message]) -> None:
        self._check()
        pipe = self._client.pipeline(transaction=False)
        for channel, data in messages:
            pipe.spublish(channel, data)
        await pipe.execute(raise_on_error=True)

    async def close(self) -> None:
        self._closed = True
        for task in self._readers:
            task.cancel()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in self._conns.values():
            with contextlib.suppress(*LINK_ERRORS):
                await conn.disconnect(nowait=True)
        with contextlib.suppress(*LINK_ERRORS):
            await self._client.aclose()
