"""The Node harness drives the official phoenix client against the real gateway's echo channel."""

import asyncio

import pytest

from tests.support.gateway_proc import GatewayFactory
from tests.support.node_client import HarnessError, NodeClient, NodeClientFactory


@pytest.mark.js
@pytest.mark.parametrize("phoenix", ["1.8.16", "1.8.0"])
async def test_join_push_binary_and_broadcast(
    gateway: GatewayFactory, node_client: NodeClientFactory, phoenix: str
) -> None:
    gw = await gateway()
    client = await node_client(gw.ws_url, phoenix=phoenix, auth_token="t0k")
    assert client.events[0]["phoenix"] == phoenix
    await client.expect_ev("open")
    join = await client.join("c1", "echo:room")
    assert join["status"] == "ok"

    reply = await client.push("c1", "hi", {"b": 2, "a": 1})
    assert reply["status"] == "ok"
    assert reply["response"] == {"a": 1, "b": 2}

    binary = await client.push_binary("c1", "bin", b"\x00\xff\x10")
    assert binary["response"] == {"bytes_hex": "00ff10"}

    await client.send({"op": "push", "id": "c1", "event": "broadcast", "payload": {"x": 1}})
    message = await client.expect_ev("message", id="c1", event="broadcast")
    assert message["payload"] == {"x": 1}
    assert await client.presence("c1") == []

    left = await client.leave("c1")
    assert left["status"] == "ok"
    await client.expect_ev("channel_close", id="c1")


@pytest.mark.js
async def test_expect_is_order_independent_and_events_keep_everything(
    gateway: GatewayFactory,
) -> None:
    gw = await gateway()
    async with NodeClient(gw.ws_url, fast_reconnect=True) as client:
        await client.send({"op": "join", "id": "a", "topic": "echo:a"})
        await client.send({"op": "join", "id": "b", "topic": "echo:b"})
        await client.expect_ev("join_reply", id="b", status="ok")
        await client.expect_ev("join_reply", id="a", status="ok")
        await client.expect_ev("open")  # arrived first, still buffered
        names = [event["ev"] for event in client.events]
        assert names[:2] == ["ready", "open"]

        await client.send({"op": "disconnect"})
        await client.expect_ev("disconnected")
        await client.send({"op": "connect"})
        await client.expect_ev("open")
        await client.expect_ev("join_reply", id="a", status="ok")  # rejoined after reopen


@pytest.mark.js
async def test_bad_command_and_dead_harness_fail_fast(gateway: GatewayFactory) -> None:
    gw = await gateway()
    async with NodeClient(gw.ws_url) as client:
        await client.send({"op": "push", "id": "nope", "event": "x"})
        with pytest.raises(HarnessError, match="no channel with id"):
            await client.expect_ev("push_reply", timeout=5)

        await client.send({"op": "exit"})
        started = asyncio.get_running_loop().time()
        with pytest.raises(HarnessError, match="exited with code 0"):
            await client.expect_ev("never", timeout=10)
        assert asyncio.get_running_loop().time() - started < 5


@pytest.mark.js
async def test_crash_output_is_reported(gateway: GatewayFactory) -> None:
    gw = await gateway()
    client = NodeClient(gw.ws_url, extra_args=["--timeout", "not-a-number"])
    with pytest.raises(HarnessError) as info:
        await client.start()
    await client.close()
    assert "--timeout must be a non-negative integer" in str(info.value)
    assert client.returncode == 2
