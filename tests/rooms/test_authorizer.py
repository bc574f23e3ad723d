"""The per-room authorization hook: sync and async callables decide who may join which room."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.signaling.authorize import load_authorizer
from tests.integration.conftest import StartServer
from tests.rooms.authorizers import ALLOWED_ROOM
from tests.support.raw_ws import connect

OTHER_ROOM = "22222222-2222-4222-8222-222222222222"
UNAUTHORIZED = {"response": {"reason": "unauthorized"}, "status": "error"}


async def test_sync_hook_picks_rooms(wire_server: StartServer) -> None:
    srv = await wire_server(room_authorizer="tests.rooms.authorizers:only_allowed_room")
    async with connect(srv.url) as ws:
        await ws.send_v2("1", "1", f"room:{OTHER_ROOM}", "phx_join", {})
        assert (await ws.recv_json())[4] == UNAUTHORIZED
        await ws.send_v2("2", "2", f"room:{ALLOWED_ROOM}", "phx_join", {})
        assert (await ws.recv_json())[4]["status"] == "ok"


async def test_async_hook_sees_connect_params(wire_server: StartServer) -> None:
    srv = await wire_server(room_authorizer="tests.rooms.authorizers:vip_param")
    async with connect(srv.url, params={"vip": "no"}) as ws:
        await ws.send_v2("1", "1", f"room:{OTHER_ROOM}", "phx_join", {})
        assert (await ws.recv_json())[4] == UNAUTHORIZED
    async with connect(srv.url, params={"vip": "yes"}) as ws:
        await ws.send_v2("1", "1", f"room:{OTHER_ROOM}", "phx_join", {})
        assert (await ws.recv_json())[4]["status"] == "ok"


@pytest.mark.parametrize(
    "spec",
    [
        "nomodule",
        "no.such.module:f",
        "tests.rooms.authorizers:missing",
        "tests.rooms.authorizers:ALLOWED_ROOM",
    ],
)
def test_bad_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        load_authorizer(spec)
