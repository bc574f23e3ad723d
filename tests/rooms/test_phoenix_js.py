"""The official phoenix.js client under Node (`ws` transport) in a room of a gateway process."""

from __future__ import annotations

import uuid

import pytest

from tests.support.gateway_proc import GatewayFactory
from tests.support.node_client import NodeClientFactory

pytestmark = pytest.mark.js

OFFER_SDP = "v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
ANSWER_SDP = OFFER_SDP.replace("46117317", "77777777")


@pytest.mark.parametrize("phoenix", ["1.8.16", "1.8.0"])
async def test_offer_answer_candidates_and_chat_between_two_users(
    gateway: GatewayFactory, node_client: NodeClientFactory, phoenix: str
) -> None:
    gw = await gateway("--trust-token-as-user-id", "--presence-coalesce-ms", "20")
    topic = f"room:{uuid.uuid4()}"
    ann = await node_client(gw.ws_url, phoenix=phoenix, params={"token": "ann"})
    bob = await node_client(gw.ws_url, phoenix=phoenix, params={"token": "bob"})
    joined = await ann.join("c", topic, {"tracks": ["audio", "video"]})
    assert joined["status"] == "ok" and joined["response"] == {"user_id": "ann"}
    assert (await bob.join("c", topic, {"tracks": ["video"]}))["response"] == {"user_id": "bob"}

    # Both see each other ready, then Presence.list() shows both.
    assert (await bob.expect_ev("message", event="peer-ready"))["payload"]["from"] == "ann"
    assert (await ann.expect_ev("message", event="peer-ready"))["payload"]["from"] == "bob"
    for client in (ann, bob):
        await client.expect(lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 2, timeout=5)
        listed = {p["key"]: p["metas"] for p in await client.presence("c")}
        assert set(listed) == {"ann", "bob"}
        assert listed["ann"][0]["tracks"] == ["audio", "video"]
        assert listed["bob"][0]["online_at"].isdigit()

    offer = await ann.push("c", "offer", {"sdp": OFFER_SDP, "to": "bob"})
    assert offer["status"] == "ok"
    got = await bob.expect_ev("message", event="offer")
    assert got["payload"]["sdp"] == OFFER_SDP and got["payload"]["type"] == "offer"
    assert got["payload"]["from"] == "ann"

    answer = await bob.push("c", "answer", {"sdp": ANSWER_SDP, "to": "ann"})
    assert answer["status"] == "ok"
    got = await ann.expect_ev("message", event="answer")
    assert got["payload"]["type"] == "answer" and got["payload"]["from"] == "bob"

    candidates = [
        {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0",
         "sdpMLineIndex": 0, "to": "bob"},
        {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0, "to": "bob"},
    ]  # fmt: skip
    for candidate in candidates:
        assert (await ann.push("c", "ice-candidate", candidate))["status"] == "ok"
    for candidate in candidates:
        got = await bob.expect_ev("message", event="ice-candidate")
        assert got["payload"]["candidate"] == candidate["candidate"]
        assert got["payload"]["sdpMLineIndex"] == 0

    sent = await bob.push("c", "new_msg", {"body": "hello from bob"})
    assert sent["status"] == "ok"
    message_id = sent["response"]["id"]
    for client in (ann, bob):
        chat = await client.expect_ev("message", event="new_msg")
        assert chat["payload"]["body"] == "hello from bob"
        assert chat["payload"]["id"] == message_id and chat["payload"]["from"] == "bob"

    refused = await ann.push("c", "answer", {"sdp": ANSWER_SDP, "to": "bob", "from": "bob"})
    assert refused["status"] == "error"
    assert refused["response"] == {"reason": "from mismatch", "field": "from"}
    # The refusal left the channel joined.
    assert (await ann.state())["channels"]["c"] == "joined"


async def test_reconnecting_client_gets_what_was_sent_while_it_was_away(
    gateway: GatewayFactory, node_client: NodeClientFactory
) -> None:
    gw = await gateway("--trust-token-as-user-id", "--room-grace-ms", "5000")
    topic = f"room:{uuid.uuid4()}"
    ann = await node_client(gw.ws_url, params={"token": "ann"})
    bob = await node_client(gw.ws_url, params={"token": "bob"}, fast_reconnect=True)
    await ann.join("c", topic)
    await bob.join("c", topic)
    await ann.expect(lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 2)
    await bob.send({"op": "disconnect"})
    await bob.expect_ev("disconnected")
    await ann.expect(lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 1)
    queued = await ann.push("c", "offer", {"sdp": OFFER_SDP, "to": "bob"})
    assert queued["response"] == {"queued": True}
    await bob.send({"op": "connect"})
    assert (await bob.expect_ev("join_reply", status="ok"))["response"] == {"user_id": "bob"}
    got = await bob.expect_ev("message", event="offer")
    assert got["payload"]["from"] == "ann" and got["payload"]["sdp"] == OFFER_SDP
    await ann.expect(lambda e: e["ev"] == "presence_sync" and len(e["list"]) == 2)
