"""Phoenix.Presence's data model for one topic: keys holding metas, each meta named by a phx_ref.

Wire shapes (docs/rooms.md, "Presence"; phoenix/lib/phoenix/presence.ex), all plain JSON-ready dicts:

- `presence_state`: `{key: {"metas": [meta, ...]}}`
- `presence_diff`:  `{"joins": {key: {"metas": [...]}}, "leaves": {key: {"metas": [...]}}}`,
  both keys always present.

A meta is the app's dict plus `phx_ref` (and `phx_ref_prev` after an update). Metas are never
mutated once stored: every change stores a new dict, so a meta may be shared between the state,
a diff and an encoder without copying.

The state is a function of its (key, meta) entries alone, so a storage backend can rebuild a
`PresenceTopic` from whatever it keeps with `PresenceTopic.from_entries`.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

PHX_REF = "phx_ref"
PHX_REF_PREV = "phx_ref_prev"

Meta = dict[str, Any]
# {key: {"metas": [meta, ...]}}: the shape of `presence_state` and of each half of a diff.
Entries = dict[str, dict[str, list[Meta]]]


class Diff(msgspec.Struct):
    """A `presence_diff` payload; msgspec encodes it as `{"joins":{...},"leaves":{...}}`."""

    joins: Entries = {}
    leaves: Entries = {}

    def is_empty(self) -> bool:
        return not self.joins and not self.leaves

    def to_payload(self) -> dict[str, Entries]:
        """The plain-dict payload, for encoders that take no Structs."""
        return {"joins": self.joins, "leaves": self.leaves}

    @classmethod
    def from_payload(cls, payload: Any) -> Diff:
        """Validate a decoded payload (from another node, say); raises msgspec.ValidationError."""
        diff = msgspec.convert(payload, cls)
        for half in (diff.joins, diff.leaves):
            for entry in half.values():
                for meta in entry.get("metas", ()):
                    if not isinstance(meta.get(PHX_REF), str):
                        raise msgspec.ValidationError("every meta needs a string phx_ref")
        return diff


def _add(entries: Entries, key: str, meta: Meta) -> None:
    entry = entries.get(key)
    if entry is None:
        entries[key] = {"metas": [meta]}
    else:
        entry["metas"].append(meta)


def make_ref(now_ns: int, node_hash: int, counter: int) -> str:
    """A 16-character url-safe phx_ref, laid out as Phoenix.Tracker lays its refs out.

    12 bytes: the time in nanoseconds (64 bits), a hash of the node and process (16 bits) and
    a counter (16 bits), url-safe base64 encoded (12 bytes need no padding).
    """
    raw = struct.pack(">QHH", now_ns & 0xFFFF_FFFF_FFFF_FFFF, node_hash & 0xFFFF, counter & 0xFFFF)
    return base64.urlsafe_b64encode(raw).decode("ascii")


def node_hash(node: str) -> int:
    """A stable 16-bit hash of a node name (Python's `hash` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(node.encode(), digest_size=2).digest(), "big")


class RefGenerator:
    """Makes unique phx_refs for one node: `RefGenerator("node-a", time.time_ns)()`.

    Refs from one generator never repeat: the time part is forced to increase strictly even if
    the clock stalls or steps back, and the counter separates generators of one node that read
    the same nanosecond. Different nodes differ by their hash (16 bits, as in Phoenix).
    """

    __slots__ = ("_clock", "_counter", "_hash", "_last_ns")

    def __init__(self, node: str, clock_ns: Callable[[], int], counter: int = 0) -> None:
        self._hash = node_hash(node)
        self._clock = clock_ns
        self._counter = counter
        self._last_ns = -1

    def __call__(self) -> str:
        now = self._clock()
        if now <= self._last_ns:
            now = self._last_ns + 1
        self._last_ns = now
        self._counter = (self._counter + 1) & 0xFFFF
        return make_ref(now, self._hash, self._counter)


class PresenceTopic:
    """The presences of one topic: `{key: {phx_ref: meta}}`, insertion-ordered.

    Every mutation returns the `Diff` to broadcast; a no-op returns an empty diff (check
    `diff.is_empty()` before broadcasting).
    """

    __slots__ = ("_keys", "_make_ref", "_ref_keys")

    def __init__(self, make_ref: Callable[[], str]) -> None:
        self._make_ref = make_ref
        self._keys: dict[str, dict[str, Meta]] = {}
        # phx_ref -> key, so untrack-by-ref and bulk removal need no scan.
        self._ref_keys: dict[str, str] = {}

    @classmethod
    def from_entries(
        cls, make_ref: Callable[[], str], entries: Iterable[tuple[str, Meta]]
    ) -> PresenceTopic:
        """Rebuild a topic from stored (key, meta) pairs; each meta must carry its phx_ref."""
        topic = cls(make_ref)
        for key, meta in entries:
            topic._put(key, meta)
        return topic

    def entries(self) -> Iterator[tuple[str, Meta]]:
        """Every (key, meta) pair, in the order `from_entries` rebuilds the same state from."""
        for key, metas in self._keys.items():
            for meta in metas.values():
                yield key, meta

    def track(self, key: str, meta: Meta, *, ref: str | None = None) -> Diff:
        """Add a meta under `key` with a fresh phx_ref (or `ref`, when the caller needs it first).

        The stored meta is a copy of `meta` with `phx_ref` set and any `phx_ref_prev` dropped;
        it is the single meta in `diff.joins[key]["metas"]`.
        """
        ref = ref if ref is not None else self._make_ref()
        if ref in self._ref_keys:
            raise ValueError(f"phx_ref {ref!r} is already tracked")
        stored = {k: v for k, v in meta.items() if k != PHX_REF_PREV}
        stored[PHX_REF] = ref
        self._put(key, stored)
        return Diff(joins={key: {"metas": [stored]}})

    def untrack(self, key: str, phx_ref: str) -> Diff:
        """Remove one meta; the diff carries it in leaves (empty if it was not tracked)."""
        metas = self._keys.get(key)
        if metas is None or phx_ref not in metas:
            return Diff()
        meta = self._pop(key, phx_ref)
        return Diff(leaves={key: {"metas": [meta]}})

    def update(self, key: str, old_ref: str, new_meta: Meta, *, ref: str | None = None) -> Diff:
        """Replace a meta: the new one gets a new phx_ref and `phx_ref_prev = old_ref`.

        As in Phoenix (phoenix/lib/phoenix/presence.ex), one diff carries the new meta in joins and the old one in
        leaves. The new meta takes the old one's place in its key's order. Empty diff if
        `old_ref` is not tracked under `key`.
        """
        metas = self._keys.get(key)
        if metas is None or old_ref not in metas:
            return Diff()
        ref = ref if ref is not None else self._make_ref()
        if ref in self._ref_keys:
            raise ValueError(f"phx_ref {ref!r} is already tracked")
        old = metas[old_ref]
        stored = {k: v for k, v in new_meta.items() if k not in (PHX_REF, PHX_REF_PREV)}
        stored[PHX_REF] = ref
        stored[PHX_REF_PREV] = old_ref
        # Rebuild the key's dict so the new meta sits where the old one was.
        self._keys[key] = {
            (ref if r == old_ref else r): (stored if r == old_ref else m) for r, m in metas.items()
        }
        del self._ref_keys[old_ref]
        self._ref_keys[ref] = key
        return Diff(joins={key: {"metas": [stored]}}, leaves={key: {"metas": [old]}})

    def remove_refs(self, refs: Iterable[str]) -> Diff:
        """Remove many metas at once (a dead node's, say); unknown refs are skipped."""
        leaves: Entries = {}
        for ref in refs:
            key = self._ref_keys.get(ref)
            if key is not None:
                _add(leaves, key, self._pop(key, ref))
        return Diff(leaves=leaves)

    def apply(self, diff: Diff) -> None:
        """Apply a diff made elsewhere (another node's) as phoenix.js does: joins, then leaves.

        A joined ref already present under its key is replaced in place; a leave of an unknown
        ref is ignored.
        """
        for key, entry in diff.joins.items():
            for meta in entry["metas"]:
                self._put(key, meta)
        for key, entry in diff.leaves.items():
            metas = self._keys.get(key)
            if metas is None:
                continue
            for meta in entry["metas"]:
                if meta[PHX_REF] in metas:
                    self._pop(key, meta[PHX_REF])

    def get(self, key: str) -> list[Meta]:
        """The metas under `key`, oldest first (empty if none)."""
        metas = self._keys.get(key)
        return list(metas.values()) if metas else []

    def refs(self, key: str) -> list[str]:
        metas = self._keys.get(key)
        return list(metas) if metas else []

    def key_of(self, phx_ref: str) -> str | None:
        return self._ref_keys.get(phx_ref)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        """Number of keys (users), not metas."""
        return len(self._keys)

    @property
    def meta_count(self) -> int:
        return len(self._ref_keys)

    # Defined after every annotation that says `list[...]`, which it would shadow.
    def list(self) -> Entries:
        """The `presence_state` payload: `{key: {"metas": [...]}}` (fresh lists, shared metas)."""
        return {key: {"metas": list(metas.values())} for key, metas in self._keys.items()}

    def _put(self, key: str, meta: Meta) -> None:
        ref = meta.get(PHX_REF)
        if not isinstance(ref, str):
            raise ValueError(f"meta under {key!r} has no string phx_ref")
        other = self._ref_keys.get(ref)
        if other is not None and other != key:
            self._pop(other, ref)  # a ref names one meta: the latest placement wins
        metas = self._keys.get(key)
        if metas is None:
            metas = self._keys[key] = {}
        metas[ref] = meta
        self._ref_keys[ref] = key

    def _pop(self, key: str, ref: str) -> Meta:
        metas = self._keys[key]
        meta = metas.pop(ref)
        del self._ref_keys[ref]
        if not metas:
            del self._keys[key]
        return meta
