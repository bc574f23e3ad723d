"""The node's side of the SFU: which Janus a room uses, its VideoRoom, and each member's handles.

`SfuBridge` is built once per node (from `--sfu-url`) and shared by the room channels. It keeps
one `MediaServer` (a Janus session, `gateway/sfu/janus.py`) per configured URL, places each room
on one of them by a stable hash, and creates the room's VideoRoom there on first use.
`MemberMedia` is one room channel's part: its publisher handle and one handle per subscription,
all detached by `close` (leave, drop, crash and drain all end in the channel's `terminate`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
import structlog

from gateway.observability import metrics
from gateway.sfu import videoroom as vr
from gateway.sfu.placement import place
from gateway.sfu.videoroom import Answer, Candidate, JanusError, SfuUnavailable

log = structlog.get_logger("gateway.sfu")

EventCallback = Callable[[dict[str, Any]], None]


class MediaServer(Protocol):
    """What the bridge needs of a Janus session (`JanusClient`)."""

    url: str
    generation: int

    @property
    def connected(self) -> bool: ...

    async def ensure(self) -> None: ...

    async def attach(self, on_event: EventCallback) -> int: ...

    async def detach(self, handle: int) -> None: ...

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, str] | None = None
    ) -> Answer: ...

    async def trickle(self, handle: int, candidate: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


class SfuEvent(msgspec.Struct, frozen=True):
    """A Janus event for one of a member's handles, sent into the channel's mailbox.

    `feed` is None for the member's own publisher handle, else the publisher subscribed to;
    `handle` tells a late event of an ended handle from one of its successor."""

    feed: str | None
    handle: int
    message: dict[str, Any]


def _ignore(message: dict[str, Any]) -> None:
    return None


class SfuBridge:
    """The Janus servers of this node and the VideoRooms it has created on them."""

    def __init__(
        self,
        urls: tuple[str, ...],
        connect: Callable[[str], MediaServer],
        admin_key: str = "",
        max_publishers: int = 50,
    ) -> None:
        self.urls = urls
        self.admin_key = admin_key
        self.max_publishers = max_publishers
        self.servers = {url: connect(url) for url in urls}
        self._control: dict[str, tuple[int, int]] = {}  # url -> (generation, handle)
        self._rooms: set[tuple[str, int, str]] = set()  # (url, generation, room) created

    def server_for(self, room: str) -> MediaServer:
        return self.servers[place(room, self.urls)]

    def states(self) -> dict[str, str]:
        """Each server's state for /readyz: connected, or idle (no session yet, or lost)."""
        return {url: "connected" if s.connected else "idle" for url, s in self.servers.items()}

    async def request(self, room: str, body: dict[str, Any]) -> Answer:
        """A synchronous VideoRoom request on the node's control handle for `room`'s server."""
        server = self.server_for(room)
        await server.ensure()
        known = self._control.get(server.url)
        if known is None or known[0] != server.generation:
            handle = await server.attach(_ignore)
            known = self._control[server.url] = (server.generation, handle)
        return await server.message(known[1], body)

    async def ensure_room(self, room: str) -> None:
        """Create `room`'s VideoRoom unless this node's current session already did."""
        server = self.server_for(room)
        await server.ensure()
        key = (server.url, server.generation, room)
        if key in self._rooms:
            return
        try:
            await self.request(room, vr.create_room(room, self.admin_key, self.max_publishers))
        except JanusError as exc:
            if exc.code != vr.ROOM_EXISTS:
                raise
        self._rooms.add(key)

    def forget_room(self, room: str) -> None:
        """Another node may destroy or Janus may lose the room: create it again next time."""
        self._rooms = {key for key in self._rooms if key[2] != room}

    async def participants(self, room: str) -> list[dict[str, Any]]:
        """The room's publishers as Janus lists them (for operators and tests)."""
        try:
            answer = await self.request(room, vr.list_participants(room))
        except JanusError as exc:
            if exc.code == vr.NO_SUCH_ROOM:
                return []
            raise
        found: list[dict[str, Any]] = answer.data.get("participants", [])
        return found

    async def stop(self) -> None:
        """Destroy every session: Janus detaches the handles of members still here."""
        for server in self.servers.values():
            with contextlib.suppress(Exception):
                await server.close()


class MemberMedia:
    """One room channel's handles in its room's VideoRoom.

    Every method is called from the channel's mailbox, one at a time, so no lock is needed.
    `notify` puts a handle's events into that mailbox (as `SfuEvent`s)."""

    def __init__(
        self, bridge: SfuBridge, room: str, user: str, notify: Callable[[SfuEvent], None]
    ) -> None:
        self.bridge = bridge
        self.room = room
        self.user = user
        self.notify = notify
        self.server = bridge.server_for(room)
        self.publisher: int | None = None
        self.subscriptions: dict[str, int] = {}

    def _callback(self, feed: str | None) -> tuple[list[int], EventCallback]:
        # The handle id is known only after attach returns; events before that are dropped
        # by the channel (none are expected: nothing is negotiated yet).
        box: list[int] = []

        def on_event(message: dict[str, Any]) -> None:
            self.notify(SfuEvent(feed, box[0] if box else 0, message))

        return box, on_event

    async def _attach(self, feed: str | None) -> int:
        box, on_event = self._callback(feed)
        handle = await self.server.attach(on_event)
        box.append(handle)
        metrics.SFU_HANDLES.inc()
        return handle

    async def _detach(self, handle: int) -> None:
        metrics.SFU_HANDLES.dec()
        with contextlib.suppress(SfuUnavailable):
            await self.server.detach(handle)

    async def _in_room(
        self, body: dict[str, Any], handle: int, sdp: dict[str, str] | None
    ) -> Answer:
        """`body` on `handle`; if another node destroyed the room meanwhile, create it again."""
        try:
            return await self.server.message(handle, body, sdp)
        except JanusError as exc:
            if exc.code != vr.NO_SUCH_ROOM:
                raise
        self.bridge.forget_room(self.room)
        await self.bridge.ensure_room(self.room)
        return await self.server.message(handle, body, sdp)

    # -- publishing -------------------------------------------------------------------------
    async def publish(self, sdp: str) -> str:
        """Publish (or renegotiate) with the client's offer; Janus's answer SDP."""
        offer = vr.jsep("offer", sdp)
        if self.publisher is not None:
            answer = await self.server.message(self.publisher, vr.configure(), offer)
        else:
            await self.bridge.ensure_room(self.room)
            handle = await self._attach(None)
            try:
                answer = await self._in_room(vr.publish(self.room, self.user), handle, offer)
            except BaseException:
                await self._detach(handle)
                raise
            self.publisher = handle
        if answer.jsep is None or not isinstance(answer.jsep.get("sdp"), str):
            raise JanusError(0, "Janus answered the offer without an SDP")
        answer_sdp: str = answer.jsep["sdp"]
        return answer_sdp

    async def unpublish(self) -> bool:
        """Stop publishing (the handle ends, Janus drops the feed); whether there was one."""
        handle, self.publisher = self.publisher, None
        if handle is None:
            return False
        await self._detach(handle)
        return True

    # -- subscriptions ----------------------------------------------------------------------
    async def subscribe(self, feed: str) -> str:
        """A subscription to `feed`'s streams; the offer SDP the client must answer."""
        old = self.subscriptions.pop(feed, None)
        if old is not None:
            await self._detach(old)  # a republish: the old subscription is stale
        await self.bridge.ensure_room(self.room)
        handle = await self._attach(feed)
        try:
            answer = await self._in_room(vr.subscribe(self.room, feed), handle, None)
        except BaseException:
            await self._detach(handle)
            raise
        self.subscriptions[feed] = handle
        if answer.jsep is None or not isinstance(answer.jsep.get("sdp"), str):
            raise JanusError(0, "Janus offered the subscription without an SDP")
        offer_sdp: str = answer.jsep["sdp"]
        return offer_sdp

    async def start(self, feed: str, sdp: str) -> None:
        """The client's answer to a subscription's offer: media starts flowing."""
        handle = self.subscriptions.get(feed)
        if handle is None:
            raise KeyError(feed)
        await self.server.message(handle, vr.start(), vr.jsep("answer", sdp))

    async def unsubscribe(self, feed: str) -> bool:
        handle = self.subscriptions.pop(feed, None)
        if handle is None:
            return False
        await self._detach(handle)
        return True

    # -- both -------------------------------------------------------------------------------
    async def trickle(self, feed: str | None, candidate: Candidate) -> None:
        """A client candidate for its publisher (feed None) or a subscription's connection."""
        handle = self.publisher if feed is None else self.subscriptions.get(feed)
        if handle is None:
            raise KeyError(feed)
        await self.server.trickle(handle, msgspec.to_builtins(candidate))

    def owns(self, event: SfuEvent) -> bool:
        """Whether `event` is for a handle this member still has."""
        if event.feed is None:
            return event.handle == self.publisher
        return self.subscriptions.get(event.feed) == event.handle

    def lost(self) -> bool:
        """The session died with every handle: forget them; whether any were held."""
        had = self.publisher is not None or bool(self.subscriptions)
        metrics.SFU_HANDLES.dec((self.publisher is not None) + len(self.subscriptions))
        self.publisher = None
        self.subscriptions.clear()
        return had

    async def close(self) -> None:
        """Detach every handle (the channel is ending, however it ends)."""
        handles = [h for h in (self.publisher, *self.subscriptions.values()) if h is not None]
        self.publisher = None
        self.subscriptions.clear()
        for handle in handles:
            await self._detach(handle)
