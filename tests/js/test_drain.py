"""SIGTERM drains: sockets close with 1012, the process exits, phoenix.js comes back later."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from tests.support.gateway_proc import GatewayFactory
from tests.support.node_client import NodeClientFactory
from tests.support.raw_ws import connect


@pytest.mark.js
async def test_sigterm_closes_with_1012_and_clients_rejoin_the_next_server(
    gateway: GatewayFactory, node_client: NodeClientFactory
) -> None:
    gw = await gateway("--drain-batch", "2", "--drain-interval-ms", "50")
    clients = [await node_client(gw.ws_url, fast_reconnect=True) for _ in range(3)]
    for client in clients:
        assert (await client.join("c", "echo:drain"))["status"] == "ok"
    async with connect(gw.ws_url) as raw:
        gw.send_signal(signal.SIGTERM)
        assert await raw.wait_closed(timeout=10) == 1012
    for client in clients:
        closed = await client.expect_ev("close", timeout=10)
        assert closed["code"] == 1012
    assert await gw.wait(15) == 0
    assert "drain_finished" in gw.output()

    await gw.start()
    for client in clients:
        await client.expect_ev("join_reply", id="c", status="ok", timeout=15)
        assert (await client.push("c", "ping", {"back": True}))["response"] == {"back": True}


async def test_readyz_turns_503_while_draining(gateway: GatewayFactory) -> None:
    gw = await gateway("--drain-grace-s", "3", "--drain-batch", "1", "--drain-interval-ms", "2000")
    async with connect(gw.ws_url), connect(gw.ws_url):
        gw.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/readyz") as resp:
            assert resp.status == 503
            assert "draining" in (await resp.json())["problems"]
    assert await gw.wait(15) == 0
