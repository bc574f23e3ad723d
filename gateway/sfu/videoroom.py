"""Janus VideoRoom requests, each built here from validated fields. Pure: no I/O.

Nothing a client sends reaches Janus as is: the room is always the member's own room id, the
publisher id is the member's own user id, a subscription names a feed of that room, and a JSEP
is rebuilt from its `type` and `sdp` only. So a client cannot name another room, another
member's publisher, a `secret`, an `admin_key` or a request of its own choosing.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

PLUGIN: Final = "janus.plugin.videoroom"
# VideoRoom error codes the bridge acts on (plugins/janus_videoroom.c).
NO_SUCH_ROOM: Final = 426
ROOM_EXISTS: Final = 427
ID_EXISTS: Final = 436


class SfuUnavailable(Exception):
    """Janus is unreachable, restarted, or did not answer in time."""


class JanusError(Exception):
    """Janus or the VideoRoom refused a request."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class Answer(msgspec.Struct, frozen=True):
    """A VideoRoom reply: the plugin's data, and the JSEP if it carries one."""

    data: dict[str, Any]
    jsep: dict[str, Any] | None = None


class Candidate(msgspec.Struct, frozen=True, omit_defaults=True):
    """A trickled candidate as Janus takes it (`completed` ends the trickle)."""

    candidate: str | None = None
    sdpMid: str | None = None
    sdpMLineIndex: int | None = None
    completed: bool | None = None


def jsep(kind: Literal["offer", "answer"], sdp: str) -> dict[str, str]:
    return {"type": kind, "sdp": sdp}


def create_room(room: str, admin_key: str, publishers: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request": "create",
        "room": room,
        "permanent": False,
        "is_private": True,  # not listed to anyone who asks Janus for its rooms
        "publishers": publishers,
        "notify_joining": False,
    }
    if admin_key:
        body["admin_key"] = admin_key
    return body


def destroy_room(room: str, admin_key: str) -> dict[str, Any]:
    body: dict[str, Any] = {"request": "destroy", "room": room, "permanent": False}
    if admin_key:
        body["admin_key"] = admin_key
    return body


def publish(room: str, feed: str) -> dict[str, Any]:
    """Join `room` as publisher `feed` and publish the offer that goes with it, in one step."""
    return {
        "request": "joinandconfigure",
        "ptype": "publisher",
        "room": room,
        "id": feed,
        "display": feed,
    }


def configure() -> dict[str, Any]:
    """A renegotiation of a publisher already in the room (its new offer goes as JSEP)."""
    return {"request": "configure"}


def subscribe(room: str, feed: str) -> dict[str, Any]:
    return {"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]}


def start() -> dict[str, Any]:
    """The subscriber's answer goes with this as JSEP."""
    return {"request": "start"}


def list_participants(room: str) -> dict[str, Any]:
    return {"request": "listparticipants", "room": room}


def tracks_of(data: dict[str, Any]) -> list[str]:
    """The media kinds a publisher's `streams` carry (audio, video, data), in order, unique."""
    kinds: list[str] = []
    for stream in data.get("streams", []):
        kind = stream.get("type") if isinstance(stream, dict) else None
        if isinstance(kind, str) and kind not in kinds and not stream.get("disabled"):
            kinds.append(kind)
    return kinds
