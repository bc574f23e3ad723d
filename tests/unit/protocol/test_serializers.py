"""Byte-exact serializer fixtures (reference section 2), round trips and a decoding fuzz."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ClientError, EncodeError, MalformedFrame
from gateway.protocol import jsonenc, serializers
from gateway.protocol.serializers import V1, V2, select_serializer

RAW_EMPTY = msgspec.Raw(b"{}")


def test_v2_reply_push_broadcast_close_bytes() -> None:
    assert V2.reply("3", "3", "room:lobby", "ok", {}).data == (
        b'["3","3","room:lobby","phx_reply",{"response":{},"status":"ok"}]'
    )
    assert V2.reply(None, "3", "nope", "error", {"reason": "unmatched topic"}).data == (
        b'[null,"3","nope","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]'
    )
    assert V2.push("3", "room:lobby", "joined", {"status": "connected"}).data == (
        b'["3",null,"room:lobby","joined",{"status":"connected"}]'
    )
    assert V2.broadcast("room:lobby", "user_entered", {"user": None}).data == (
        b'[null,null,"room:lobby","user_entered",{"user":null}]'
    )
    assert V2.message("3", "3", "room:lobby", "phx_error", {"reason": "channel_crash"}).data == (
        b'["3","3","room:lobby","phx_error",{"reason":"channel_crash"}]'
    )


def test_v1_frames_have_sorted_keys_and_no_join_ref() -> None:
    assert V1.reply("3", "1", "room:lobby", "ok", {}).data == (
        b'{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"room:lobby"}'
    )
    assert V1.broadcast("room:lobby", "user_entered", {"user": None}).data == (
        b'{"event":"user_entered","payload":{"user":null},"ref":null,"topic":"room:lobby"}'
    )
    assert V1.push("7", "t", "e", {}).data == b'{"event":"e","payload":{},"ref":null,"topic":"t"}'


def test_json_matches_jason() -> None:
    # sorted keys, raw UTF-8, "/" unescaped, upper-case hex for control characters
    assert jsonenc.encode({"b": 1, "a": "é/\x1f\n"}) == b'{"a":"\xc3\xa9/\\u001F\\n","b":1}'
    # an escaped backslash followed by "u00" text is not an escape to touch
    assert jsonenc.encode("\\u00ab") == b'"\\\\u00ab"'
    assert jsonenc.normalize(b'{ "z" : 1 , "a" : [ 1 , 2 ] }') == b'{"a":[1,2],"z":1}'


def test_refs_keep_their_json_type() -> None:
    assert (
        V2.reply(1, 2.5, "t", "ok", {}).data
        == b'[1,2.5,"t","phx_reply",{"response":{},"status":"ok"}]'
    )
    msg = V2.decode_text('[1,2,"t","e",{}]')
    assert (msg.join_ref, msg.ref) == (1, 2)


def test_binary_layouts_from_the_reference() -> None:
    push = bytes.fromhex("00020305053132313233746f7069636576656e74656667")
    msg = V2.decode_binary(push)
    assert (msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload) == (
        "12",
        "123",
        "topic",
        "event",
        b"efg",
    )
    assert V2.reply("12", "123", "topic", "ok", b"efg").data == bytes.fromhex(
        "01020305023132313233746f7069636f6b656667"
    )
    assert V2.push("12", "topic", "event", b"efg").data == bytes.fromhex(
        "000205053132746f7069636576656e74656667"
    )
    assert V2.broadcast("topic", "event", b"efg").data == bytes.fromhex(
        "020505746f7069636576656e74656667"
    )
    assert not V2.broadcast("topic", "event", b"efg").text


def test_binary_lengths_are_utf8_byte_counts() -> None:
    frame = V2.push("1", "röom", "évent", b"")
    assert frame.data[:4] == bytes([0, 1, len("röom".encode()), len("évent".encode())])
    with pytest.raises(EncodeError):
        V2.push("1", "x" * 256, "e", b"")
    with pytest.raises(EncodeError):
        V1.push("1", "t", "e", b"\x00")


def test_v1_decode_requires_every_key() -> None:
    msg = V1.decode_text('{"topic":"t","event":"e","payload":{"a":1},"ref":null}')
    assert (msg.join_ref, msg.ref, msg.topic, msg.event) == (None, None, "t", "e")
    assert bytes(msg.payload) == b'{"a":1}'
    for bad in ('{"topic":"t","event":"e","payload":{}}', "[]", '"x"', "{"):
        with pytest.raises(MalformedFrame):
            V1.decode_text(bad)


def test_v2_decode_ignores_extra_elements_and_refuses_short() -> None:
    msg = V2.decode_text('[null,"1","t","e",{},"extra",7]')
    assert msg.event == "e"
    for bad in (
        '[null,"1","t","e"]',
        "{}",
        "null",
        '[null,"1",1,"e",{}]',
        '[null,"1","t",null,{}]',
    ):
        with pytest.raises(MalformedFrame):
            V2.decode_text(bad)


@pytest.mark.parametrize(
    ("vsn", "expected"),
    [
        (None, "1.0.0"),
        ("1.0.0", "1.0.0"),
        ("1.0.9", "1.0.0"),
        ("2.0.0", "2.0.0"),
        ("2.0.3", "2.0.0"),
        ("2.1.0", None),
        ("123.1.1", None),
        ("abc", None),
        ("2.0", None),
        ("2.0.0-rc.1", None),
        ("02.0.0", None),
    ],
)
def test_vsn_selection(vsn: str | None, expected: str | None) -> None:
    chosen = select_serializer(vsn)
    assert (chosen.vsn if chosen else None) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
refs = st.none() | st.text(max_size=10) | st.integers(0, 10**9)


@settings(max_examples=300, deadline=None)
@given(
    refs,
    refs,
    st.text(min_size=1),
    st.text(min_size=1),
    st.dictionaries(st.text(), json_values, max_size=5),
)
def test_v2_text_round_trip(
    jr: Any, ref: Any, topic: str, event: str, payload: dict[str, Any]
) -> None:
    frame = V2.message(jr, ref, topic, event, payload)
    msg = V2.decode_text(frame.data)
    assert (msg.join_ref, msg.ref, msg.topic, msg.event) == (jr, ref, topic, event)
    assert json.loads(bytes(msg.payload)) == payload
    assert json.loads(frame.data) == [jr, ref, topic, event, payload]


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=20).filter(lambda s: len(s.encode()) <= 255),
    st.text(max_size=20).filter(lambda s: len(s.encode()) <= 255),
    st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255),
    st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255),
    st.binary(max_size=200),
)
def test_v2_binary_push_round_trip(
    jr: str, ref: str, topic: str, event: str, payload: bytes
) -> None:
    fields = [jr.encode(), ref.encode(), topic.encode(), event.encode()]
    data = bytes([0, *map(len, fields)]) + b"".join(fields) + payload
    msg = V2.decode_binary(data)
    assert (msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload) == (
        jr,
        ref,
        topic,
        event,
        payload,
    )


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300))
def test_decoding_any_bytes_gives_a_message_or_a_close_decision(data: bytes) -> None:
    for decode in (V2.decode_binary, V2.decode_text, V1.decode_text, V1.decode_binary):
        try:
            decode(data)
        except ClientError as exc:
            assert exc.close_code in (1011, 1007)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_decoding_any_text_gives_a_message_or_a_close_decision(text: str) -> None:
    for decode in (V2.decode_text, V1.decode_text):
        try:
            decode(text)
        except ClientError as exc:
            assert exc.close_code == 1011


def test_encoded_names_stay_exact_past_the_cache_bound() -> None:
    s = serializers.V2Serializer()
    topics = [f"room:{i}\u00e9\x01" for i in range(serializers._NAMES_MAX + 10)]
    for topic in topics:
        s.push(None, topic, "ev", {})
    assert len(serializers._NAMES) <= serializers._NAMES_MAX
    for topic in (topics[0], topics[-1]):
        expected = json.dumps(
            [None, None, topic, "ev", {}], ensure_ascii=False, separators=(",", ":")
        )
        assert s.push(None, topic, "ev", {}).data == expected.encode()


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=12) | st.text())
def test_a_ref_is_encoded_as_the_json_encoder_would(ref: str) -> None:
    assert serializers._ref(ref) == jsonenc.encode_str(ref)
