"""DiffCoalescer: a merged window, applied by phoenix.js, equals its diffs applied one by one."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.presence.coalesce import DiffCoalescer
from gateway.presence.state import Diff, PresenceTopic

from .phoenix_presence_model import State, sync_diff, sync_state


def payload(diff: Diff) -> dict[str, Any]:
    # Through JSON, as a client receives it.
    decoded: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(diff))
    return decoded


def topic() -> PresenceTopic:
    counter = itertools.count(1)
    return PresenceTopic(lambda: f"r{next(counter)}")


def merged(*diffs: Diff) -> Diff | None:
    co = DiffCoalescer()
    for diff in diffs:
        co.add(diff)
    return co.take()


def test_empty_window() -> None:
    co = DiffCoalescer()
    assert co.pending == 0
    assert co.take() is None
    co.add(Diff())
    assert co.take() is None


def test_join_then_leave_vanishes() -> None:
    t = topic()
    assert merged(t.track("u", {}), t.untrack("u", "r1")) is None
    t.track("u", {})  # r2
    co = DiffCoalescer()
    co.add(t.track("v", {}), now=5.0)  # r3
    co.add(t.untrack("v", "r3"), now=6.0)
    assert co.pending == 0
    assert co.opened_at == 5.0
    assert co.take() is None
    assert co.opened_at is None


def test_leave_of_earlier_meta_stays() -> None:
    t = topic()
    t.track("u", {"a": 1})
    t.track("v", {})
    assert merged(t.untrack("u", "r1"), t.track("w", {})) == Diff(
        joins={"w": {"metas": [{"phx_ref": "r3"}]}},
        leaves={"u": {"metas": [{"a": 1, "phx_ref": "r1"}]}},
    )


def test_update_chain_from_known_ref_points_at_it() -> None:
    t = topic()
    t.track("u", {"v": 0})  # r1, known to the client
    out = merged(
        t.update("u", "r1", {"v": 1}),  # r2
        t.update("u", "r2", {"v": 2}),  # r3
        t.update("u", "r3", {"v": 3}),  # r4
    )
    assert out == Diff(
        joins={"u": {"metas": [{"v": 3, "phx_ref": "r4", "phx_ref_prev": "r1"}]}},
        leaves={"u": {"metas": [{"v": 0, "phx_ref": "r1"}]}},
    )


def test_update_chain_born_in_window_drops_prev() -> None:
    t = topic()
    d1 = t.track("u", {"v": 0})  # r1
    d2 = t.update("u", "r1", {"v": 1})  # r2
    out = merged(d1, d2)
    assert out == Diff(joins={"u": {"metas": [{"v": 1, "phx_ref": "r2"}]}})
    # The input diffs are untouched.
    assert d2.joins["u"]["metas"][0]["phx_ref_prev"] == "r1"


def test_prev_resolved_across_split_leave_and_join() -> None:
    # Another node may deliver an update's leave and join in separate diffs, leave first.
    base = Diff(joins={"u": {"metas": [{"phx_ref": "b"}]}})
    leave_b = Diff(leaves={"u": {"metas": [{"phx_ref": "b"}]}})
    join_c = Diff(joins={"u": {"metas": [{"phx_ref": "c", "phx_ref_prev": "b"}]}})
    assert merged(base, leave_b, join_c) == Diff(joins={"u": {"metas": [{"phx_ref": "c"}]}})
    assert merged(leave_b, join_c) == Diff(
        joins={"u": {"metas": [{"phx_ref": "c", "phx_ref_prev": "b"}]}},
        leaves={"u": {"metas": [{"phx_ref": "b"}]}},
    )


def test_leave_then_rejoin_of_known_meta_is_a_join_and_a_later_leave_stays() -> None:
    leave = Diff(leaves={"u": {"metas": [{"phx_ref": "a"}]}})
    join = Diff(joins={"u": {"metas": [{"phx_ref": "a", "x": 2}]}})
    assert merged(leave, join) == join
    assert merged(leave, join, leave) == leave
    state: State = {"u": {"metas": [{"phx_ref": "a"}, {"phx_ref": "b"}]}}
    one_by_one = sync_diff(sync_diff(sync_state({}, state), payload(leave)), payload(join))
    out = merged(leave, join)
    assert out is not None
    assert sync_diff(sync_state({}, state), payload(out)) == one_by_one


def test_joined_again_moves_to_end_like_sync_diff() -> None:
    a = Diff(joins={"u": {"metas": [{"phx_ref": "a"}]}})
    b = Diff(joins={"u": {"metas": [{"phx_ref": "b"}]}})
    a2 = Diff(joins={"u": {"metas": [{"phx_ref": "a", "v": 2}]}})
    out = merged(a, b, a2)
    assert out == Diff(joins={"u": {"metas": [{"phx_ref": "b"}, {"phx_ref": "a", "v": 2}]}})
    one_by_one: State = {}
    for diff in (a, b, a2):
        one_by_one = sync_diff(one_by_one, payload(diff))
    assert sync_diff({}, payload(out)) == one_by_one


def test_same_ref_under_two_keys_is_two_metas() -> None:
    a = Diff(joins={"k1": {"metas": [{"phx_ref": "r"}]}})
    b = Diff(leaves={"k2": {"metas": [{"phx_ref": "r"}]}})
    assert merged(a, b) == Diff(joins=a.joins, leaves=b.leaves)


def test_pending_counts_net_metas() -> None:
    t = topic()
    t.track("old", {})  # r1
    co = DiffCoalescer()
    co.add(t.track("u", {}))
    co.add(t.track("u", {}))
    co.add(t.untrack("old", "r1"))
    assert co.pending == 3
    co.add(t.untrack("u", "r2"))
    assert co.pending == 2


# --- property: coalesced == one by one, for random track/untrack/update sequences ----------

KEYS = ["1", "2", "10", "alice", "bob"]

op = st.one_of(
    st.tuples(st.just("track"), st.sampled_from(KEYS), st.integers(0, 9)),
    st.tuples(st.just("untrack"), st.integers(0, 1000), st.integers(0, 9)),
    st.tuples(st.just("update"), st.integers(0, 1000), st.integers(0, 9)),
    # An update whose leave and join arrive as two diffs, leave first (relayed by another node).
    st.tuples(st.just("update_split"), st.integers(0, 1000), st.integers(0, 9)),
    st.tuples(st.just("remove"), st.lists(st.integers(0, 1000), max_size=4), st.just(0)),
    st.tuples(st.just("flush"), st.just(0), st.just(0)),
)


def apply_op(t: PresenceTopic, name: str, arg: Any, value: int) -> Diff:
    refs = [meta["phx_ref"] for _key, meta in t.entries()]
    if name == "track":
        return t.track(arg, {"v": value})
    if not refs:
        return Diff()
    if name == "untrack":
        ref = refs[arg % len(refs)]
        key = t.key_of(ref)
        assert key is not None
        return t.untrack(key, ref)
    if name in ("update", "update_split"):
        ref = refs[arg % len(refs)]
        key = t.key_of(ref)
        assert key is not None
        return t.update(key, ref, {"v": value})
    return t.remove_refs(refs[i % len(refs)] for i in arg)


def view(state: State) -> dict[str, list[tuple[str, Any]]]:
    """Per key, the metas in the client's order, without phx_ref_prev (checked separately)."""
    return {
        key: [
            (m["phx_ref"], {k: v for k, v in m.items() if k != "phx_ref_prev"})
            for m in entry["metas"]
        ]
        for key, entry in state.items()
    }


def ref_sets(entries: dict[str, Any]) -> dict[str, set[str]]:
    return {key: {m["phx_ref"] for m in entry["metas"]} for key, entry in entries.items()}


@settings(max_examples=400, deadline=None)
@given(
    setup=st.lists(st.tuples(st.sampled_from(KEYS), st.integers(0, 9)), max_size=6),
    ops=st.lists(op, max_size=40),
)
def test_coalesced_equals_sequential(setup: list[tuple[str, int]], ops: list[Any]) -> None:
    t = topic()
    for key, value in setup:
        t.track(key, {"v": value})
    initial = payload_state(t)
    one_by_one = sync_state({}, initial)
    coalesced = sync_state({}, initial)
    replica = PresenceTopic.from_entries(lambda: "unused", t.entries())
    co = DiffCoalescer()
    prev_of: dict[str, str] = {}  # every update's ref -> the ref it replaced

    def flush() -> None:
        nonlocal coalesced
        out = co.take()
        assert co.pending == 0
        if out is not None:
            check_shape(out, coalesced)
            check_prev(out, coalesced, prev_of)
            replica.apply(out)
            coalesced = sync_diff(coalesced, payload(out))
        assert view(coalesced) == view(one_by_one)
        assert ref_sets(coalesced) == ref_sets(t.list())
        assert replica.list().keys() == t.list().keys()
        assert ref_sets(replica.list()) == ref_sets(t.list())

    for name, arg, value in ops:
        if name == "flush":
            flush()
            continue
        diff = apply_op(t, name, arg, value)
        for entry in diff.joins.values():
            for meta in entry["metas"]:
                if "phx_ref_prev" in meta:
                    prev_of[meta["phx_ref"]] = meta["phx_ref_prev"]
        parts = [diff]
        if name == "update_split":
            parts = [Diff(leaves=diff.leaves), Diff(joins=diff.joins)]
        for part in parts:
            one_by_one = sync_diff(one_by_one, payload(part))
            co.add(part)
    flush()


def payload_state(t: PresenceTopic) -> State:
    decoded: State = msgspec.json.decode(msgspec.json.encode(t.list()))
    return decoded


def check_shape(diff: Diff, before: State) -> None:
    """Nothing spurious: joins are new to the client, leaves are metas it holds."""
    for half in (diff.joins, diff.leaves):
        for entry in half.values():
            assert entry["metas"], "no empty entries"
    for key in diff.joins.keys() | diff.leaves.keys():
        known = {m["phx_ref"] for m in before.get(key, {"metas": []})["metas"]}
        joined = {m["phx_ref"] for m in diff.joins.get(key, {"metas": []})["metas"]}
        left = {m["phx_ref"] for m in diff.leaves.get(key, {"metas": []})["metas"]}
        assert not joined & known, "a meta that joined and left inside the window vanishes"
        assert left <= known, "only metas from before the window leave"


def check_prev(diff: Diff, before: State, prev_of: dict[str, str]) -> None:
    """phx_ref_prev names the newest ancestor the client knows, or is absent if none."""
    for key, entry in diff.joins.items():
        known = {m["phx_ref"] for m in before.get(key, {"metas": []})["metas"]}
        for meta in entry["metas"]:
            expected = prev_of.get(meta["phx_ref"])
            while expected is not None and expected not in known:
                expected = prev_of.get(expected)
            assert meta.get("phx_ref_prev") == expected
