"""The phoenix.js Presence port behaves as the client does in the cases phoenix.js documents."""

from __future__ import annotations

from typing import Any

from .phoenix_presence_model import (
    PresenceClient,
    State,
    list_keys,
    presence_list,
    sync_diff,
    sync_state,
)


def metas(*refs: str, id: int = 1) -> dict[str, Any]:
    return {"metas": [{"id": id, "phx_ref": r} for r in refs]}


def test_sync_state_from_empty_does_not_mutate_input() -> None:
    state: State = {}
    new_state = {"u1": metas("1")}
    assert sync_state(state, new_state) == {"u1": metas("1")}
    assert state == {}


def test_sync_state_reports_joined_and_left_metas() -> None:
    joined: dict[str, Any] = {}
    left: dict[str, Any] = {}

    def on_join(key: str, current: Any, new: Any) -> None:
        joined[key] = (current, new)

    def on_leave(key: str, current: Any, gone: Any) -> None:
        left[key] = (current, gone)

    result = sync_state({"u1": metas("1")}, {"u1": metas("1", "1.2")}, on_join, on_leave)
    assert result == {"u1": metas("1", "1.2")}
    # phoenix.js hands onJoin the joined entry after it has put the current metas back in
    # front, so "new" lists every meta of the key.
    assert joined == {"u1": (metas("1"), metas("1", "1.2"))}
    assert left == {}

    result = sync_state({"u1": metas("1", "1.2")}, {"u1": metas("1")}, on_join, on_leave)
    assert result == {"u1": metas("1")}
    assert left == {"u1": (metas("1"), metas("1.2"))}


def test_sync_state_drops_missing_keys() -> None:
    assert sync_state({"u1": metas("1"), "u2": metas("2")}, {"u2": metas("2")}) == {
        "u2": metas("2")
    }


def test_sync_diff_joins_and_leaves() -> None:
    state = {"u1": metas("1"), "u2": metas("2", id=2), "u3": metas("3", id=3)}
    diff = {"joins": {"u1": metas("1.2")}, "leaves": {"u2": metas("2", id=2)}}
    assert sync_diff(state, diff) == {"u1": metas("1", "1.2"), "u3": metas("3", id=3)}
    assert sync_diff({}, {"joins": {"u1": metas("1")}, "leaves": {}}) == {"u1": metas("1")}


def test_sync_diff_keeps_key_with_remaining_metas() -> None:
    state = {"u1": metas("1", "1.2")}
    diff = {"joins": {}, "leaves": {"u1": metas("1")}}
    assert sync_diff(state, diff) == {"u1": metas("1.2")}


def test_sync_diff_join_moves_known_ref_to_end_and_leave_wins_over_join() -> None:
    state = {"u": metas("a", "b")}
    assert sync_diff(state, {"joins": {"u": metas("a")}, "leaves": {}}) == {"u": metas("b", "a")}
    both = {"joins": {"u": metas("c")}, "leaves": {"u": metas("c")}}
    assert sync_diff(state, both) == {"u": metas("b", "a")}


def test_list_order_integer_keys_first() -> None:
    state = {"b": metas("1"), "10": metas("2"), "a": metas("3"), "2": metas("4"), "01": metas("5")}
    assert list_keys(state) == ["2", "10", "b", "a", "01"]
    assert presence_list(state, lambda key, _p: key) == ["2", "10", "b", "a", "01"]


def test_client_buffers_diffs_until_state_for_current_join_ref() -> None:
    client = PresenceClient()
    client.rejoined("3")
    client.on_diff({"joins": {"u": metas("b")}, "leaves": {}})
    assert client.state == {}
    client.on_state({"u": metas("a")})
    assert client.state == {"u": metas("a", "b")}
    client.rejoined("7")
    client.on_diff({"joins": {}, "leaves": {"u": metas("a")}})
    assert client.state == {"u": metas("a", "b")}
    client.on_state({"u": metas("a", "b")})
    assert client.list() == [metas("b")]
