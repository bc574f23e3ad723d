"""The client side of the Phoenix wire: encode what a client sends, decode what a server sends.

Text frames are V2 arrays `[join_ref, ref, topic, event, payload]` or V1 objects
`{topic, event, payload, ref, join_ref}`, the same shape in both directions; binary frames
differ by direction (docs/wire.md, "Frames"). The load tester reads and writes them itself: it
sees the server only through the wire.
"""

from __future__ import annotations

from typing import Any

import msgspec

from loadtest.jsonenc import encode

# Phoenix's reply envelope; `response` is kept raw because only matching needs to look inside.
PHX_REPLY = "phx_reply"
HEARTBEAT_TOPIC = "phoenix"


class WireError(Exception):
    """A server frame the load tester could not understand (counted as an error, never raised
    out of a read loop)."""


class Inbound(msgspec.Struct, gc=False):
    """One decoded server frame. `status` is set for replies; `payload` is raw JSON or bytes."""

    join_ref: Any
    ref: Any
    topic: str
    event: str
    payload: msgspec.Raw | bytes
    status: str | None = None


class _Reply(msgspec.Struct, gc=False):
    status: str = ""
    response: msgspec.Raw = msgspec.Raw(b"null")


class _V2Array(msgspec.Struct, array_like=True, gc=False):
    join_ref: Any
    ref: Any
    topic: Any
    event: Any
    payload: msgspec.Raw


class _V1Object(msgspec.Struct, gc=False):
    topic: Any
    event: Any
    payload: msgspec.Raw
    ref: Any
    join_ref: Any = None


_reply_decoder = msgspec.json.Decoder(_Reply)
_v2_decoder = msgspec.json.Decoder(_V2Array)
_v1_decoder = msgspec.json.Decoder(_V1Object)


def encode_text(vsn: str, join_ref: Any, ref: Any, topic: str, event: str, payload: bytes) -> bytes:
    """A client text frame; `payload` is already-encoded JSON."""
    if vsn.startswith("1."):
        # V1 clients send an object; unlike the server's encoding it carries join_ref.
        return (
            b'{"event":'
            + encode(event)
            + b',"join_ref":'
            + encode(join_ref)
            + b',"payload":'
            + payload
            + b',"ref":'
            + encode(ref)
            + b',"topic":'
            + encode(topic)
            + b"}"
        )
    return (
        b"["
        + encode(join_ref)
        + b","
        + encode(ref)
        + b","
        + encode(topic)
        + b","
        + encode(event)
        + b","
        + payload
        + b"]"
    )


def _field(value: Any) -> bytes:
    if value is None:
        return b""
    data = str(value).encode()
    if len(data) > 255:
        raise WireError("binary header field over 255 bytes")
    return data


def encode_binary_push(join_ref: Any, ref: Any, topic: str, event: str, payload: bytes) -> bytes:
    """A client kind-0 push: `0, len(jr), len(ref), len(topic), len(event)` then the fields."""
    jr, rf, tp, ev = _field(join_ref), _field(ref), _field(topic), _field(event)
    return bytes((0, len(jr), len(rf), len(tp), len(ev))) + jr + rf + tp + ev + payload


def decode_binary(data: bytes) -> Inbound:
    """A server binary frame: kind 0 push, 1 reply or 2 broadcast (docs/wire.md, "Frames")."""
    if not data:
        raise WireError("empty binary frame")
    kind = data[0]
    try:
        if kind == 0:
            jr_len, topic_len, event_len = data[1], data[2], data[3]
            pos = 4
            jr = data[pos : pos + jr_len].decode()
            pos += jr_len
            topic = data[pos : pos + topic_len].decode()
            pos += topic_len
            event = data[pos : pos + event_len].decode()
            pos += event_len
            return Inbound(jr, None, topic, event, bytes(data[pos:]))
        if kind == 1:
            jr_len, ref_len, topic_len, status_len = data[1], data[2], data[3], data[4]
            pos = 5
            jr = data[pos : pos + jr_len].decode()
            pos += jr_len
            ref = data[pos : pos + ref_len].decode()
            pos += ref_len
            topic = data[pos : pos + topic_len].decode()
            pos += topic_len
            status = data[pos : pos + status_len].decode()
            pos += status_len
            return Inbound(jr, ref, topic, PHX_REPLY, bytes(data[pos:]), status)
        if kind == 2:
            topic_len, event_len = data[1], data[2]
            pos = 3
            topic = data[pos : pos + topic_len].decode()
            pos += topic_len
            event = data[pos : pos + event_len].decode()
            pos += event_len
            return Inbound(None, None, topic, event, bytes(data[pos:]))
    except (IndexError, UnicodeDecodeError):
        raise WireError("truncated binary frame") from None
    raise WireError(f"unknown binary frame kind {kind}")


def _decode_text_frame(vsn: str, data: bytes) -> Inbound:
    """A text frame of either direction, payload kept raw."""
    try:
        if vsn.startswith("1."):
            obj: _V1Object | _V2Array = _v1_decoder.decode(data)
        else:
            obj = _v2_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise WireError(f"not a V{vsn[:1]} message: {exc}") from None
    if type(obj.topic) is not str or type(obj.event) is not str:
        raise WireError("topic and event must be strings")
    return Inbound(obj.join_ref, obj.ref, obj.topic, obj.event, obj.payload)


def decode_text(vsn: str, data: bytes) -> Inbound:
    """A server text frame; replies get their `status` and `response` split out."""
    msg = _decode_text_frame(vsn, data)
    if msg.event == PHX_REPLY:
        try:
            reply = _reply_decoder.decode(msg.payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise WireError("phx_reply payload is not {status, response}") from None
        return Inbound(msg.join_ref, msg.ref, msg.topic, msg.event, reply.response, reply.status)
    return msg


def decode(vsn: str, data: bytes, text: bool) -> Inbound:
    """Decode one server frame of either kind."""
    return decode_text(vsn, data) if text else decode_binary(data)


def decode_binary_push(data: bytes) -> Inbound:
    """A client kind-0 push, the mirror of `encode_binary_push`."""
    if len(data) < 5 or data[0] != 0:
        raise WireError("binary frame is not a kind 0 push")
    lengths = data[1:5]
    pos = 5
    if pos + sum(lengths) > len(data):
        raise WireError("truncated binary frame")
    fields = []
    try:
        for length in lengths:
            fields.append(data[pos : pos + length].decode())
            pos += length
    except UnicodeDecodeError:
        raise WireError("binary header field is not UTF-8") from None
    join_ref, ref, topic, event = fields
    return Inbound(join_ref, ref, topic, event, bytes(data[pos:]))


def decode_client(vsn: str, data: bytes, text: bool) -> Inbound:
    """Decode a client frame (used when reading recordings and HAR files)."""
    if text:
        return _decode_text_frame(vsn, data)
    if vsn.startswith("1."):
        raise WireError("V1 has no binary frames")
    return decode_binary_push(data)
