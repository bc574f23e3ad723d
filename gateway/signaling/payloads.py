"""Room event payloads: one msgspec Struct per event, and validation that names the bad field.

Validation only checks the fields the room knows; the decoded dict is what gets relayed, so
fields a front end adds (`type`, a correlation id, `usernameFragment`) pass through unchanged.
A refusal is a value, `Refusal(reason, field)`, sent back as the push's error reply.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from gateway.protocol.messages import Payload

MAX_SDP_BYTES = 65_536
MAX_BODY_CHARS = 4_000
MAX_HISTORY = 100
MAX_TRACKS = 16
BROADCAST = "broadcast"

# Reasons of refused pushes and joins (the `reason` of an error reply).
INVALID_ROOM_ID = "invalid room id"
ROOM_MISMATCH = "room mismatch"
FROM_MISMATCH = "from mismatch"
NOT_IN_ROOM = "recipient not in room"
ROOM_FULL = "room full"
QUEUE_FULL = "recipient queue full"
UNAVAILABLE = "room state unavailable, try again"
UNAUTHORIZED = "unauthorized"
MISSING_FIELD = "missing field"
INVALID_FIELD = "invalid field"
FIELD_TOO_LARGE = "field too large"
INVALID_PAYLOAD = "invalid payload"
PAYLOAD_TOO_LARGE = "payload too large"

UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Track = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Tracks = Annotated[list[Track], msgspec.Meta(max_length=MAX_TRACKS)]

# Ecto's binary_id, in the canonical lower-case form: one room, one topic.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_AT_PATH = re.compile(r"^(.*) - at `\$\.([^`.\[]+)")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def is_room_id(text: str) -> bool:
    return _UUID.fullmatch(text) is not None


class Common(msgspec.Struct, kw_only=True):
    """Fields every event may carry; the server overwrites `from`, `room_id` and `timestamp`.

    UNSET when absent: a payload without any of them is relayed as its own bytes (`stamped`).
    """

    room_id: str | UnsetType | None = UNSET
    from_: str | UnsetType | None = msgspec.field(default=UNSET, name="from")
    timestamp: Any = UNSET


class Offer(Common, kw_only=True):
    sdp: str
    to: UserId | None = None
    type: Literal["offer"] | UnsetType | None = UNSET
    constraints: dict[str, Any] | None = None


class Answer(Common, kw_only=True):
    sdp: str
    to: UserId
    type: Literal["answer"] | UnsetType | None = UNSET


class IceCandidate(Common, kw_only=True):
    candidate: str  # "" is the end-of-candidates marker
    sdpMid: str | None = None
    sdpMLineIndex: Annotated[int, msgspec.Meta(ge=0, le=65_535)] | None = None
    to: UserId | None = None


class Ready(Common, kw_only=True):
    tracks: Tracks


class NewMsg(Common, kw_only=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BODY_CHARS)]


class JoinParams(msgspec.Struct, kw_only=True):
    tracks: Tracks | None = None
    media: Literal["mesh", "sfu"] | None = None  # a new room's media; later joins learn it
    history: Annotated[int, msgspec.Meta(ge=0, le=MAX_HISTORY)] = 0


class Refusal(msgspec.Struct, frozen=True, omit_defaults=True):
    """An error reply's response: `{reason, field}` (`field` absent when it is the whole)."""

    reason: str
    field: str | None = None
    detail: str | None = None


T = TypeVar("T", bound=msgspec.Struct)

_decoder = msgspec.json.Decoder()


def decode_object(payload: Payload, max_bytes: int) -> dict[str, Any] | Refusal:
    """The payload as a JSON object, or why not."""
    if isinstance(payload, bytes):
        return Refusal(INVALID_PAYLOAD, detail="binary payloads are not room events")
    if len(payload) > max_bytes:
        return Refusal(PAYLOAD_TOO_LARGE, detail=f"at most {max_bytes} bytes")
    try:
        data = _decoder.decode(payload)
    except msgspec.DecodeError:
        return Refusal(INVALID_PAYLOAD, detail="not JSON")
    except msgspec.ValidationError as exc:  # a number out of range
        return Refusal(INVALID_PAYLOAD, detail=str(exc))
    except RecursionError:
        return Refusal(INVALID_PAYLOAD, detail="nested too deeply")
    if not isinstance(data, dict):
        return Refusal(INVALID_PAYLOAD, detail="the payload must be an object")
    return data


_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}  # a typed decoder per Struct


def decode_as(payload: Payload, kind: type[T], max_bytes: int) -> T | None:
    """A text payload decoded straight into `kind`, or None when it is not a valid one (then
    `decode_object` and `convert` tell why, in the words of a refusal)."""
    if isinstance(payload, bytes) or len(payload) > max_bytes:
        return None
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(kind)
    try:
        value: T = decoder.decode(payload)
    except (msgspec.DecodeError, RecursionError):  # a ValidationError is a DecodeError
        return None
    # A string's UTF-8 is never longer than its JSON: only a payload past the limit can carry
    # an SDP past it.
    if len(payload) > MAX_SDP_BYTES and _sdp_too_large(value):
        return None
    return value


def _sdp_too_large(value: Any) -> bool:
    sdp = getattr(value, "sdp", None)
    return (
        isinstance(sdp, str) and len(sdp) > MAX_SDP_BYTES // 4 and len(sdp.encode()) > MAX_SDP_BYTES
    )


def convert(data: dict[str, Any], kind: type[T]) -> T | Refusal:
    """`data` checked against `kind`, or a refusal naming the first bad field."""
    try:
        value = msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        return refusal_from(str(exc))
    if _sdp_too_large(value):
        return Refusal(FIELD_TOO_LARGE, "sdp", f"at most {MAX_SDP_BYTES} bytes")
    return value


def refusal_from(message: str) -> Refusal:
    """Turn a msgspec validation message into `{reason, field, detail}`."""
    missing = _MISSING.search(message)
    if missing is not None:
        return Refusal(MISSING_FIELD, missing.group(1), message)
    at = _AT_PATH.match(message)
    if at is not None:
        return Refusal(INVALID_FIELD, at.group(2), at.group(1))
    return Refusal(INVALID_PAYLOAD, detail=message)
