"""Merges the presence diffs of one topic over a window into one equivalent `presence_diff`.

Equivalence is judged by the client: phoenix.js `Presence.syncDiff` (phoenix/assets/js/phoenix/presence.js),
applied to the state the client held before the window, must give the same metas, in the same
order within each key, from the merged diff as from the original diffs one by one. syncDiff
applies a diff's joins first, then its leaves; a join appends the joined metas after the
key's other metas, a leave removes metas by phx_ref, and a key left with no metas is deleted.

Metas are identified by (key, phx_ref): phoenix.js matches refs within a key only. A join is
taken to be new to the client unless the window saw that meta leave first: Phoenix makes a
fresh ref for every track and update, so a present ref is never joined again. Rules:

- a meta joined and then left inside the window vanishes from both halves;
- a leave of a meta the window did not join existed before the window: it stays a leave;
- a meta joined again later in the window moves to the end of its key, as syncDiff moves it;
- a meta that left and then joined again (it existed before) becomes a join only: syncDiff
  appends it, exactly what leave-then-join did;
- `phx_ref_prev` (update chains) is rewritten to the ref the client knows: if the previous
  meta was itself joined inside the window, the new meta takes that meta's own (already
  rewritten) `phx_ref_prev`, or none when the chain started inside the window. The client
  never saw the intermediate refs.

What stays unknown: the order of keys. A key emptied and refilled inside the window moves to
the end of the client's object when diffs are applied one by one, and keeps its place with the
merged diff; phoenix.js lists integer-like keys in numeric order either way, and no client
reads meaning into key order.

Metas in the input diffs are not mutated; a rewritten meta is a copy.
"""

from __future__ import annotations

from .state import PHX_REF, PHX_REF_PREV, Diff, Entries, Meta

_Ident = tuple[str, str]  # (key, phx_ref)


class DiffCoalescer:
    """Accumulates diffs with `add`; `take` returns their merge and starts a new window."""

    __slots__ = ("_joins", "_leaves", "_rejoined", "_vanished", "opened_at")

    def __init__(self) -> None:
        # Net joins, in the order the client would list them within each key.
        self._joins: dict[_Ident, Meta] = {}
        # Net leaves: metas from before the window.
        self._leaves: dict[_Ident, Meta] = {}
        # Metas that existed before the window, left, and joined again: a later leave of them
        # must still reach the client.
        self._rejoined: set[_Ident] = set()
        # Metas that joined and left inside the window -> their rewritten phx_ref_prev, so a
        # later update naming them as previous can point past them.
        self._vanished: dict[_Ident, str | None] = {}
        # When the first diff of the current window was added (`now` of that `add`).
        self.opened_at: float | None = None

    @property
    def pending(self) -> int:
        """Metas the merged diff would carry now (0: `take` would return None)."""
        return len(self._joins) + len(self._leaves)

    def add(self, diff: Diff, now: float | None = None) -> None:
        """Fold one diff into the window; `now` (any clock) stamps the window's opening."""
        if self.opened_at is None:
            self.opened_at = now
        # Joins before leaves, the order syncDiff applies one diff in.
        for key, entry in diff.joins.items():
            for meta in entry["metas"]:
                self._join(key, meta)
        for key, entry in diff.leaves.items():
            for meta in entry["metas"]:
                self._leave(key, meta)

    def take(self) -> Diff | None:
        """The merged diff of the window (None if it nets out to nothing); resets the window."""
        joins: Entries = {}
        leaves: Entries = {}
        for (key, _ref), meta in self._joins.items():
            _append(joins, key, meta)
        for (key, _ref), meta in self._leaves.items():
            _append(leaves, key, meta)
        self._joins = {}
        self._leaves = {}
        self._rejoined = set()
        self._vanished = {}
        self.opened_at = None
        if not joins and not leaves:
            return None
        return Diff(joins=joins, leaves=leaves)

    def _join(self, key: str, meta: Meta) -> None:
        ident = (key, meta[PHX_REF])
        prev = meta.get(PHX_REF_PREV)
        if prev is not None:
            known = self._known_prev(key, prev)
            if known != prev:
                meta = {k: v for k, v in meta.items() if k != PHX_REF_PREV}
                if known is not None:
                    meta[PHX_REF_PREV] = known
        if self._leaves.pop(ident, None) is not None:
            self._rejoined.add(ident)
        self._vanished.pop(ident, None)
        # Re-inserting moves a re-joined meta to the end, as syncDiff's append does.
        self._joins.pop(ident, None)
        self._joins[ident] = meta

    def _leave(self, key: str, meta: Meta) -> None:
        ident = (key, meta[PHX_REF])
        joined = self._joins.pop(ident, None)
        if joined is None:
            self._leaves.setdefault(ident, meta)
        elif ident in self._rejoined:
            self._rejoined.discard(ident)
            self._leaves[ident] = meta
        else:
            self._vanished[ident] = joined.get(PHX_REF_PREV)

    def _known_prev(self, key: str, prev: str) -> str | None:
        # The ref the client can know for `prev`: itself, unless it was born in this window.
        ident = (key, prev)
        joined = self._joins.get(ident)
        if joined is not None and ident not in self._rejoined:
            value = joined.get(PHX_REF_PREV)
            return value if isinstance(value, str) else None
        if ident in self._vanished:
            return self._vanished[ident]
        return prev


def _append(entries: Entries, key: str, meta: Meta) -> None:
    entry = entries.get(key)
    if entry is None:
        entries[key] = {"metas": [meta]}
    else:
        entry["metas"].append(meta)
