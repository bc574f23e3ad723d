"""The client side of the Phoenix wire: encode what a client sends, decode what a server sends.

The server-side serializers in `gateway.protocol` decode client frames and encode server frames;
a load tester needs the mirror image. Text frames reuse them (a V2 array and a V1 object have
the same shape in both directions); binary frames differ by direction (docs/wire.md, "Frames"),
so their client-side forms are built here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.protocol.jsonenc import encode_str
from gateway.protocol.serializers import V1, V2

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


_reply_decoder = msgspec.json.Decoder(_Reply)


def _ref_json(value: Any) -> bytes:
    if value is None:
        return b"null"
    if type(value) is str:
        return encode_str(value)
    return msgspec.json.encode(value)


def encode_text(vsn: str, join_ref: Any, ref: Any, topic: str, event: str, payload: bytes) -> bytes:
    """A client text frame; `payload` is already-encoded JSON."""
    if vsn.startswith("1."):
        # V1 clients send an object; unlike the server's encoding it carries join_ref.
        return (
            b'{"event":'
            + encode_str(event)
            + b',"join_ref":'
            + _ref_json(join_ref)
            + b',"payload":'
            + payload
            + b',"ref":'
            + _ref_json(ref)
            + b',"topic":'
            + encode_str(topic)
            + b"}"
        )
    return V2.message(join_ref, ref, topic, event, msgspec.Raw(payload)).data


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


def decode_text(vsn: str, data: bytes) -> Inbound:
    """A server text frame; replies get their `status` and `response` split out."""
    serializer = V1 if vsn.startswith("1.") else V2
    try:
        msg = serializer.decode_text(data)
    except Exception as exc:  # the protocol package's MalformedFrame; we see only the wire
        raise WireError(str(exc)) from None
    payload = msg.payload
    assert isinstance(payload, msgspec.Raw)
    if msg.event == PHX_REPLY:
        try:
            reply = _reply_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise WireError("phx_reply payload is not {status, response}") from None
        return Inbound(msg.join_ref, msg.ref, msg.topic, msg.event, reply.response, reply.status)
    return Inbound(msg.join_ref, msg.ref, msg.topic, msg.event, payload)


def decode(vsn: str, data: bytes, text: bool) -> Inbound:
    """Decode one server frame of either kind."""
    return decode_text(vsn, data) if text else decode_binary(data)


def decode_client(vsn: str, data: bytes, text: bool) -> Inbound:
    """Decode a client frame (used when reading recordings and HAR files)."""
    serializer = V1 if vsn.startswith("1.") else V2
    try:
        msg = serializer.decode_text(data) if text else serializer.decode_binary(data)
    except Exception as exc:  # the protocol package's MalformedFrame
        raise WireError(str(exc)) from None
    payload = msg.payload
    return Inbound(msg.join_ref, msg.ref, msg.topic, msg.event, payload)
