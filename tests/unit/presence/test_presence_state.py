"""PresenceTopic, Diff and phx_ref generation: the shapes Phoenix.Presence puts on the wire."""

from __future__ import annotations

import base64
import itertools

import msgspec
import pytest

from gateway.presence.state import Diff, PresenceTopic, RefGenerator, make_ref, node_hash
from gateway.protocol.jsonenc import encode


def sequential_refs() -> PresenceTopic:
    counter = itertools.count(1)
    return PresenceTopic(lambda: f"ref{next(counter)}")


def test_track_diff_shape_and_encoding() -> None:
    topic = sequential_refs()
    diff = topic.track("42", {"online_at": "1700000000"})
    assert diff == Diff(joins={"42": {"metas": [{"online_at": "1700000000", "phx_ref": "ref1"}]}})
    assert encode(diff) == (
        b'{"joins":{"42":{"metas":[{"online_at":"1700000000","phx_ref":"ref1"}]}},"leaves":{}}'
    )
    assert diff.to_payload() == {
        "joins": {"42": {"metas": [{"online_at": "1700000000", "phx_ref": "ref1"}]}},
        "leaves": {},
    }
    assert topic.list() == {"42": {"metas": [{"online_at": "1700000000", "phx_ref": "ref1"}]}}


def test_track_copies_meta_and_drops_client_supplied_refs() -> None:
    topic = sequential_refs()
    meta = {"device": "phone", "phx_ref": "forged", "phx_ref_prev": "forged"}
    diff = topic.track("u", meta)
    assert diff.joins["u"]["metas"] == [{"device": "phone", "phx_ref": "ref1"}]
    assert meta == {"device": "phone", "phx_ref": "forged", "phx_ref_prev": "forged"}


def test_track_with_given_ref_and_duplicate_ref() -> None:
    topic = sequential_refs()
    topic.track("u", {}, ref="mine")
    assert topic.refs("u") == ["mine"]
    assert topic.key_of("mine") == "u"
    with pytest.raises(ValueError):
        topic.track("v", {}, ref="mine")


def test_untrack() -> None:
    topic = sequential_refs()
    topic.track("u", {"a": 1})
    topic.track("u", {"a": 2})
    diff = topic.untrack("u", "ref1")
    assert encode(diff) == b'{"joins":{},"leaves":{"u":{"metas":[{"a":1,"phx_ref":"ref1"}]}}}'
    assert topic.list() == {"u": {"metas": [{"a": 2, "phx_ref": "ref2"}]}}
    topic.untrack("u", "ref2")
    assert topic.list() == {}
    assert "u" not in topic
    assert len(topic) == 0


def test_untrack_unknown_is_empty() -> None:
    topic = sequential_refs()
    topic.track("u", {})
    assert topic.untrack("u", "nope").is_empty()
    assert topic.untrack("v", "ref1").is_empty()
    assert topic.meta_count == 1


def test_update_matches_phoenix_example() -> None:
    # Section 6.1: {"joins":{"u2":{"metas":[{"name":"chris.2","phx_ref":"2.2",
    # "phx_ref_prev":"2"}]}},"leaves":{"u2":{"metas":[{"name":"chris","phx_ref":"2"}]}}}
    topic = PresenceTopic(lambda: "unused")
    topic.track("u1", {"name": "ann"}, ref="1")
    topic.track("u2", {"name": "chris"}, ref="2")
    diff = topic.update("u2", "2", {"name": "chris.2", "phx_ref": "x"}, ref="2.2")
    assert encode(diff) == (
        b'{"joins":{"u2":{"metas":[{"name":"chris.2","phx_ref":"2.2","phx_ref_prev":"2"}]}},'
        b'"leaves":{"u2":{"metas":[{"name":"chris","phx_ref":"2"}]}}}'
    )
    assert topic.key_of("2") is None
    assert topic.key_of("2.2") == "u2"


def test_update_keeps_position_within_key() -> None:
    topic = sequential_refs()
    for n in range(3):
        topic.track("u", {"n": n})
    topic.update("u", "ref2", {"n": 20})
    assert topic.refs("u") == ["ref1", "ref4", "ref3"]
    assert topic.get("u")[1] == {"n": 20, "phx_ref": "ref4", "phx_ref_prev": "ref2"}
    assert topic.update("u", "ref2", {}).is_empty()
    assert topic.update("nobody", "ref1", {}).is_empty()
    with pytest.raises(ValueError):
        topic.update("u", "ref1", {}, ref="ref3")


def test_remove_refs_groups_leaves_by_key() -> None:
    topic = sequential_refs()
    topic.track("a", {})  # ref1
    topic.track("b", {})  # ref2
    topic.track("a", {})  # ref3
    topic.track("c", {})  # ref4
    diff = topic.remove_refs(["ref3", "ref1", "ref2", "missing"])
    assert diff.joins == {}
    assert diff.leaves == {
        "a": {"metas": [{"phx_ref": "ref3"}, {"phx_ref": "ref1"}]},
        "b": {"metas": [{"phx_ref": "ref2"}]},
    }
    assert topic.list() == {"c": {"metas": [{"phx_ref": "ref4"}]}}
    assert topic.remove_refs([]).is_empty()


def test_rebuild_from_entries() -> None:
    topic = sequential_refs()
    topic.track("a", {"x": 1})
    topic.track("b", {"x": 2})
    topic.track("a", {"x": 3})
    topic.update("a", "ref1", {"x": 4})
    entries = list(topic.entries())
    stored = msgspec.json.decode(msgspec.json.encode(entries))
    rebuilt = PresenceTopic.from_entries(lambda: "z", (tuple(e) for e in stored))
    assert rebuilt.list() == topic.list()
    assert rebuilt.meta_count == 4 - 1
    assert rebuilt.key_of("ref4") == "a"
    with pytest.raises(ValueError):
        PresenceTopic.from_entries(lambda: "z", [("a", {"no": "ref"})])


def test_from_entries_duplicate_ref_latest_wins() -> None:
    topic = PresenceTopic.from_entries(
        lambda: "z", [("a", {"phx_ref": "r", "v": 1}), ("b", {"phx_ref": "r", "v": 2})]
    )
    assert topic.list() == {"b": {"metas": [{"phx_ref": "r", "v": 2}]}}


def test_apply_remote_diffs() -> None:
    origin = sequential_refs()
    replica = PresenceTopic(lambda: "unused")
    diffs = [
        origin.track("a", {"v": 1}),
        origin.track("b", {"v": 2}),
        origin.update("a", "ref1", {"v": 3}),
        origin.untrack("b", "ref2"),
        origin.track("a", {"v": 4}),
    ]
    for diff in diffs:
        replica.apply(Diff.from_payload(msgspec.json.decode(encode(diff))))
    assert replica.list() == origin.list()
    replica.apply(Diff(leaves={"zz": {"metas": [{"phx_ref": "nope"}]}}))
    replica.apply(Diff(leaves={"a": {"metas": [{"phx_ref": "nope"}]}}))
    assert replica.list() == origin.list()


def test_diff_from_payload_validates() -> None:
    ok = Diff.from_payload({"joins": {}, "leaves": {"k": {"metas": [{"phx_ref": "1"}]}}})
    assert ok.leaves == {"k": {"metas": [{"phx_ref": "1"}]}}
    assert Diff.from_payload({}).is_empty()
    bad_payloads: list[object] = [
        {"joins": {"k": {"metas": [{"no": "ref"}]}}},
        {"joins": {"k": {"metas": [{"phx_ref": 5}]}}},
        {"joins": {"k": {"metas": "x"}}},
        {"joins": []},
    ]
    for bad in bad_payloads:
        with pytest.raises(msgspec.ValidationError):
            Diff.from_payload(bad)


def test_make_ref_layout() -> None:
    ref = make_ref(1_700_000_000_123_456_789, 0xABCD, 0x0102)
    assert len(ref) == 16
    raw = base64.urlsafe_b64decode(ref)
    assert raw == (1_700_000_000_123_456_789).to_bytes(8, "big") + b"\xab\xcd\x01\x02"
    # Oversized parts wrap instead of raising.
    assert make_ref(2**64 + 5, 0x1ABCD, 0x10102) == make_ref(5, 0xABCD, 0x0102)


def test_ref_generator_unique_under_stalled_clock() -> None:
    gen = RefGenerator("node-a", lambda: 1_700_000_000_000_000_000)
    refs = [gen() for _ in range(70_000)]  # more than the 16-bit counter holds
    assert len(set(refs)) == len(refs)
    assert all(len(r) == 16 and "=" not in r for r in refs)
    assert all(
        set(r) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for r in refs[:100]
    )


def test_ref_generator_clock_steps_back() -> None:
    times = iter([100, 50, 50, 200])
    gen = RefGenerator("n", lambda: next(times))
    stamps = [int.from_bytes(base64.urlsafe_b64decode(gen())[:8], "big") for _ in range(4)]
    assert stamps == [100, 101, 102, 200]


def test_node_hash_is_stable_and_spreads() -> None:
    assert node_hash("gateway@10.0.0.1") == node_hash("gateway@10.0.0.1")
    assert len({node_hash(f"node-{i}") for i in range(50)}) > 45
    a = RefGenerator("node-a", lambda: 7)()
    b = RefGenerator("node-b", lambda: 7)()
    assert a != b
