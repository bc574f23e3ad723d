"""The official phoenix.js client with its LongPoll transport, next to WebSocket users."""

from __future__ import annotations

import pytest

from tests.support.gateway_proc import GatewayFactory
from tests.support.node_client import NodeClientFactory

pytestmark = pytest.mark.js


@pytest.mark.parametrize("phoenix", ["1.8.16", "1.8.0"])
async def test_longpoll_and_websocket_users_chat_in_one_topic(
    gateway: GatewayFactory, node_client: NodeClientFactory, phoenix: str
) -> None:
    gw = await gateway("--longpoll-window-ms", "1000", "--no-rate-limits")
    lp = await node_client(gw.ws_url, phoenix=phoenix, transport="longpoll")
    ws = await node_client(gw.ws_url, phoenix=phoenix, transport="websocket")
    await lp.expect_ev("open")
    await ws.expect_ev("open")
    assert (await lp.join("c", "echo:lobby"))["status"] == "ok"
    assert (await ws.join("c", "echo:lobby"))["status"] == "ok"

    reply = await lp.push("c", "hello", {"n": 1, "text": "héllo/\u2028"})
    assert (reply["status"], reply["response"]) == ("ok", {"n": 1, "text": "héllo/\u2028"})

    await lp.push("c", "broadcast", {"from": "longpoll"})
    for client in (ws, lp):
        got = await client.expect_ev("message", id="c", event="broadcast")
        assert got["payload"] == {"from": "longpoll"}
    await ws.push("c", "broadcast", {"from": "websocket", "sdp": "v=0\r\no=- 1 2 IN IP4 0.0.0.0"})
    got = await lp.expect_ev("message", id="c", event="broadcast")
    assert got["payload"]["from"] == "websocket"
    assert got["payload"]["sdp"].startswith("v=0\r\n")

    assert (await lp.leave("c"))["status"] == "ok"
    assert not [e for e in lp.events if e["ev"] in ("error", "close")]


async def test_more_than_100_pushes_in_one_tick_are_batched_and_all_answered(
    gateway: GatewayFactory, node_client: NodeClientFactory
) -> None:
    gw = await gateway("--longpoll-window-ms", "1000", "--no-rate-limits")
    lp = await node_client(gw.ws_url, transport="longpoll")
    assert (await lp.join("c", "echo:many"))["status"] == "ok"
    refs = list(range(1, 251))
    for ref in refs:
        await lp.send({"op": "push", "id": "c", "event": "n", "payload": {"i": ref}, "ref": ref})
    for ref in refs:
        reply = await lp.expect_ev("push_reply", 10.0, id="c", ref=ref)
        assert (reply["status"], reply["response"]) == ("ok", {"i": ref})


async def test_session_gone_makes_the_client_reconnect_and_rejoin(
    gateway: GatewayFactory, node_client: NodeClientFactory
) -> None:
    # With a 300 ms window a session idles out 450 ms after a poll; a stopped gateway
    # restarted on the same port has none of the old sessions: the client gets 410 and rejoins.
    gw = await gateway("--longpoll-window-ms", "300")
    lp = await node_client(gw.ws_url, transport="longpoll", fast_reconnect=True)
    assert (await lp.join("c", "echo:again"))["status"] == "ok"
    await gw.restart()
    rejoined = await lp.expect_ev("join_reply", 15.0, id="c", status="ok")
    assert rejoined["status"] == "ok"
    reply = await lp.push("c", "after", {"ok": True})
    assert reply["response"] == {"ok": True}
