"""The pure long-poll rules: tokens, batch splitting, bodies and time decisions."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protocol import longpoll as rules
from gateway.protocol.serializers import V1, V2

KEY = b"k" * 32
NOW = 1_800_000_000.0


def test_token_round_trip_names_node_session_and_expiry() -> None:
    signer = rules.TokenSigner(KEY)
    token = signer.sign("node-a", "sess-1", NOW, max_age_s=60)
    ref = signer.verify(token, NOW + 59)
    assert ref is not None
    assert (ref.node, ref.session, ref.expires) == ("node-a", "sess-1", int(NOW) + 60)
    assert signer.verify(token, NOW + 60) is None  # expired
    assert token.replace("-", "").replace("_", "").replace(".", "").isalnum()  # URL-safe


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40), st.integers(0, 200))
def test_any_change_to_a_token_is_refused(node: str, session: str, position: int) -> None:
    signer = rules.TokenSigner(KEY)
    token = signer.sign(node, session, NOW)
    assert signer.verify(token, NOW) == rules.SessionRef(1, node, session, int(NOW) + 1_209_600)
    i = position % len(token)
    changed = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
    ref = signer.verify(changed, NOW)
    # Base64 padding bits can absorb a change of the last character without changing bytes.
    assert ref is None or ref == signer.verify(token, NOW)


def test_tokens_of_another_key_and_garbage_are_refused() -> None:
    token = rules.TokenSigner(b"x" * 32).sign("n", "s", NOW)
    signer = rules.TokenSigner(KEY)
    for bad in (token, "", None, "no-dot", "a.b", "." * 3, "x" * 2000):
        assert signer.verify(bad, NOW) is None


def test_shared_secret_derives_the_same_key_on_every_node() -> None:
    a = rules.derive_key("shared", b"random-a")
    assert a == rules.derive_key("shared", b"random-b") != rules.derive_key("other", b"")
    assert rules.derive_key("", b"random-a") == b"random-a"


def test_pick_token_header_wins() -> None:
    assert rules.pick_token("hdr", "query") == "hdr"
    assert rules.pick_token(None, "query") == "query"
    assert rules.pick_token("", "") is None
    assert rules.pick_token(None, {"nested": "x"}) is None


def test_split_ndjson_text_binary_crlf_and_limit() -> None:
    body = b'["1"]\r\n' + base64.b64encode(b"\x00\x01") + b"\n" + b"\n".join([b"[2]"] * 200)
    lines = rules.split_batch(body, rules.NDJSON)
    assert len(lines) == rules.MAX_LINES
    assert lines[0] == rules.Line(b'["1"]', True)
    assert lines[1] == rules.Line(b"\x00\x01", False)
    assert all(line == rules.Line(b"[2]", True) for line in lines[2:])


def test_other_content_types_are_one_text_frame() -> None:
    for ctype in (None, "", "application/json", "application/x-ndjson; charset=utf-8"):
        assert rules.split_batch(b"a\nb", ctype) == [rules.Line(b"a\nb", True)]


@pytest.mark.parametrize("line", [b"!!", b"AAA", b"{}", b"QQ=", b"A" * 11_000_000])
def test_bad_base64_lines(line: bytes) -> None:
    with pytest.raises(rules.BadBatch):
        rules.split_batch(line, rules.NDJSON)


def test_decode_batch_refuses_the_whole_batch_on_one_bad_line() -> None:
    good = rules.Line(b'["1","1","t","e",{}]', True)
    assert [m.event for m in rules.decode_batch([good, good], V2)] == ["e", "e"]
    with pytest.raises(rules.BadBatch):
        rules.decode_batch([good, rules.Line(b"[1]", True)], V2)
    with pytest.raises(rules.BadBatch):
        rules.decode_batch([rules.Line(b"\x00", False)], V1)  # V1 has no binary frames


def test_status_and_poll_bodies_are_phoenix_exact() -> None:
    assert rules.status_body(410) == b'{"status":410}'
    frames = [b'[null,null,"t","e",{"a":"\\u00E9/\xc3\xa9"}]']
    body = rules.poll_body(200, "tok", frames)
    assert body.startswith(b'{"messages":["[null,null,\\"t\\"')
    assert body.endswith(b'"],"status":200,"token":"tok"}')
    decoded = json.loads(body)
    assert list(decoded) == ["messages", "status", "token"]
    assert decoded["messages"] == [frames[0].decode()]
    assert rules.poll_body(410, "t", []) == b'{"messages":[],"status":410,"token":"t"}'


def test_time_and_status_decisions() -> None:
    assert rules.idle_deadline(100.0, 10.0) == 115.0
    assert rules.post_status(10.0, 10.0) is None
    assert rules.post_status(10.01, 10.0) == rules.REQUEST_TIMEOUT
    assert rules.open_status(refused=True) == 403
    assert rules.open_status(refused=False) == 410
