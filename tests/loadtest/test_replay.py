"""Replay of recorded sessions against a real (test) Phoenix server: identities, refs, room
remapping per group copy, peer ids, and the numbers in the report."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from gateway.recording import FrameLine, Header, Recording, write_recording
from loadtest.fleet import FleetConfig, run_fleet
from loadtest.report import build_report
from tests.loadtest.conftest import ServerFactory

ROOM = "room:0b7e7c1e-5a51-4c1a-9d55-0d2e8f6c1a11"


def _v2(*fields: object) -> str:
    return json.dumps(list(fields), separators=(",", ":"))


def _reply(jr: str, ref: str, topic: str, response: object) -> str:
    return _v2(jr, ref, topic, "phx_reply", {"response": response, "status": "ok"})


def write_pair_recordings(directory: Path) -> list[Path]:
    """Two peers recorded together: alice joins, chats, offers to bob; bob answers alice."""
    group = "group-1"
    alice = Recording(
        Header(
            session_id="alice",
            group_id=group,
            recorded_at="2026-01-01T00:00:00Z",
            params={"token": "<scrubbed>"},
            path="/socket",
        ),
        [
            FrameLine("in", 0.0, text=_v2("3", "3", ROOM, "phx_join", {})),
            FrameLine("out", 1.0, text=_reply("3", "3", ROOM, {"user_id": "u-alice"})),
            FrameLine("in", 5.0, text=_v2("3", "4", ROOM, "new_msg", {"body": "hello"})),
            FrameLine("out", 6.0, text=_reply("3", "4", ROOM, {})),
            FrameLine("in", 30.0, text=_v2("3", "5", ROOM, "offer", {"sdp": "v=0", "to": "u-bob"})),
            FrameLine("out", 31.0, text=_reply("3", "5", ROOM, {})),
            FrameLine("in", 60.0, text=_v2(None, "6", "phoenix", "heartbeat", {})),
            FrameLine("in", 80.0, text=_v2("3", "7", ROOM, "phx_leave", {})),
            FrameLine("out", 81.0, text=_reply("3", "7", ROOM, {})),
        ],
    )
    bob = Recording(
        Header(session_id="bob", group_id=group, recorded_at="2026-01-01T00:00:00Z",
               params={"token": "<scrubbed>"}),
        [
            FrameLine("in", 0.0, text=_v2("1", "1", ROOM, "phx_join", {})),
            FrameLine("out", 1.0, text=_reply("1", "1", ROOM, {"user_id": "u-bob"})),
            FrameLine("in", 50.0, text=_v2("1", "2", ROOM, "answer", {"sdp": "", "to": "u-alice"})),
            FrameLine("out", 51.0, text=_reply("1", "2", ROOM, {})),
        ],
    )  # fmt: skip
    paths = [directory / "alice.jsonl", directory / "bob.jsonl"]
    write_recording(paths[0], alice)
    write_recording(paths[1], bob)
    return paths


async def test_replay_50_users_keeps_recorded_peers_together(
    phoenix_server: ServerFactory, tmp_path: Path
) -> None:
    srv = await phoenix_server()
    write_pair_recordings(tmp_path)
    cfg = FleetConfig(
        url=srv.url, users=50, recordings=[str(tmp_path)], token_template="user-{n}",
        processes=2, speed=1.0,
    )  # fmt: skip
    result = await asyncio.to_thread(run_fleet, cfg)
    report = build_report(result)

    assert srv.connects == 50
    assert {p["token"] for p in srv.params_seen} == {f"user-{n}" for n in range(50)}
    assert all(p["vsn"] == "2.0.0" for p in srv.params_seen)
    # 25 copies of the group, each in its own new room, holding exactly the two peers.
    rooms = Counter(srv.topics_joined)
    assert len(rooms) == 25 and set(rooms.values()) == {2}
    assert ROOM not in rooms and all(t.startswith("room:") for t in rooms)
    # Users 2k (alice's session) and 2k+1 (bob's) are peers: their ids were rewritten live.
    offers = [(f, t) for e, f, t in srv.signals if e == "offer"]
    answers = [(f, t) for e, f, t in srv.signals if e == "answer"]
    assert len(offers) == 25 and len(answers) == 25
    for sender, target in offers + answers:
        n = int(sender.split("-")[1])
        assert target == f"user-{n ^ 1}"

    # alice: join, new_msg, offer, leave; bob: join, answer (recorded heartbeats are skipped).
    assert report.messages_sent == 25 * 4 + 25 * 2
    assert report.errors == 0, report.errors_by_reason
    assert report.users == 50 and report.users_started == 50
    assert report.latency["join"].count == 50
    assert report.latency["reply"].count == 25 * 3 + 25
    # The broadcast new_msg payload reaches both peers of each copy: delivery is matched.
    assert report.latency["delivery"].count == 50
    assert report.processes == 2


async def test_replay_loops_for_duration_at_speed(
    phoenix_server: ServerFactory, tmp_path: Path
) -> None:
    srv = await phoenix_server()
    write_pair_recordings(tmp_path)
    cfg = FleetConfig(
        url=srv.url, users=4, recordings=[str(tmp_path)], token_template="u{n}",
        speed=0.0, duration=1.5,
    )  # fmt: skip
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    # As fast as possible, sessions repeat until the duration is over.
    assert srv.connects > 8
    assert report.connects == srv.connects
    assert report.messages_sent > 4 * 6
    assert report.errors == 0, report.errors_by_reason
