"""The raw WebSocket client builds Phoenix URLs and exchanges frames with the real gateway."""

from tests.support.gateway_proc import GatewayFactory
from tests.support.raw_ws import connect, socket_url


def test_socket_url_orders_params_before_vsn() -> None:
    assert socket_url("ws://h:1/socket", params={"token": "a b"}) == (
        "ws://h:1/socket/websocket?token=a+b&vsn=2.0.0"
    )
    assert socket_url("ws://h:1/socket/websocket", vsn=None) == "ws://h:1/socket/websocket"
    assert socket_url("ws://h:1/socket/", params=[("x", "1"), ("x", "2")], vsn="1.0.0") == (
        "ws://h:1/socket/websocket?x=1&x=2&vsn=1.0.0"
    )


async def test_heartbeat_round_trip_and_close_code(gateway: GatewayFactory) -> None:
    gw = await gateway()
    async with connect(gw.ws_url) as ws:
        assert ws.close_code is None
        await ws.send_v2(None, "1", "phoenix", "heartbeat", {})
        assert await ws.recv_json() == [
            None, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}},
        ]  # fmt: skip
        await ws.close()
        assert ws.closed
        assert ws.close_code == 1000


async def test_subprotocol_is_reported(gateway: GatewayFactory) -> None:
    gw = await gateway()
    async with connect(gw.ws_url, protocols=["phoenix"]) as ws:
        assert ws.protocol == "phoenix"
