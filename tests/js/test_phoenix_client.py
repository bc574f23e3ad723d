"""The official phoenix.js client (1.8.16 and 1.8.0) against a gateway process."""

from __future__ import annotations

import pytest

from tests.support.gateway_proc import GatewayFactory
from tests.support.node_client import NodeClientFactory

VERSIONS = ["1.8.16", "1.8.0"]


@pytest.mark.js
@pytest.mark.parametrize("phoenix", VERSIONS)
async def test_broadcast_between_two_sockets(
    gateway: GatewayFactory, node_client: NodeClientFactory, phoenix: str
) -> None:
    gw = await gateway()
    alice = await node_client(gw.ws_url, phoenix=phoenix)
    bob = await node_client(gw.ws_url, phoenix=phoenix)
    for client in (alice, bob):
        assert (await client.join("c", "echo:shared"))["status"] == "ok"
    reply = await alice.push("c", "broadcast", {"text": "hello bob", "n": [1, 2]})
    assert reply["status"] == "ok"
    got = await bob.expect_ev("message", id="c", event="broadcast")
    assert got["payload"] == {"n": [1, 2], "text": "hello bob"}
    mine = await alice.expect_ev("message", id="c", event="broadcast")
    assert mine["payload"] == got["payload"]


@pytest.mark.js
@pytest.mark.parametrize("phoenix", VERSIONS)
async def test_auth_token_reaches_the_server(
    gateway: GatewayFactory, node_client: NodeClientFactory, phoenix: str
) -> None:
    gw = await gateway("--trust-token-as-user-id", "--log-level", "debug")
    client = await node_client(gw.ws_url, phoenix=phoenix, auth_token="user-7")
    await client.expect_ev("open")
    assert (await client.join("c", "echo:t"))["status"] == "ok"
    assert (await client.push("c", "ping", {"ok": True}))["response"] == {"ok": True}
    # The token travelled in Sec-WebSocket-Protocol and became the connection's user id.
    assert "user_id=user-7" in gw.output()


@pytest.mark.js
@pytest.mark.parametrize("phoenix", VERSIONS)
async def test_reconnect_and_rejoin_after_server_closes(
    gateway: GatewayFactory, node_client: NodeClientFactory, phoenix: str
) -> None:
    # The server's idle timeout closes the socket (code 1002, never 1000): the client must
    # reconnect and rejoin by itself.
    gw = await gateway("--idle-timeout-ms", "400")
    client = await node_client(
        gw.ws_url, phoenix=phoenix, fast_reconnect=True, extra_args=["--heartbeat-ms", "60000"]
    )
    assert (await client.join("c", "echo:r"))["status"] == "ok"
    closed = await client.expect_ev("close", timeout=5)
    assert closed["code"] == 1002
    await client.expect_ev("open", timeout=5)
    await client.expect_ev("open", timeout=5)
    rejoined = await client.expect_ev("join_reply", id="c", status="ok", timeout=5)
    assert rejoined["status"] == "ok"


@pytest.mark.js
@pytest.mark.parametrize("phoenix", VERSIONS)
async def test_reconnect_and_rejoin_after_server_restart(
    gateway: GatewayFactory, node_client: NodeClientFactory, phoenix: str
) -> None:
    gw = await gateway()
    client = await node_client(gw.ws_url, phoenix=phoenix, fast_reconnect=True)
    assert (await client.join("c", "echo:restart"))["status"] == "ok"
    await gw.restart()
    await client.expect_ev("close", timeout=10)
    await client.expect_ev("join_reply", id="c", status="ok", timeout=15)
    reply = await client.push("c", "ping", {"after": "restart"})
    assert reply["response"] == {"after": "restart"}


@pytest.mark.js
@pytest.mark.parametrize("phoenix", VERSIONS)
async def test_binary_push_and_reply(
    gateway: GatewayFactory, node_client: NodeClientFactory, phoenix: str
) -> None:
    gw = await gateway()
    client = await node_client(gw.ws_url, phoenix=phoenix)
    assert (await client.join("c", "echo:bin"))["status"] == "ok"
    payload = bytes(range(256))
    reply = await client.push_binary("c", "bin", payload)
    assert reply["status"] == "ok"
    assert reply["response"] == {"bytes_hex": payload.hex()}
