"""The metrics the docs, dashboards and alerts name exist on a node's page, and the ones that
describe Redis, long-poll, presence and the grace queue move when their event happens: two real
gateway nodes, a real redis-server restarted mid-test, raw WebSocket and long-poll clients."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from tests.scale.conftest import TwoNodes, scrape, total, wait_subscribed
from tests.support.raw_ws import connect

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "docs" / "observability.md",
    ROOT / "deploy" / "prometheus" / "alerts.yml",
    *sorted((ROOT / "grafana" / "dashboards").glob("*.json")),
]
# Present only where the thing exists: per-process collectors, and multiprocess-mode helpers.
NOT_ON_EVERY_PAGE = {"gateway_build_info"}


def documented_families() -> set[str]:
    names: set[str] = set()
    for path in SOURCES:
        # Not after a colon: `job:gateway_replies:rate5m` is a recording rule's own name.
        for name in re.findall(r"(?<![:\w])gateway_[a-z_]+", path.read_text()):
            if name.endswith("_"):
                continue  # a prefix in prose ("gateway_redis_*")
            names.add(re.sub(r"_(bucket|count|sum)$", "", name))
    return names


async def eventually(check: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_documented_metrics_exist_and_move(two_nodes: TwoNodes) -> None:
    a, b = two_nodes.a, two_nodes.b
    room = f"room:{uuid.uuid4()}"
    async with (
        connect(a.ws_url, params={"token": "ann"}) as ann,
        connect(b.ws_url, params={"token": "bob"}) as bob,
    ):
        await ann.send_v2("1", "1", room, "phx_join", {})
        await bob.send_v2("1", "1", room, "phx_join", {})
        await wait_subscribed(two_nodes.redis.url, f"{room}#user:bob", 1)
        # Ann (node a) offers to Bob (node b): a cross-node publish.
        await eventually(lambda: total(scrape(a.port), "gateway_presence_entries") >= 1)
        await asyncio.sleep(0.3)  # the presence diff of Bob's join reaches node a
        await ann.send_v2("1", "2", room, "offer", {"sdp": "v=0", "to": "bob"})
        while True:
            frame = await bob.recv_json(timeout=10)
            if frame[3] == "offer":
                break
        # A refused socket (a version nobody speaks) and a long-poll session.
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{a.url}/socket/websocket?vsn=9.0.0") as resp:
                assert resp.status == 403
            async with http.get(f"{a.url}/socket/longpoll?vsn=2.0.0") as resp:
                assert resp.status == 200
                assert (await resp.json())["status"] == 410

        page = scrape(a.port)
        assert total(page, "gateway_redis_publish_seconds_count") > 0
        assert total(page, "gateway_redis_up", role="pubsub") == 1
        assert total(page, "gateway_presence_entries") == 1
        assert total(page, "gateway_longpoll_sessions_active") == 1
        assert total(page, "gateway_socket_connects_total", transport="longpoll", result="ok") == 1
        assert (
            total(page, "gateway_socket_connects_total", transport="websocket", result="vsn") == 1
        )

        # Redis restarts: node a notices, reconnects, and says so.
        two_nodes.redis.restart()
        await eventually(lambda: total(scrape(a.port), "gateway_redis_reconnects_total") >= 1)
        assert total(scrape(a.port), "gateway_redis_up", role="pubsub") == 1

    missing = {
        family
        for family in documented_families() - NOT_ON_EVERY_PAGE
        if not any(key.split("{", 1)[0].startswith(family) for key in page)
    }
    assert not missing, f"named in docs, dashboards or alerts but not on the page: {missing}"


@pytest.mark.parametrize("wait_s", [0.2])
async def test_grace_queue_gauge_and_undeliverable_count(
    two_nodes: TwoNodes, wait_s: float
) -> None:
    a = two_nodes.a
    room = f"room:{uuid.uuid4()}"
    async with connect(a.ws_url, params={"token": "ann"}) as ann:
        await ann.send_v2("1", "1", room, "phx_join", {})
        async with connect(a.ws_url, params={"token": "bob"}) as bob:
            await bob.send_v2("1", "1", room, "phx_join", {})
            await asyncio.sleep(wait_s)
        # Bob dropped without leaving: his grace period holds what Ann sends him.
        await asyncio.sleep(0.3)
        await ann.send_v2("1", "2", room, "offer", {"sdp": "v=0", "to": "bob"})
        await eventually(
            lambda: total(scrape(a.port), "gateway_signaling_grace_queue_messages") == 1
        )
        # Nobody named "zed" is in the room: undeliverable at once.
        await ann.send_v2("1", "3", room, "offer", {"sdp": "v=0", "to": "zed"})
        await eventually(
            lambda: (
                total(scrape(a.port), "gateway_signaling_undeliverable_total", event="offer") >= 1
            )
        )
