"""A line-by-line Python port of phoenix.js `Presence` (assets/js/phoenix/presence.js, 1.8.x).

Used as the oracle for what a stock client's presence list becomes after a state or diffs.
JavaScript details kept on purpose:

- `syncDiff` mutates and returns the state it is given, and deep-clones the diff first;
- `syncState` deep-clones the current state and mutates the new state's entries it reuses;
- assigning an existing key keeps its place, deleting and re-adding moves it to the end
  (Python dicts behave like JS objects here, apart from integer-like keys, see `list_keys`);
- entries are always truthy objects, so `if (!x)` is `x is None` for them;
- `Presence.map` walks keys in `Object.getOwnPropertyNames` order (`list_keys`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

State = dict[str, dict[str, Any]]
Callback = Callable[[str, Any, Any], None]


def _clone(obj: Any) -> Any:
    # Presence.clone: JSON.parse(JSON.stringify(obj)).
    return json.loads(json.dumps(obj))


def _noop(_key: str, _current: Any, _other: Any) -> None:
    return None


def sync_diff(
    state: State,
    diff: dict[str, Any],
    on_join: Callback | None = None,
    on_leave: Callback | None = None,
) -> State:
    diff = _clone(diff)
    joins: State = diff["joins"]
    leaves: State = diff["leaves"]
    on_join = on_join or _noop
    on_leave = on_leave or _noop

    for key in list_keys(joins):
        new_presence = joins[key]
        current_presence = state.get(key)
        state[key] = new_presence
        if current_presence is not None:
            joined_refs = [m["phx_ref"] for m in state[key]["metas"]]
            cur_metas = [m for m in current_presence["metas"] if m["phx_ref"] not in joined_refs]
            state[key]["metas"][0:0] = cur_metas  # metas.unshift(...curMetas)
        on_join(key, current_presence, new_presence)

    for key in list_keys(leaves):
        left_presence = leaves[key]
        current_presence = state.get(key)
        if current_presence is None:
            continue
        refs_to_remove = [m["phx_ref"] for m in left_presence["metas"]]
        current_presence["metas"] = [
            p for p in current_presence["metas"] if p["phx_ref"] not in refs_to_remove
        ]
        on_leave(key, current_presence, left_presence)
        if len(current_presence["metas"]) == 0:
            del state[key]
    return state


def sync_state(
    current_state: State,
    new_state: State,
    on_join: Callback | None = None,
    on_leave: Callback | None = None,
) -> State:
    state: State = _clone(current_state)
    joins: State = {}
    leaves: State = {}

    for key in list_keys(state):
        if key not in new_state:
            leaves[key] = state[key]
    for key in list_keys(new_state):
        new_presence = new_state[key]
        current_presence = state.get(key)
        if current_presence is not None:
            new_refs = [m["phx_ref"] for m in new_presence["metas"]]
            cur_refs = [m["phx_ref"] for m in current_presence["metas"]]
            joined_metas = [m for m in new_presence["metas"] if m["phx_ref"] not in cur_refs]
            left_metas = [m for m in current_presence["metas"] if m["phx_ref"] not in new_refs]
            if joined_metas:
                joins[key] = new_presence
                joins[key]["metas"] = joined_metas
            if left_metas:
                leaves[key] = _clone(current_presence)
                leaves[key]["metas"] = left_metas
        else:
            joins[key] = new_presence
    return sync_diff(state, {"joins": joins, "leaves": leaves}, on_join, on_leave)


def list_keys(state: State) -> list[str]:
    """Object.getOwnPropertyNames order: array-index keys ascending, then insertion order."""

    def is_index(key: str) -> bool:
        return key.isdigit() and key.isascii() and str(int(key)) == key and int(key) < 2**32 - 1

    indices = sorted((k for k in state if is_index(k)), key=int)
    return indices + [k for k in state if not is_index(k)]


def presence_list(state: State, chooser: Callable[[str, Any], Any] | None = None) -> list[Any]:
    chooser = chooser or (lambda _key, pres: pres)
    return [chooser(key, state[key]) for key in list_keys(state)]


class PresenceClient:
    """The `Presence` object bound to a channel: buffers diffs until a state for the join ref."""

    def __init__(self) -> None:
        self.state: State = {}
        self.pending_diffs: list[dict[str, Any]] = []
        self.join_ref: str | None = None
        self.channel_join_ref: str | None = None
        self.on_join: Callback = _noop
        self.on_leave: Callback = _noop
        self.syncs = 0

    def rejoined(self, join_ref: str) -> None:
        """The channel (re)joined with a new join ref."""
        self.channel_join_ref = join_ref

    def in_pending_sync_state(self) -> bool:
        return self.join_ref is None or self.join_ref != self.channel_join_ref

    def on_state(self, new_state: State) -> None:
        self.join_ref = self.channel_join_ref
        self.state = sync_state(self.state, _clone(new_state), self.on_join, self.on_leave)
        for diff in self.pending_diffs:
            self.state = sync_diff(self.state, diff, self.on_join, self.on_leave)
        self.pending_diffs = []
        self.syncs += 1

    def on_diff(self, diff: dict[str, Any]) -> None:
        if self.in_pending_sync_state():
            self.pending_diffs.append(diff)
        else:
            self.state = sync_diff(self.state, diff, self.on_join, self.on_leave)
            self.syncs += 1

    def list(self) -> list[Any]:
        return presence_list(self.state)
