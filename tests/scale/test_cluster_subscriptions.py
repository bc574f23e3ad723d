"""The Redis Cluster link subscribes many keys at once (a node's first link, or every reconnect)
though they hash to many slots on the same primaries: Redis refuses a multi-slot SSUBSCRIBE
(CROSSSLOT), so the link sends one per slot (a real 3-primary cluster)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.pubsub.core import FrameCache, PubSub
from gateway.pubsub.redis import RedisPubSubAdapter
from tests.support.redis_cluster import LocalRedisCluster

pytestmark = pytest.mark.redis


class Inbox:
    def __init__(self) -> None:
        self.sub_id = "inbox"
        self.got: set[str] = set()

    def deliver(self, topic: str, event: str, payload: Any, frames: FrameCache) -> None:
        self.got.add(topic)


async def test_many_keys_subscribed_in_one_batch_all_receive(
    redis_cluster: LocalRedisCluster,
) -> None:
    url = f"redis://127.0.0.1:{redis_cluster.ports[0]}/0"
    keys = [f"room:{n}" for n in range(60)]
    inbox = Inbox()
    receiver = PubSub("receiver", RedisPubSubAdapter(url, "receiver", cluster=True))
    for key in keys:  # before start: the first link subscribes them all at once
        receiver.subscribe(key, inbox)
    sender = PubSub("sender", RedisPubSubAdapter(url, "sender", cluster=True))
    await receiver.start()
    await sender.start()
    try:
        adapter = receiver.adapter
        assert isinstance(adapter, RedisPubSubAdapter) and adapter.healthy
        deadline = time.monotonic() + 10
        while inbox.got != set(keys):
            assert time.monotonic() < deadline, f"{len(inbox.got)} of {len(keys)} keys heard"
            for key in keys:
                sender.broadcast(key, "e", {"k": key})
            await asyncio.sleep(0.2)
        assert adapter.healthy and adapter.reconnects == 0
    finally:
        await sender.stop()
        await receiver.stop()
