"""The client-side codec against the exact bytes of the protocol reference (section 2.4)."""

from __future__ import annotations

import msgspec
import pytest

from gateway.protocol import jsonenc as server_json
from gateway.protocol.serializers import V1, V2
from loadtest import jsonenc, wire
from loadtest.wsclient import _mask, encode_frame


def test_client_binary_push_matches_reference_bytes() -> None:
    data = wire.encode_binary_push("12", "123", "topic", "event", b"efg")
    assert data.hex(" ") == "00 02 03 05 05 31 32 31 32 33 74 6f 70 69 63 65 76 65 6e 74 65 66 67"


def test_server_binary_kinds_decode() -> None:
    reply = wire.decode_binary(bytes.fromhex("01020305023132313233746f7069636f6b656667"))
    assert (reply.join_ref, reply.ref, reply.topic, reply.event, reply.status, reply.payload) == (
        "12", "123", "topic", "phx_reply", "ok", b"efg",
    )  # fmt: skip
    push = wire.decode_binary(bytes.fromhex("00020505313274" + "6f706963" + "6576656e74656667"))
    assert (push.join_ref, push.ref, push.topic, push.event, push.payload) == (
        "12", None, "topic", "event", b"efg",
    )  # fmt: skip
    bcast = wire.decode_binary(bytes.fromhex("020505746f7069636576656e74656667"))
    assert (bcast.topic, bcast.event, bcast.payload) == ("topic", "event", b"efg")
    with pytest.raises(wire.WireError):
        wire.decode_binary(b"\x07abc")
    with pytest.raises(wire.WireError):
        wire.decode_binary(b"\x01\x09\x09")


def test_text_frames_v2_and_v1() -> None:
    v2 = wire.encode_text("2.0.0", "3", "4", "room:lobby", "new_msg", b'{"body":"hi"}')
    assert v2 == b'["3","4","room:lobby","new_msg",{"body":"hi"}]'
    v1 = wire.encode_text("1.0.0", None, "4", "room:lobby", "new_msg", b"{}")
    assert msgspec.json.decode(v1) == {
        "event": "new_msg", "join_ref": None, "payload": {}, "ref": "4", "topic": "room:lobby",
    }  # fmt: skip
    reply = wire.decode_text(
        "2.0.0", b'["3","4","room:lobby","phx_reply",{"response":{"a":1},"status":"error"}]'
    )
    assert (reply.ref, reply.status, bytes(reply.payload)) == ("4", "error", b'{"a":1}')
    v1_reply = wire.decode_text(
        "1.0.0",
        b'{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"t"}',
    )
    assert (v1_reply.ref, v1_reply.status) == ("1", "ok")


# The load tester keeps its own codec (it sees the server only through the wire); these hold it
# to the server's, frame for frame.


@pytest.mark.parametrize(
    "value",
    [{"b": 1, "a": [None, True, 1.5]}, "a/b \x01 \u00e9 \U0001f600", {"z": {"y": "\x1f"}}, None],
)
def test_json_is_encoded_as_the_server_encodes_it(value: object) -> None:
    assert jsonenc.encode(value) == server_json.encode(value)
    assert jsonenc.normalize(server_json.encode(value)) == server_json.encode(value)


@pytest.mark.parametrize("ref", [None, "4", 4])
def test_client_frames_decode_on_the_server_as_sent(ref: object) -> None:
    for vsn, serializer in (("2.0.0", V2), ("1.0.0", V1)):
        data = wire.encode_text(vsn, "3", ref, "room:lobby", "new_msg", b'{"body":"hi"}')
        msg = serializer.decode_text(data)
        assert (msg.join_ref, msg.ref, msg.topic, msg.event) == ("3", ref, "room:lobby", "new_msg")
        assert wire.decode_client(vsn, data, text=True) == wire.Inbound(
            "3", ref, "room:lobby", "new_msg", msgspec.Raw(b'{"body":"hi"}')
        )
    binary = wire.encode_binary_push("3", "4", "room:lobby", "new_msg", b"\x00\x01")
    msg = V2.decode_binary(binary)
    assert (msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload) == (
        "3", "4", "room:lobby", "new_msg", b"\x00\x01",
    )  # fmt: skip
    assert wire.decode_client("2.0.0", binary, text=False).payload == b"\x00\x01"
    with pytest.raises(wire.WireError):
        wire.decode_client("1.0.0", binary, text=False)


def test_server_frames_decode_as_the_server_meant_them() -> None:
    reply = V2.reply("3", "4", "room:lobby", "ok", {"user_id": "7"})
    got = wire.decode("2.0.0", reply.data, reply.text)
    assert (got.ref, got.status, bytes(got.payload)) == ("4", "ok", b'{"user_id":"7"}')
    binary = V2.reply("3", "4", "room:lobby", "ok", b"\x09")
    got = wire.decode("2.0.0", binary.data, binary.text)
    assert (got.ref, got.status, got.payload) == ("4", "ok", b"\x09")
    push = V1.push(None, "room:lobby", "new_msg", {"body": "hi"})
    got = wire.decode("1.0.0", push.data, push.text)
    assert (got.topic, got.event, bytes(got.payload)) == ("room:lobby", "new_msg", b'{"body":"hi"}')
    for bad in (b"[1,2,3]", b'["1","2",3,"e",{}]', b"not json"):
        with pytest.raises(wire.WireError):
            wire.decode("2.0.0", bad, True)


def test_masking_round_trips() -> None:
    frame = encode_frame(1, b"hello, world")
    assert frame[0] == 0x81 and frame[1] == 0x80 | 12
    key = frame[2:6]
    assert _mask(frame[6:], key) == b"hello, world"
    long = encode_frame(2, b"x" * 70000)
    assert long[1] == 0xFF and int.from_bytes(long[2:10], "big") == 70000
