"""The V1 (JSON objects), V2 (JSON arrays) and V2 binary serializers (docs/wire.md,
"Frames"; phoenix/lib/phoenix/socket/serializers/v2_json_serializer.ex).

Decoding raises `MalformedFrame` for anything that is not a Phoenix message; the transport turns
that into close 1011, as Phoenix does. Encoding builds the frames byte-exact with Phoenix 1.8.12.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from gateway.errors import EncodeError, MalformedFrame
from gateway.protocol.jsonenc import encode, encode_str
from gateway.protocol.messages import Frame, Message, Payload

_NULL = b"null"


def _ref(value: Any) -> bytes:
    if value is None:
        return _NULL
    if type(value) is str:
        if value.isdigit():  # phoenix.js refs: nothing in them needs escaping
            return f'"{value}"'.encode()
        return encode_str(value)
    return encode(value)


# Topics, events and statuses repeat on every frame of a channel: encoded once each. Bounded,
# since topics come from clients; emptied when full (the live ones come back at once).
_NAMES: dict[str, bytes] = {}
_NAMES_MAX = 8192


def _name(value: str) -> bytes:
    out = _NAMES.get(value)
    if out is None:
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        out = _NAMES[value] = encode_str(value)
    return out


def _join_ref(value: Any) -> bytes:
    """A join ref; a string one is cached with the names (its JSON is the same either way)."""
    return _name(value) if type(value) is str else _ref(value)


def _body(value: Any) -> bytes | msgspec.Raw:
    """A payload's JSON; `msgspec.Raw` as it is (`bytes.join` reads it without a copy)."""
    if type(value) is msgspec.Raw:
        return value
    if type(value) is dict and not value:
        return b"{}"  # most replies: `ok` with nothing more
    return encode(value)


# The end of a reply, from its status on: `,"status":"ok"}]`.
_TAILS: dict[str, bytes] = {}


def _tail(status: str) -> bytes:
    out = _TAILS.get(status)
    if out is None:
        if len(_TAILS) >= _NAMES_MAX:
            _TAILS.clear()
        out = _TAILS[status] = b',"status":' + encode_str(status) + b"}]"
    return out


class _V2Message(Message, array_like=True, gc=False):
    """A V2 text frame decoded straight into a `Message` (topic and event checked as strings)."""

    payload: msgspec.Raw


class _V1Object(msgspec.Struct):
    topic: Any
    event: Any
    payload: msgspec.Raw
    ref: Any
    join_ref: Any = None


_v2_decoder = msgspec.json.Decoder(_V2Message)
_v1_decoder = msgspec.json.Decoder(_V1Object)


def _checked(join_ref: Any, ref: Any, topic: Any, event: Any, payload: Payload) -> Message:
    if type(topic) is not str or type(event) is not str:
        raise MalformedFrame("topic and event must be strings")
    return Message(join_ref, ref, topic, event, payload)


class V2Serializer:
    """`vsn=2.0.0`: `[join_ref, ref, topic, event, payload]` text frames plus binary frames."""

    vsn = "2.0.0"
    supports_binary = True

    def decode_text(self, data: bytes | str) -> Message:
        try:
            return _v2_decoder.decode(data)  # str as aiohttp hands it, or bytes: both read as is
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            raise MalformedFrame(f"not a V2 message: {exc}") from None

    def decode_binary(self, data: bytes) -> Message:
        # kind 0 push: 0, len(join_ref), len(ref), len(topic), len(event), then the fields.
        if len(data) < 5 or data[0] != 0:
            raise MalformedFrame("binary frame is not a kind 0 push")
        jr_len, ref_len, topic_len, event_len = data[1], data[2], data[3], data[4]
        start = 5
        end = start + jr_len + ref_len + topic_len + event_len
        if end > len(data):
            raise MalformedFrame("truncated binary frame")
        try:
            join_ref = data[start : start + jr_len].decode()
            start += jr_len
            ref = data[start : start + ref_len].decode()
            start += ref_len
            topic = data[start : start + topic_len].decode()
            start += topic_len
            event = data[start : start + event_len].decode()
        except UnicodeDecodeError:
            raise MalformedFrame("binary header field is not UTF-8") from None
        return Message(join_ref, ref, topic, event, bytes(data[end:]))

    def message(self, join_ref: Any, ref: Any, topic: str, event: str, payload: Any) -> Frame:
        if isinstance(payload, bytes):
            if ref is None:
                return self.push(join_ref, topic, event, payload)
            raise EncodeError("binary payloads travel only as pushes, replies and broadcasts")
        return Frame(
            b"".join(
                (
                    b"[",
                    _ref(join_ref),
                    b",",
                    _ref(ref),
                    b",",
                    _name(topic),
                    b",",
                    _name(event),
                    b",",
                    _body(payload),
                    b"]",
                )
            )
        )

    # Replies and pushes are made for nearly every message: their cached parts are looked up
    # here rather than through the helpers above (a lookup costs a fraction of a call).

    def reply(self, join_ref: Any, ref: Any, topic: str, status: str, response: Any) -> Frame:
        if isinstance(response, bytes):
            return Frame(
                _binary_header(1, join_ref, ref, topic, status) + response,
                text=False,
            )
        body = response
        if type(body) is not msgspec.Raw:
            body = b"{}" if type(body) is dict and not body else encode(body)
        return Frame(
            b"".join(
                (
                    b"[",
                    (_NAMES.get(join_ref) if type(join_ref) is str else None)
                    or _join_ref(join_ref),
                    b",",
                    f'"{ref}"'.encode() if type(ref) is str and ref.isdigit() else _ref(ref),
                    b",",
                    _NAMES.get(topic) or _name(topic),
                    b',"phx_reply",{"response":',
                    body,
                    _TAILS.get(status) or _tail(status),
                )
            )
        )

    def push(self, join_ref: Any, topic: str, event: str, payload: Any) -> Frame:
        if isinstance(payload, bytes):
            return Frame(_binary_header(0, join_ref, None, topic, event) + payload, text=False)
        body = payload
        if type(body) is not msgspec.Raw:
            body = b"{}" if type(body) is dict and not body else encode(body)
        return Frame(
            b"".join(
                (
                    b"[",
                    (_NAMES.get(join_ref) if type(join_ref) is str else None)
                    or _join_ref(join_ref),
                    b",null,",
                    _NAMES.get(topic) or _name(topic),
                    b",",
                    _NAMES.get(event) or _name(event),
                    b",",
                    body,
                    b"]",
                )
            )
        )

    def broadcast(self, topic: str, event: str, payload: Any) -> Frame:
        if isinstance(payload, bytes):
            return Frame(_binary_header(2, None, None, topic, event) + payload, text=False)
        return Frame(
            b"".join((b"[null,null,", _name(topic), b",", _name(event), b",", _body(payload), b"]"))
        )


def _field(value: Any) -> bytes:
    if value is None:
        return b""
    data = (value if isinstance(value, str) else str(value)).encode()
    if len(data) > 255:
        raise EncodeError("binary header field over 255 bytes")
    return data


def _binary_header(kind: int, join_ref: Any, ref: Any, topic: str, event: str) -> bytes:
    topic_b, event_b = _field(topic), _field(event)
    if kind == 2:
        return bytes((2, len(topic_b), len(event_b))) + topic_b + event_b
    jr = _field(join_ref)
    if kind == 0:
        return bytes((0, len(jr), len(topic_b), len(event_b))) + jr + topic_b + event_b
    ref_b = _field(ref)
    return (
        bytes((1, len(jr), len(ref_b), len(topic_b), len(event_b))) + jr + ref_b + topic_b + event_b
    )


class V1Serializer:
    """`vsn=1.0.0` (or no vsn): JSON objects `{event, payload, ref, topic}`; no join_ref out."""

    vsn = "1.0.0"
    supports_binary = False

    def decode_text(self, data: bytes | str) -> Message:
        try:
            obj = _v1_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            raise MalformedFrame(f"not a V1 message: {exc}") from None
        return _checked(obj.join_ref, obj.ref, obj.topic, obj.event, obj.payload)

    def decode_binary(self, data: bytes) -> Message:
        raise MalformedFrame("V1 has no binary frames")

    def message(self, join_ref: Any, ref: Any, topic: str, event: str, payload: Any) -> Frame:
        if isinstance(payload, bytes):
            raise EncodeError("V1 cannot carry binary payloads")
        return Frame(
            b'{"event":'
            + encode_str(event)
            + b',"payload":'
            + bytes(_body(payload))
            + b',"ref":'
            + _ref(ref)
            + b',"topic":'
            + encode_str(topic)
            + b"}"
        )

    def reply(self, join_ref: Any, ref: Any, topic: str, status: str, response: Any) -> Frame:
        if isinstance(response, bytes):
            raise EncodeError("V1 cannot carry binary payloads")
        return Frame(
            b'{"event":"phx_reply","payload":{"response":'
            + bytes(_body(response))
            + b',"status":'
            + encode_str(status)
            + b'},"ref":'
            + _ref(ref)
            + b',"topic":'
            + encode_str(topic)
            + b"}"
        )

    def push(self, join_ref: Any, topic: str, event: str, payload: Any) -> Frame:
        return self.message(join_ref, None, topic, event, payload)

    def broadcast(self, topic: str, event: str, payload: Any) -> Frame:
        return self.message(None, None, topic, event, payload)


Serializer = V1Serializer | V2Serializer

V1 = V1Serializer()
V2 = V2Serializer()
SERIALIZERS: tuple[Serializer, ...] = (V1, V2)

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def select_serializer(vsn: str | None) -> Serializer | None:
    """The serializer for a `vsn` connect param (docs/wire.md, "Endpoints and
    handshake"), or None to refuse.

    Absent means 1.0.0. Accepted: `~> 1.0.0` (1.0.x) and `~> 2.0.0` (2.0.x); pre-releases do not
    match a plain requirement, as in Elixir's `Version.match?/2`.
    """
    if vsn is None:
        return V1
    m = _SEMVER.match(vsn)
    if m is None or m.group(4) is not None:
        return None
    major, minor = int(m.group(1)), int(m.group(2))
    if minor != 0:
        return None
    if major == 1:
        return V1
    if major == 2:
        return V2
    return None
