"""A long-poll user and a WebSocket user in one room: chat, offer/answer and presence."""

from __future__ import annotations

import uuid

import pytest

from tests.support.gateway_proc import GatewayFactory
from tests.support.node_client import NodeClientFactory

pytestmark = pytest.mark.js

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


@pytest.mark.parametrize("phoenix", ["1.8.16", "1.8.0"])
async def test_longpoll_and_websocket_users_share_a_room(
    gateway: GatewayFactory, node_client: NodeClientFactory, phoenix: str
) -> None:
    gw = await gateway("--trust-token-as-user-id", "--presence-coalesce-ms", "20")
    topic = f"room:{uuid.uuid4()}"
    poller = await node_client(
        gw.ws_url, phoenix=phoenix, transport="longpoll", params={"token": "lp"}
    )
    socket = await node_client(gw.ws_url, phoenix=phoenix, params={"token": "ws"})
    assert (await poller.join("r", topic))["response"] == {"user_id": "lp"}
    assert (await socket.join("r", topic))["response"] == {"user_id": "ws"}

    for client in (poller, socket):
        await client.expect(
            lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 2, timeout=10
        )
        assert {p["key"] for p in await client.presence("r")} == {"lp", "ws"}

    assert (await poller.push("r", "offer", {"sdp": SDP, "to": "ws"}))["status"] == "ok"
    offer = await socket.expect_ev("message", event="offer", timeout=10)
    assert offer["payload"]["from"] == "lp" and offer["payload"]["type"] == "offer"

    assert (await socket.push("r", "answer", {"sdp": SDP, "to": "lp"}))["status"] == "ok"
    answer = await poller.expect_ev("message", event="answer", timeout=10)
    assert answer["payload"]["from"] == "ws" and answer["payload"]["type"] == "answer"

    sent = await poller.push("r", "new_msg", {"body": "over long-poll"})
    assert sent["status"] == "ok"
    for client in (poller, socket):
        chat = await client.expect_ev("message", event="new_msg", timeout=10)
        assert chat["payload"]["body"] == "over long-poll" and chat["payload"]["from"] == "lp"

    # The WebSocket user leaves: the long-poll user's presence list shrinks to itself.
    await socket.leave("r")
    await poller.expect(lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 1, timeout=10)
