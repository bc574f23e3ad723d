"""Presence on the wire, frame by frame: state pushes, diff broadcasts, coalescing."""

from __future__ import annotations

import json
import re

from tests.rooms.conftest import Connect, StartServer

PHX_REF = re.compile(r"^[A-Za-z0-9_-]{16}$")


def check_meta(meta: dict[str, object], *, tracks: list[str] | None = None) -> None:
    expected = {"online_at", "phx_ref"} | ({"tracks"} if tracks is not None else set())
    assert set(meta) == expected
    assert isinstance(meta["online_at"], str) and meta["online_at"].isdigit()
    assert isinstance(meta["phx_ref"], str) and PHX_REF.match(meta["phx_ref"])
    if tracks is not None:
        assert meta["tracks"] == tracks


async def test_state_push_and_diffs_have_phoenix_shapes(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(presence_coalesce_ms=0)
    ann = await member(srv, topic, "ann")
    await ann.join()
    # The state is a push: the channel's join_ref, a null ref; it already holds the joiner.
    raw = await ann.sock.recv_frame()
    assert isinstance(raw, str)
    frame = json.loads(raw)
    assert frame[:4] == ["1", None, topic, "presence_state"]
    assert list(frame[4]) == ["ann"] and list(frame[4]["ann"]) == ["metas"]
    (ann_meta,) = frame[4]["ann"]["metas"]
    check_meta(ann_meta)
    # Compact, keys sorted, as Phoenix encodes it.
    assert raw == json.dumps(frame, separators=(",", ":"), sort_keys=True)

    bob = await member(srv, topic, "bob")
    await bob.join({"tracks": ["audio", "video"]})
    raw = await ann.sock.recv_frame()
    assert isinstance(raw, str)
    diff = json.loads(raw)
    assert diff[:4] == [None, None, topic, "presence_diff"]
    assert list(diff[4]) == ["joins", "leaves"] and diff[4]["leaves"] == {}
    (bob_meta,) = diff[4]["joins"]["bob"]["metas"]
    check_meta(bob_meta, tracks=["audio", "video"])
    assert raw == json.dumps(diff, separators=(",", ":"), sort_keys=True)

    state = (await bob.event("presence_state"))[4]
    assert state == {"ann": {"metas": [ann_meta]}, "bob": {"metas": [bob_meta]}}

    # An update (ready) is one diff: the new meta with phx_ref_prev, the old one in leaves.
    await bob.push("ready", {"tracks": ["video"]})
    update = (await ann.event("presence_diff"))[4]
    (new_meta,) = update["joins"]["bob"]["metas"]
    assert new_meta["phx_ref_prev"] == bob_meta["phx_ref"]
    assert new_meta["tracks"] == ["video"] and new_meta["phx_ref"] != bob_meta["phx_ref"]
    assert update["leaves"] == {"bob": {"metas": [bob_meta]}}

    # Leaving sends the last meta, unchanged, in leaves.
    await bob.sock.send_v2(bob.join_ref, "99", topic, "phx_leave", {})
    leave = (await ann.event("presence_diff"))[4]
    assert leave == {"joins": {}, "leaves": {"bob": {"metas": [new_meta]}}}


async def test_two_tabs_are_two_metas_under_one_key(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(presence_coalesce_ms=0)
    tab1, tab2 = await member(srv, topic, "ann"), await member(srv, topic, "ann")
    await tab1.join()
    await tab2.join()
    state = (await tab2.event("presence_state"))[4]
    assert list(state) == ["ann"] and len(state["ann"]["metas"]) == 2
    refs = [m["phx_ref"] for m in state["ann"]["metas"]]
    assert len(set(refs)) == 2


async def test_diffs_are_coalesced_over_the_window(
    room_server: StartServer, member: Connect, topic: str
) -> None:
    srv = await room_server(presence_coalesce_ms=150)
    ann = await member(srv, topic, "ann")
    await ann.join()
    await ann.event("presence_state")
    # Her own join, sent when the window closes: after her state, which phoenix.js accepts.
    own = (await ann.event("presence_diff"))[4]
    assert list(own["joins"]) == ["ann"] and own["leaves"] == {}
    others = [await member(srv, topic, name) for name in ("bob", "carol", "dan")]
    for other in others:
        await other.join()
    await others[2].sock.close()  # dan joins and drops inside the same window
    diff = (await ann.event("presence_diff"))[4]
    assert sorted(diff["joins"]) == ["bob", "carol"]
    assert diff["leaves"] == {}
    await ann.nothing("presence_diff", 0.3)
    assert srv.rooms.presence.diffs_sent == 2  # one per window
