"""Local pub/sub with fastlane: subscribers by key, broadcasts encoded once per serializer.

A broadcast walks the key's subscribers once. Events a subscriber intercepts go to its own
`handle_out`; every other subscriber gets the same pre-encoded frame (Phoenix's
fastlane, phoenix/lib/phoenix/channel/server.ex).
The adapter carries the broadcast to other nodes, which dispatch it the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import msgspec

from gateway.observability import metrics
from gateway.protocol import jsonenc
from gateway.protocol.messages import PRESENCE_DIFF, Frame
from gateway.protocol.serializers import Serializer
from gateway.pubsub.adapter import Envelope, LocalAdapter, PubSubAdapter


class Subscriber(Protocol):
    """Something that receives broadcasts: a joined channel, or a connection's socket id."""

    sub_id: str

    def deliver(self, topic: str, event: str, payload: Any, frames: FrameCache) -> None:
        """Take one broadcast; use `frames` to share the encoded frame with other subscribers."""


class FrameCache(msgspec.Struct, gc=False):
    """The broadcast frame of one message, encoded at most once per serializer.

    A Struct: one is made for every broadcast, and a Struct is made in C."""

    topic: str
    event: str
    payload: Any
    # Almost every broadcast meets one serializer (V2): its frame is kept without a dict.
    _serializer: Serializer | None = None
    _first: Frame | None = None
    _frames: dict[int, Frame] | None = None

    def get(self, serializer: Serializer) -> Frame:
        first = self._first
        if serializer is self._serializer and first is not None:
            return first
        if first is None:
            self._serializer = serializer
            first = self._first = serializer.broadcast(self.topic, self.event, self.payload)
            return first
        frames = self._frames
        if frames is None:
            frames = self._frames = {}
        frame = frames.get(id(serializer))
        if frame is None:
            frame = frames[id(serializer)] = serializer.broadcast(
                self.topic, self.event, self.payload
            )
        return frame


class PubSub:
    """Topic registry of this node plus the adapter to the others."""

    def __init__(self, node: str, adapter: PubSubAdapter | None = None) -> None:
        self.node = node
        self.adapter: PubSubAdapter = adapter or LocalAdapter()
        # With one node there is nobody to publish to: skip encoding envelopes.
        self._crosses = not isinstance(self.adapter, LocalAdapter)
        # Subscribers of a key as a tuple, in subscription order: a 1-tuple is a fifth of a
        # 1-entry dict (most keys have one subscriber: a member's own inbox), and a broadcast
        # iterates it without copying. Joining or leaving a room of n costs O(n).
        self._subs: dict[str, tuple[Subscriber, ...]] = {}
        #: Told of every presence diff from another node, still encoded: its topic and payload
        #: (the presence tracker's member index; pub/sub knows nothing of presence itself).
        self.on_remote_presence: Callable[[str, bytes], None] | None = None

    async def start(self) -> None:
        await self.adapter.start(self._remote)

    async def stop(self) -> None:
        await self.adapter.stop()

    def subscribe(self, key: str, sub: Subscriber) -> None:
        subs = self._subs.get(key)
        if subs is None:
            self._subs[key] = (sub,)
            self.adapter.subscribe(key)
        elif not any(s is sub for s in subs):
            self._subs[key] = (*subs, sub)

    def unsubscribe(self, key: str, sub: Subscriber) -> None:
        subs = self._subs.get(key)
        if subs is None:
            return
        rest = tuple(s for s in subs if s is not sub)
        if rest:
            self._subs[key] = rest
        else:
            del self._subs[key]
            self.adapter.unsubscribe(key)

    def settling(self, keys: Iterable[str]) -> Awaitable[None] | None:
        """What to await before telling a client it is subscribed to `keys`: until then a
        broadcast made on another node may not reach this one. None on one node, and when
        the adapter has nothing pending (the common case: the key was subscribed before)."""
        return self.adapter.settling(keys) if self._crosses else None

    def subscribers(self, key: str) -> int:
        subs = self._subs.get(key)
        return len(subs) if subs else 0

    def topics(self) -> int:
        return len(self._subs)

    def broadcast(
        self,
        key: str,
        event: str,
        payload: Any,
        *,
        topic: str | None = None,
        exclude: Subscriber | None = None,
    ) -> int:
        """Deliver to every subscriber of `key` on every node; returns local deliveries.

        `payload` is a JSON value, `msgspec.Raw` (already encoded) or `bytes` (binary).
        `topic` is what the frame says, when the key is private (a user's inbox in a room).
        """
        wire_topic = key if topic is None else topic
        count = self.dispatch(key, wire_topic, event, payload, exclude)
        if not self._crosses:
            return count
        binary = isinstance(payload, bytes)
        body = payload if binary else jsonenc.encode(payload)
        self.adapter.publish(
            Envelope(
                self.node,
                key,
                wire_topic,
                event,
                body,
                binary,
                exclude.sub_id if exclude is not None else None,
            )
        )
        return count

    def dispatch(
        self,
        key: str,
        topic: str,
        event: str,
        payload: Any,
        exclude: Subscriber | None,
        exclude_id: str | None = None,
    ) -> int:
        subs = self._subs.get(key)
        if not subs:
            return 0
        frames = FrameCache(topic, event, payload)
        count = 0
        # The tuple is immutable: a delivery that unsubscribes (a slow consumer being dropped)
        # replaces it and does not disturb this loop.
        for sub in subs:
            if sub is exclude or (exclude_id is not None and sub.sub_id == exclude_id):
                continue
            sub.deliver(topic, event, payload, frames)
            count += 1
        if key == topic:
            metrics.observe_fanout(count)
            metrics.count_message_out("broadcast", count)
        # else a private key (a member's inbox): its subscriber sends a push and counts that.
        return count

    def _remote(self, env: Envelope) -> None:
        if env.node == self.node:
            return
        payload: Any = env.payload if env.binary else msgspec.Raw(env.payload)
        if env.event == PRESENCE_DIFF and self.on_remote_presence is not None:
            self.on_remote_presence(env.topic, env.payload)
        self.dispatch(env.key, env.topic, env.event, payload, None, env.exclude)
