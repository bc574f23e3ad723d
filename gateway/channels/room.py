"""The `room:<uuid>` channel: WebRTC signaling, chat and presence for one room.

Every push is validated against its payload Struct and answered; the server stamps
`room_id`, `from` and `timestamp` on what it relays, so nobody can speak for someone else.
Targeted events travel on the recipient's private pub/sub key (see `signaling/rooms.py`),
so they reach the client as pushes after the join reply, carrying this channel's join_ref,
and a member rejoining gets its grace-queued messages first. Untargeted events are plain
broadcasts (`[null,null,topic,event,payload]`, Phoenix's fastlane).

The common pushes (a relay to a member this node knows, chat) are handled without awaiting:
they run on the read path of the push, and store writes are queued behind the reply
(`signaling/bookkeeping.py`). Only a push that needs a store answer first (a recipient this
node has not seen, `ready`) waits.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import structlog
from msgspec import UNSET

from gateway.channels.base import Channel, Reply, error, ok
from gateway.channels.room_sfu import (
    PUBLISHED,
    SFU,
    SFU_NOT_CONFIGURED,
    UNPUBLISHED_OUT,
    SfuPart,
)
from gateway.errors import UNKNOWN_EVENT
from gateway.observability import metrics
from gateway.presence.state import Meta
from gateway.presence.store import STORE_ERRORS
from gateway.protocol import jsonenc
from gateway.protocol.messages import PRESENCE_STATE, Payload
from gateway.sfu.bridge import SfuEvent
from gateway.signaling.authorize import RoomJoin
from gateway.signaling.grace import PushResult
from gateway.signaling.payloads import (
    BROADCAST,
    FROM_MISMATCH,
    INVALID_ROOM_ID,
    NOT_IN_ROOM,
    QUEUE_FULL,
    ROOM_FULL,
    ROOM_MISMATCH,
    UNAUTHORIZED,
    UNAVAILABLE,
    Answer,
    Common,
    IceCandidate,
    JoinParams,
    NewMsg,
    Offer,
    Ready,
    Refusal,
    convert,
    decode_as,
    decode_object,
    is_room_id,
)
from gateway.signaling.rooms import Rooms, user_key
from gateway.signaling.sessions import iso

if TYPE_CHECKING:
    from gateway.channels.context import ChannelContext

log = structlog.get_logger("gateway.rooms")

PEER_READY = "peer-ready"
NEW_MSG = "new_msg"
ICE_SERVERS = "ice_servers"
TOPIC_PREFIX = "room:"
_OK = ok()
_QUEUED = ok({"queued": True})


def refused(refusal: Refusal) -> Reply:
    return error(msgspec.to_builtins(refusal))


Result = Reply | Awaitable[Reply]


class RoomChannel(Channel):
    # The SFU's room-wide notices pass through handle_out: each channel subscribes for itself.
    intercepts = frozenset({PUBLISHED, UNPUBLISHED_OUT})
    # One per member: no instance dict.
    __slots__ = ("_tail", "may_signal", "phx_ref", "room_id", "rooms", "sfu", "tracks", "user_id")

    def __init__(self, process: ChannelContext, rooms: Rooms) -> None:
        super().__init__(process)
        self.rooms = rooms  # routed with the channel: `route("room:*", RoomChannel, rooms=...)`
        self.room_id = ""
        self.user_id = ""
        self.phx_ref: str | None = None
        self.tracks: list[str] | None = None
        self.sfu: SfuPart | None = None  # set when the room's media is sfu
        self._tail: bytes | None = None  # what `_stamped` adds, but for the time: made once
        # Whether this socket may signal: its identity and the policy are fixed for its life.
        self.may_signal = (
            process.conn.info.authenticated or not rooms.limits.signaling_requires_auth
        )

    @property
    def inline_coroutines(self) -> bool:  # type: ignore[override]
        return self.rooms.in_process

    # -- join -------------------------------------------------------------------------------
    async def join(self, payload: Payload) -> Reply:
        room_id = self.topic[len(TOPIC_PREFIX) :]
        if not is_room_id(room_id):
            return error({"reason": INVALID_ROOM_ID})
        user = self.socket.user_id
        if not user:
            return error({"reason": UNAUTHORIZED})
        rooms = self.rooms
        if rooms.authorize is not None:
            socket = self.socket
            join = RoomJoin(user, room_id, socket.authenticated, socket.claims, socket.params)
            if not await rooms.authorize(join):
                return error({"reason": UNAUTHORIZED})
        data = decode_object(payload, rooms.limits.max_payload_bytes)
        if isinstance(data, Refusal):
            return refused(data)
        params = convert(data, JoinParams)
        if isinstance(params, Refusal):
            return refused(params)
        if params.tracks is not None and not self.may_signal:
            return refused(Refusal(UNAUTHORIZED, "tracks"))
        if params.media == SFU and rooms.sfu is None:
            return refused(Refusal(SFU_NOT_CONFIGURED, "media", "this gateway has no --sfu-url"))
        if user == SFU and rooms.sfu is not None:
            # Front ends trust `from: "sfu"` to be the gateway's bridge: no member may be it.
            return refused(Refusal(UNAUTHORIZED, "user_id", '"sfu" is the bridge\'s name'))
        self.room_id, self.user_id, self.tracks = room_id, user, params.tracks
        # Subscribed before tracking: once present, messages to this user must find us.
        self.subscribe(user_key(self.topic, user))
        try:
            ref, _ = await rooms.presence.track(
                self.topic, user, self._meta(), max_keys=rooms.limits.max_members
            )
        except STORE_ERRORS as exc:
            # phoenix.js rejoins with backoff; the store is back by then, or the reply repeats.
            log.warning("room_store_unavailable", topic=self.topic, phase="join", error=str(exc))
            return error({"reason": UNAVAILABLE})
        if ref is None:
            return error({"reason": ROOM_FULL})
        self.phx_ref = ref
        try:
            await rooms.sessions.joined(room_id, user, params.tracks)
            response: dict[str, Any] = {"user_id": user}
            if rooms.sfu is not None:
                media = await rooms.modes.claim(room_id, params.media or rooms.default_media)
                response["media"] = media
                if media == SFU:
                    self.sfu = SfuPart(self, rooms.sfu)
            elif params.media is not None:
                response["media"] = "mesh"
            if rooms.ice.configured:
                response["ice_servers"] = self._ice_servers()
            if params.history:
                await rooms.bookkeeper.flush()  # chat this node relayed just before is in it
                chat = await rooms.sessions.chat(room_id, params.history)
                response["history"] = [msgspec.Raw(m) for m in chat]
        except BaseException:
            # Not joined, so terminate will not run: undo the track here.
            await rooms.presence.untrack(self.topic, user, ref)
            raise
        return ok(response)

    async def after_join(self) -> None:
        rooms = self.rooms
        state = await rooms.presence.state(self.topic)
        rooms.presence.learn(self.topic, state)
        self.push(PRESENCE_STATE, state)
        if self.sfu is not None:
            await self.sfu.after_join(state)
        for key, entry in state.items() if self.sfu is None else ():
            tracks = _latest_tracks(entry["metas"])
            if key != self.user_id and tracks is not None:
                self.push(PEER_READY, self._stamp({"tracks": tracks}, key))
        if self.tracks is not None and self.sfu is None:
            self.broadcast_from(PEER_READY, self._stamp({"tracks": self.tracks}))
        for item in await rooms.claim(self.room_id, self.user_id):
            self.push(item.event, msgspec.Raw(item.payload))

    async def terminate(self, reason: str) -> None:
        if self.phx_ref is None:
            return
        rooms = self.rooms
        ref, self.phx_ref = self.phx_ref, None
        if self.sfu is not None:
            await self.sfu.close()  # on every path: leave, drop, crash, drain
        try:
            await rooms.presence.untrack(self.topic, self.user_id, ref)
            if await rooms.presence.present(self.topic, self.user_id):
                return  # another tab of this user is still in the room
            empty = await rooms.presence.store.count(self.topic) == 0
            await rooms.sessions.left(self.room_id, self.user_id, empty)
            if empty and rooms.sfu is not None:
                await rooms.room_emptied(self.room_id, self.sfu is not None)
            if reason != "left":
                await rooms.dropped(self.topic, self.room_id, self.user_id)
        except STORE_ERRORS as exc:
            # The tracker retries the untrack; the session's leave and grace period are lost.
            log.warning(
                "room_store_unavailable", topic=self.topic, phase="terminate", error=str(exc)
            )
        finally:
            if rooms.pubsub.subscribers(self.topic) == 0:
                # No local member hears this room's diffs any more: what this node knows of
                # its members would go stale, so it forgets them (a later join reads them again).
                rooms.presence.members.pop(self.topic, None)

    # -- pushes -----------------------------------------------------------------------------
    def handle_in(self, event: str, payload: Payload, ref: Any) -> Result:
        handler = self._handlers.get(event)
        if handler is None:
            return error({"reason": UNKNOWN_EVENT})
        return handler(self, event, payload)

    def handle_out(self, event: str, payload: Any) -> Awaitable[None] | None:
        if self.sfu is not None:
            return self.sfu.handle_out(event, payload)
        return None  # an SFU notice in a mesh room (cannot happen): nothing to tell

    def handle_info(self, message: Any) -> Awaitable[None] | None:
        if self.sfu is not None and isinstance(message, SfuEvent):
            return self.sfu.handle_info(message)
        return None

    def _signal(self, event: str, payload: Payload) -> Result:
        if not self.may_signal:
            return error({"reason": UNAUTHORIZED})
        kind = _SIGNAL_KINDS[event]
        value = decode_as(payload, kind, self.rooms.limits.max_payload_bytes)
        to: str | None = getattr(value, "to", None)
        sent_type = getattr(value, "type", UNSET)  # an ICE candidate has no `type`
        if (
            value is None
            or value.room_id is not UNSET
            or value.from_ is not UNSET
            or value.timestamp is not UNSET
            or sent_type is None
            or to == SFU
        ):
            return self._signal_decoded(event, payload, kind)
        # The common push: none of the stamped fields (nor a null `type`) in it, so it is
        # relayed as the sender's own bytes with the stamps added: no dict and no
        # re-encoding of its SDP.
        typed = _TYPED.get(event, b"") if sent_type is UNSET else b""
        return self._relay(event, to, self._stamped(payload, typed))

    def _signal_decoded(self, event: str, payload: Payload, kind: type[Common]) -> Result:
        """Any other push: refused with the bad field named, or re-encoded with the stamps."""
        checked = self._check(payload, kind)
        if isinstance(checked, Refusal):
            return refused(checked)
        data, value = checked
        if event in ("offer", "answer") and data.get("type") is None:
            data["type"] = event  # so `new RTCSessionDescription(payload)` works as is
        to: str | None = getattr(value, "to", None)
        if to == SFU and self.sfu is not None:
            return self.sfu.signal(event, data)
        return self._relay(event, to, msgspec.Raw(jsonenc.encode(self._stamp(data))))

    def _relay(self, event: str, to: str | None, body: msgspec.Raw) -> Result:
        rooms = self.rooms
        if to is None or to == BROADCAST:
            self.broadcast_from(event, body)
            to = BROADCAST
        elif rooms.presence.known_present(self.topic, to):
            rooms.send_to(self.topic, to, event, body)
        else:
            return self._signal_later(event, to, body)
        rooms.record_signal(self.room_id, event, self.user_id, to)
        return _OK

    def _stamped(self, payload: Payload, typed: bytes) -> msgspec.Raw:
        """`payload` with `typed` (a `type` field, or nothing), `room_id`, `from` and
        `timestamp` added before its closing brace. A text payload is the exact span of a
        JSON value as the frame's decoder found it, so an object's last byte is its `}`."""
        tail = self._tail
        if tail is None:
            tail = self._tail = b"".join(
                (
                    b',"room_id":',
                    jsonenc.encode_str(self.room_id),
                    b',"from":',
                    jsonenc.encode_str(self.user_id),
                    b',"timestamp":"',
                )
            )
        stamp = iso(self.rooms.wall()).encode()
        return msgspec.Raw(b"".join((memoryview(payload)[:-1], typed, tail, stamp, b'"}')))

    async def _signal_later(self, event: str, to: str, body: msgspec.Raw) -> Reply:
        """A recipient this node has not seen: ask the store, or queue for its grace period."""
        rooms = self.rooms
        try:
            result = await rooms.deliver(self.topic, self.room_id, self.user_id, to, event, body)
        except STORE_ERRORS:
            return refused(Refusal(UNAVAILABLE, "to"))
        if result is PushResult.ABSENT:
            return refused(Refusal(NOT_IN_ROOM, "to"))
        if result is PushResult.FULL:
            return refused(Refusal(QUEUE_FULL, "to"))
        rooms.record_signal(self.room_id, event, self.user_id, to)
        return _QUEUED if result is PushResult.QUEUED else _OK

    async def _ready(self, event: str, payload: Payload) -> Reply:
        if not self.may_signal:
            return error({"reason": UNAUTHORIZED})
        checked = self._check(payload, Ready)
        if isinstance(checked, Refusal):
            return refused(checked)
        self.tracks = checked[1].tracks
        if self.phx_ref is not None:
            presence = self.rooms.presence
            new_ref = await presence.update(self.topic, self.user_id, self.phx_ref, self._meta())
            self.phx_ref = new_ref or self.phx_ref
        self.broadcast_from(PEER_READY, self._stamp({"tracks": self.tracks}))
        return _OK

    def _new_msg(self, event: str, payload: Payload) -> Reply:
        checked = self._check(payload, NewMsg)
        if isinstance(checked, Refusal):
            return refused(checked)
        rooms = self.rooms
        now = rooms.wall()
        data = self._stamp(checked[0], now=now)
        message_id = str(uuid.uuid4())
        data["id"] = message_id
        body = jsonenc.encode(data)
        self.broadcast(NEW_MSG, msgspec.Raw(body))
        # Stored at its stamp, not when the queued write runs: the history orders chat by it.
        rooms.keep_chat(self.room_id, body, now)
        return ok({"id": message_id})

    def _unpublish(self, event: str, payload: Payload) -> Result:
        if self.sfu is None:
            return error({"reason": UNKNOWN_EVENT})
        return self.sfu.unpublish()

    def _ice_push(self, event: str, payload: Payload) -> Reply:
        # Fresh credentials for a call that starts or restarts ICE after the join's expired.
        return ok({ICE_SERVERS: self._ice_servers()})

    _handlers: ClassVar[dict[str, Callable[[RoomChannel, str, Payload], Result]]] = {
        "offer": _signal,
        "answer": _signal,
        "ice-candidate": _signal,
        "ready": _ready,
        NEW_MSG: _new_msg,
        ICE_SERVERS: _ice_push,
        "unpublish": _unpublish,
    }

    # -- helpers ----------------------------------------------------------------------------
    def _check(self, payload: Payload, kind: type[Common]) -> tuple[dict[str, Any], Any] | Refusal:
        """Decode and validate; refuse a `room_id` or `from` that is not this socket's."""
        data = decode_object(payload, self.rooms.limits.max_payload_bytes)
        if isinstance(data, Refusal):
            return data
        value = convert(data, kind)
        if isinstance(value, Refusal):
            return value
        if isinstance(value.room_id, str) and value.room_id != self.room_id:
            return Refusal(ROOM_MISMATCH, "room_id")
        if isinstance(value.from_, str) and value.from_ != self.user_id:
            return Refusal(FROM_MISMATCH, "from")
        return data, value

    def _stamp(
        self, data: dict[str, Any], sender: str | None = None, now: float | None = None
    ) -> dict[str, Any]:
        data["room_id"] = self.room_id
        data["from"] = self.user_id if sender is None else sender
        data["timestamp"] = iso(self.rooms.wall() if now is None else now)
        return data

    def _meta(self) -> Meta:
        meta: Meta = {"online_at": str(int(self.rooms.wall()))}
        if self.tracks is not None:
            meta["tracks"] = self.tracks
        return meta

    def _ice_servers(self) -> list[dict[str, Any]]:
        """This member's `RTCIceServer`s (TURN credentials signed now), counted by kind."""
        rooms = self.rooms
        servers = rooms.ice.servers(self.user_id, self.socket.authenticated, rooms.wall())
        if servers:
            metrics.count_ice_credentials("turn" if servers[-1].username else "stun")
        built: list[dict[str, Any]] = msgspec.to_builtins(servers)
        return built


_SIGNAL_KINDS: dict[str, type[Common]] = {
    "offer": Offer,
    "answer": Answer,
    "ice-candidate": IceCandidate,
}
# The `type` a relayed offer or answer gets when it has none (an ICE candidate gets none).
_TYPED = {"offer": b',"type":"offer"', "answer": b',"type":"answer"'}


def _latest_tracks(metas: list[Meta]) -> list[str] | None:
    """The tracks a member declared, from its newest meta that has them."""
    for meta in reversed(metas):
        tracks = meta.get("tracks")
        if isinstance(tracks, list):
            return tracks
    return None
