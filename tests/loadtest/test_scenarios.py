"""Built-in scenarios against the test server: the frames they send and what they measure."""

from __future__ import annotations

import asyncio
from collections import Counter

from loadtest.fleet import FleetConfig, assign, run_fleet
from loadtest.report import build_report
from loadtest.scenarios import ScenarioOptions
from tests.loadtest.conftest import ServerFactory


def test_groups_never_span_processes() -> None:
    cfg = FleetConfig(url="ws://x", users=40, processes=3,
                      scenario=ScenarioOptions(name="chat-rooms", room_size=10))  # fmt: skip
    slots = assign(cfg)
    assert sorted(n for s in slots for n in s) == list(range(40))
    for slot in slots:
        rooms = {n // 10 for n in slot}
        for room in rooms:
            assert all(n in slot for n in range(room * 10, room * 10 + 10))


async def test_signaling_pairs_offer_answer_and_trickle(phoenix_server: ServerFactory) -> None:
    srv = await phoenix_server()
    cfg = FleetConfig(
        url=srv.url, users=20, duration=2.0, processes=2, token_template="peer-{n}",
        scenario=ScenarioOptions(name="signaling-pairs", rate=10.0),
    )  # fmt: skip
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    assert report.errors == 0, report.errors_by_reason
    events = Counter(e for e, _, _ in srv.signals)
    assert events["offer"] == 10 and events["answer"] == 10
    assert events["ice-candidate"] > 20 * 10  # about 10/s each for most of 2 s
    # Every signal went to the other member of its pair, learned from the join reply.
    for _, sender, target in srv.signals:
        n = int(sender.split("-")[1])
        assert target == f"peer-{n ^ 1}"
    rooms = Counter(srv.topics_joined)
    assert len(rooms) == 10 and set(rooms.values()) == {2}
    delivery = report.latency["delivery"]
    assert delivery.count >= events["offer"] + events["answer"] + events["ice-candidate"] * 0.9
    assert delivery.p50_ms < 100


async def test_chat_rooms_of_ten_deliver_to_every_member(phoenix_server: ServerFactory) -> None:
    srv = await phoenix_server()
    cfg = FleetConfig(
        url=srv.url, users=20, duration=1.5,
        scenario=ScenarioOptions(name="chat-rooms", rate=5.0, room_size=10),
    )  # fmt: skip
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    assert report.errors == 0, report.errors_by_reason
    rooms = Counter(srv.topics_joined)
    assert len(rooms) == 2 and set(rooms.values()) == {10}
    pushes = report.latency["reply"].count
    sent = report.messages_sent - 20  # minus the joins
    # Each new_msg is broadcast to the 10 members of its room; a member that joined a moment
    # later, or closed a moment earlier, misses the odd one at the edges of the run. A push sent
    # at the very end may be delivered to its room before the run ends but its reply after.
    assert pushes <= sent
    assert pushes * 10 * 0.9 <= report.latency["delivery"].count <= sent * 10


async def test_broadcast_room_fans_out(phoenix_server: ServerFactory) -> None:
    srv = await phoenix_server()
    cfg = FleetConfig(
        url=srv.url, users=12, duration=1.5, processes=2,
        scenario=ScenarioOptions(name="broadcast-room", rate=4.0, topic="echo:all"),
    )  # fmt: skip
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    assert report.errors == 0, report.errors_by_reason
    assert set(srv.topics_joined) == {"echo:all"}
    sends = report.latency["reply"].count
    assert sends > 12
    # Users joining at slightly different times miss a few early broadcasts; nearly all land.
    assert report.latency["delivery"].count >= sends * 12 * 0.9


async def test_pushes_nobody_awaits_are_not_errors_on_a_noreply_server(
    phoenix_server: ServerFactory,
) -> None:
    # The usual Phoenix app: room events are relayed and `{:noreply, socket}`.
    srv = await phoenix_server(room_replies=False)
    cfg = FleetConfig(
        url=srv.url, users=10, duration=1.5, processes=1, token_template="peer-{n}",
        reply_timeout_s=0.5, scenario=ScenarioOptions(name="signaling-pairs", rate=10.0),
    )  # fmt: skip
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    assert report.errors == 0, report.errors_by_reason
    sent = Counter(e for e, _, _ in srv.signals)
    assert sent["offer"] == 5 and sent["answer"] == 5
    assert report.unanswered == sum(sent.values())
    assert "reply" not in report.latency or report.latency["reply"].count == 0
    # What was relayed is still measured end to end.
    assert report.latency["delivery"].count >= 0.9 * sum(sent.values())


async def test_expect_replies_makes_a_missing_reply_an_error(
    phoenix_server: ServerFactory,
) -> None:
    srv = await phoenix_server(room_replies=False)
    cfg = FleetConfig(
        url=srv.url, users=4, duration=1.5, processes=1, token_template="peer-{n}",
        reply_timeout_s=0.5,
        scenario=ScenarioOptions(name="signaling-pairs", rate=4.0, expect_replies=True),
    )  # fmt: skip
    report = build_report(await asyncio.to_thread(run_fleet, cfg))
    assert report.errors_by_reason.get("reply_timeout", 0) > 0
    assert report.unanswered == 0
