"""The tracker's member index: what `known_present` answers without a store read."""

from __future__ import annotations

from gateway.presence.memory import MemoryPresenceStore
from gateway.presence.tracker import PresenceTracker
from gateway.pubsub.core import PubSub

TOPIC = "room:4b0c2b54-0a51-4c39-9c59-2b8d5c0f2d11"


def tracker() -> PresenceTracker:
    return PresenceTracker(MemoryPresenceStore(), PubSub("n1"), "n1", coalesce_ms=0)


def entry(*refs: str) -> dict[str, list[dict[str, str]]]:
    return {"metas": [{"online_at": "1", "phx_ref": ref} for ref in refs]}


async def test_a_state_read_teaches_the_members_another_node_tracked() -> None:
    presence = tracker()
    await presence.track(TOPIC, "ann", {"online_at": "1"})
    presence.learn(TOPIC, {"ann": entry("a1"), "bob": entry("b1")})  # bob joined elsewhere
    assert presence.known_present(TOPIC, "ann")
    assert presence.known_present(TOPIC, "bob")
    assert not presence.known_present(TOPIC, "cat")


async def test_a_state_of_known_members_leaves_the_index_as_it_is() -> None:
    presence = tracker()
    ref, _ = await presence.track(TOPIC, "ann", {"online_at": "1"})
    assert ref is not None
    before = dict(presence.members[TOPIC])
    presence.learn(TOPIC, await presence.state(TOPIC))
    assert presence.members[TOPIC] == before
    await presence.untrack(TOPIC, "ann", ref)
    assert not presence.known_present(TOPIC, "ann")
