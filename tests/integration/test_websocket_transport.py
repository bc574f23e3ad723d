"""The upgrade and transport behaviours (reference sections 1 and 9, WT), and graceful drain."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp
import pytest

from gateway.auth.phoenix_token import sign
from tests.integration.conftest import StartServer
from tests.support.raw_ws import connect


async def refused_status(url: str, **kwargs: object) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with connect(url, **kwargs) as ws:  # type: ignore[arg-type]
            raise AssertionError(f"the upgrade was accepted (protocol {ws.protocol!r})")
    return info.value.status


async def test_plain_get_is_400(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with aiohttp.ClientSession() as http, http.get(f"{srv.http}/socket/websocket") as resp:
        assert resp.status == 400
        assert "upgrade" in (await resp.text())
    async with aiohttp.ClientSession() as http, http.post(f"{srv.http}/socket/websocket") as resp:
        assert resp.status == 400


async def test_vsn_negotiation(wire_server: StartServer) -> None:
    srv = await wire_server()
    for bad in ("123.1.1", "2.1.0", "abc", "3.0.0", "2.0.0-rc.1"):
        assert await refused_status(srv.url, vsn=bad) == 403
    for good in ("2.0.0", "2.0.7", "1.0.0", None):
        async with connect(srv.url, vsn=good) as ws:
            assert not ws.closed


async def test_origin_allow_list(wire_server: StartServer) -> None:
    srv = await wire_server(check_origin="//example.com")
    async with connect(srv.url, headers={"Origin": "https://example.com"}) as ws:
        assert not ws.closed
    async with connect(srv.url) as ws:  # no Origin header: native clients are allowed
        assert not ws.closed
    assert await refused_status(srv.url, headers={"Origin": "http://notallowed.com"}) == 403
    assert await refused_status(srv.url, headers={"Origin": "null"}) == 403


async def test_subprotocols_and_auth_token(wire_server: StartServer) -> None:
    srv = await wire_server(trust_token_as_user_id=True)
    bearer = "base64url.bearer.phx." + base64.b64encode(b"user-42").decode().rstrip("=")
    async with connect(srv.url, protocols=["phoenix", bearer]) as ws:
        assert ws.protocol == "phoenix"
        await ws.send_v2("1", "1", "echo:x", "phx_join", {})
        await ws.recv_json()
    assert [c.info.user_id for c in srv.services.hub.connections.values()] in ([], ["user-42"])
    assert await refused_status(srv.url, protocols=["mqtt"]) == 403
    async with connect(srv.url, protocols=["phoenix", "123"]) as ws:
        assert ws.protocol == "phoenix"


async def test_auth_token_becomes_user_id(wire_server: StartServer) -> None:
    srv = await wire_server(trust_token_as_user_id=True)
    bearer = "base64url.bearer.phx." + base64.b64encode(b"user-42").decode().rstrip("=")
    async with connect(srv.url, protocols=["phoenix", bearer]) as ws:
        await ws.send_v2("1", "1", "echo:x", "phx_join", {})
        await ws.recv_json()
        (conn,) = srv.services.hub.connections.values()
        assert conn.info.user_id == "user-42"
        assert conn.info.socket_id == "users_socket:user-42"


async def test_connect_refused_before_upgrade(wire_server: StartServer) -> None:
    secret = "s" * 64
    srv = await wire_server(allow_anonymous=False, phoenix_secret_key_base=secret)
    assert await refused_status(srv.url) == 403
    assert await refused_status(srv.url, params={"token": "SFMyNTY.bogus.token"}) == 403
    token = sign(secret, "user socket", 7, signed_at_ms=int(time.time() * 1000))
    async with connect(srv.url, params={"token": token}) as ws:
        await ws.send_v2("1", "1", "echo:x", "phx_join", {})
        await ws.recv_json()
        (conn,) = srv.services.hub.connections.values()
        assert conn.info.user_id == "7"
        assert conn.info.authenticated


async def test_connect_rate_limit_is_429_and_capacity_503(wire_server: StartServer) -> None:
    srv = await wire_server(rate_connect=1.0, burst_connect=2)
    async with connect(srv.url), connect(srv.url):
        assert await refused_status(srv.url) == 429
    full = await wire_server(max_connections=1)
    async with connect(full.url):
        assert await refused_status(full.url) == 503


async def test_query_params_last_duplicate_wins(wire_server: StartServer) -> None:
    srv = await wire_server(trust_token_as_user_id=True)
    url = srv.url + "/websocket?token=first&user%5Bid%5D=1&&token=second"
    async with connect(url) as ws:
        await ws.send_v2("1", "1", "echo:x", "phx_join", {})
        await ws.recv_json()
        (conn,) = srv.services.hub.connections.values()
        assert conn.info.user_id == "second"
        assert conn.info.params["user"] == {"id": "1"}
        assert conn.info.params["vsn"] == "2.0.0"


async def test_drain_closes_with_1012_and_refuses_new(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as a, connect(srv.url) as b:
        drain = asyncio.create_task(srv.services.hub.drain(grace_s=5, batch=1, interval_s=0.05))
        assert await a.wait_closed() == 1012
        assert await b.wait_closed() == 1012
        assert await drain == 0
    assert await refused_status(srv.url) == 503
    async with aiohttp.ClientSession() as http, http.get(f"{srv.http}/readyz") as resp:
        assert resp.status == 503
    async with aiohttp.ClientSession() as http, http.get(f"{srv.http}/healthz") as resp:
        assert resp.status == 200
