"""The SFU side of a room channel: the room's events bridged to the member's Janus handles.

In a room whose media is `sfu`, a member publishes by pushing `offer` to `"sfu"` and gets the
`answer` from `"sfu"`. Once Janus has the member's media (`webrtcup`), the room learns of it
through an intercepted broadcast (`sfu:published`, crossing nodes like any broadcast): every
other member's channel pushes `peer-ready` (`via: "sfu"`) and subscribes with a handle of its
own, pushing Janus's `offer` (`from: "sfu"`, `publisher`) for its client to answer. Candidates
go both ways with `"sfu"`; `publisher` says which connection one belongs to. Unpublishing,
leaving, dropping or a crash detaches the member's handles and tells the others
(`sfu:published` -> `unpublished`). A lost Janus session ends the media with `sfu-ended`.

Everything here runs in the channel's mailbox, one thing at a time, like the rest of it.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import msgspec
import structlog

from gateway.channels.base import Reply, error, ok
from gateway.presence.state import Entries
from gateway.presence.store import STORE_ERRORS
from gateway.sfu import videoroom as vr
from gateway.sfu.bridge import MemberMedia, SfuBridge, SfuEvent
from gateway.sfu.janus import LOST
from gateway.sfu.videoroom import Candidate, JanusError, SfuUnavailable
from gateway.signaling.payloads import (
    Common,
    Refusal,
    UserId,
    convert,
)
from gateway.signaling.rooms import Rooms

log = structlog.get_logger("gateway.sfu")


class Member(Protocol):
    """What the SFU part uses of its member's room channel (`RoomChannel`)."""

    rooms: Rooms
    room_id: str
    user_id: str
    phx_ref: str | None
    tracks: list[str] | None

    @property
    def topic(self) -> str: ...

    def push(self, event: str, payload: Any) -> None: ...

    def broadcast_from(self, event: str, payload: Any) -> int: ...

    def send_info(self, message: Any) -> None: ...

    def _stamp(self, data: dict[str, Any], sender: str | None = None) -> dict[str, Any]: ...


SFU: Final = "sfu"
VIA_SFU: Final = {"via": SFU}
PUBLISHED: Final = "sfu:published"  # intercepted room broadcasts, never on the wire as such
UNPUBLISHED_OUT: Final = "sfu:unpublished"
UNPUBLISHED: Final = "unpublished"
SFU_ENDED: Final = "sfu-ended"
# Reasons of refused pushes and joins.
SFU_UNAVAILABLE: Final = "sfu unavailable"
SFU_REFUSED: Final = "sfu refused"
SFU_NOT_CONFIGURED: Final = "sfu not configured"
ALREADY_PUBLISHING: Final = "already publishing"
NO_SUBSCRIPTION: Final = "no such subscription"


class SfuAnswer(Common, kw_only=True):
    sdp: str
    publisher: UserId


class SfuCandidate(Common, kw_only=True):
    candidate: str
    sdpMid: str | None = None
    sdpMLineIndex: int | None = None
    publisher: UserId | None = None


def _decoded(payload: Any) -> dict[str, Any]:
    """A broadcast's payload: a dict here, encoded JSON when it came from another node."""
    if isinstance(payload, msgspec.Raw | bytes | str):
        value = msgspec.json.decode(payload)
        return value if isinstance(value, dict) else {}
    return payload if isinstance(payload, dict) else {}


def tracks_of_sdp(sdp: str) -> list[str]:
    """The media kinds an SDP accepts (m-lines with a port other than 0), in order, unique."""
    kinds: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            parts = line[2:].split()
            kind = {"application": "data"}.get(parts[0], parts[0]) if parts else ""
            if len(parts) > 1 and parts[1] != "0" and kind not in kinds:
                kinds.append(kind)
    return kinds


class SfuPart:
    """One room channel's bridge to its room's VideoRoom."""

    def __init__(self, channel: Member, bridge: SfuBridge) -> None:
        self.channel = channel
        self.bridge = bridge
        self.media = MemberMedia(bridge, channel.room_id, channel.user_id, channel.send_info)
        self.tracks: list[str] | None = None  # what this member publishes, once Janus has it

    # -- pushes -----------------------------------------------------------------------------
    async def signal(self, event: str, data: dict[str, Any]) -> Reply:
        """An `offer`, `answer` or `ice-candidate` pushed `to: "sfu"` (already checked)."""
        try:
            if event == "offer":
                return await self._publish(str(data["sdp"]))
            if event == "answer":
                return await self._answer(data)
            return await self._candidate(data)
        except SfuUnavailable as exc:
            log.warning("sfu_unavailable", room=self.channel.room_id, error=str(exc))
            return error({"reason": SFU_UNAVAILABLE})
        except JanusError as exc:
            if exc.code == vr.ID_EXISTS:
                return error({"reason": ALREADY_PUBLISHING})
            log.warning("sfu_refused", room=self.channel.room_id, code=exc.code, error=exc.reason)
            return error({"reason": SFU_REFUSED, "detail": exc.reason})

    async def _publish(self, sdp: str) -> Reply:
        answer = await self.media.publish(sdp)
        self.tracks = tracks_of_sdp(answer)
        self.channel.push("answer", self._from_sfu({"type": "answer", "sdp": answer}))
        return ok()

    async def _answer(self, data: dict[str, Any]) -> Reply:
        value = convert(data, SfuAnswer)
        if isinstance(value, Refusal):
            return error(msgspec.to_builtins(value))
        try:
            await self.media.start(value.publisher, value.sdp)
        except KeyError:
            return error({"reason": NO_SUBSCRIPTION, "field": "publisher"})
        return ok()

    async def _candidate(self, data: dict[str, Any]) -> Reply:
        value = convert(data, SfuCandidate)
        if isinstance(value, Refusal):
            return error(msgspec.to_builtins(value))
        feed = None if value.publisher in (None, self.channel.user_id) else value.publisher
        if value.candidate:
            candidate = Candidate(value.candidate, value.sdpMid, value.sdpMLineIndex)
        else:
            candidate = Candidate(completed=True)  # "": the end of this side's candidates
        try:
            await self.media.trickle(feed, candidate)
        except KeyError:
            return error({"reason": NO_SUBSCRIPTION, "field": "publisher"})
        return ok()

    async def unpublish(self) -> Reply:
        """The `unpublish` push: stop sending media, keep receiving."""
        await self._unpublished(await self.media.unpublish())
        return ok()

    # -- the room's broadcasts and Janus's events -------------------------------------------
    async def after_join(self, state: Entries) -> None:
        """Announce and subscribe to every member already publishing through the SFU."""
        for key, entry in state.items():
            if key == self.channel.user_id:
                continue
            for meta in reversed(entry["metas"]):
                if meta.get("via") == SFU:
                    await self._subscribe(key, meta.get("tracks") or [])
                    break

    async def handle_out(self, event: str, payload: Any) -> None:
        data = _decoded(payload)
        publisher = data.get("from")
        if not isinstance(publisher, str) or publisher == self.channel.user_id:
            return  # our own feed (another tab of this user): nothing to subscribe to
        if event == PUBLISHED:
            await self._subscribe(publisher, data.get("tracks") or [])
        elif event == UNPUBLISHED_OUT:
            await self.media.unsubscribe(publisher)
            self.channel.push(UNPUBLISHED, self._stamp({**VIA_SFU}, publisher))

    async def handle_info(self, event: SfuEvent) -> None:
        if not self.media.owns(event):
            return  # a late event of a handle already ended
        kind = event.message.get("janus")
        if kind == LOST:
            publishing = self.media.publisher is not None
            self.media.lost()
            self.channel.push(SFU_ENDED, self._from_sfu({"reason": SFU_UNAVAILABLE}))
            await self._unpublished(publishing)
        elif kind == "webrtcup" and event.feed is None:
            await self._published()
        elif kind == "trickle":
            candidate = event.message.get("candidate")
            if isinstance(candidate, dict):
                self._push_candidate(event.feed, candidate)
        elif kind == "hangup":
            # ICE failed or the peer connection closed: this connection is over.
            if event.feed is None:
                await self._unpublished(await self.media.unpublish())
            elif await self.media.unsubscribe(event.feed):
                self.channel.push(UNPUBLISHED, self._stamp({**VIA_SFU}, event.feed))

    async def close(self) -> None:
        """The channel ends: every handle goes, and the others learn the stream is gone."""
        publishing = self.media.publisher is not None
        await self.media.close()
        if publishing:
            self.channel.broadcast_from(UNPUBLISHED_OUT, {"from": self.channel.user_id})

    # -- helpers ----------------------------------------------------------------------------
    async def _subscribe(self, publisher: str, tracks: list[str]) -> None:
        self.channel.push("peer-ready", self._stamp({"tracks": tracks, **VIA_SFU}, publisher))
        try:
            offer = await self.media.subscribe(publisher)
        except SfuUnavailable as exc:
            log.warning("sfu_unavailable", room=self.channel.room_id, error=str(exc))
            return
        except JanusError as exc:
            # Most likely the publisher left meanwhile (no such feed): its unpublish follows.
            log.info("sfu_refused", room=self.channel.room_id, phase="subscribe", code=exc.code)
            return
        body = {"type": "offer", "sdp": offer, "publisher": publisher}
        self.channel.push("offer", self._from_sfu(body))

    async def _published(self) -> None:
        channel = self.channel
        tracks = self.tracks or []
        await self._set_meta({"tracks": tracks, **VIA_SFU})
        channel.broadcast_from(PUBLISHED, {"from": channel.user_id, "tracks": tracks})

    async def _unpublished(self, was_publishing: bool) -> None:
        if not was_publishing:
            return
        self.tracks = None
        await self._set_meta({"tracks": self.channel.tracks} if self.channel.tracks else {})
        self.channel.broadcast_from(UNPUBLISHED_OUT, {"from": self.channel.user_id})

    async def _set_meta(self, extra: dict[str, Any]) -> None:
        """This member's presence meta, so members who join later see who publishes."""
        channel = self.channel
        if channel.phx_ref is None:
            return
        meta = {"online_at": str(int(channel.rooms.wall())), **extra}
        try:
            new_ref = await channel.rooms.presence.update(
                channel.topic, channel.user_id, channel.phx_ref, meta
            )
        except STORE_ERRORS as exc:
            log.warning("room_store_unavailable", topic=channel.topic, phase="sfu", error=str(exc))
            return
        channel.phx_ref = new_ref or channel.phx_ref

    def _push_candidate(self, feed: str | None, candidate: dict[str, Any]) -> None:
        body: dict[str, Any]
        if candidate.get("completed"):
            body = {"candidate": "", "sdpMid": None, "sdpMLineIndex": None}
        else:
            body = {
                "candidate": candidate.get("candidate", ""),
                "sdpMid": candidate.get("sdpMid"),
                "sdpMLineIndex": candidate.get("sdpMLineIndex"),
            }
        if feed is not None:
            body["publisher"] = feed
        self.channel.push("ice-candidate", self._from_sfu(body))

    def _from_sfu(self, data: dict[str, Any]) -> dict[str, Any]:
        return self._stamp(data, SFU)

    def _stamp(self, data: dict[str, Any], sender: str) -> dict[str, Any]:
        return self.channel._stamp(data, sender)
