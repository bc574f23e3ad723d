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
    assert [c.info.user_id for c in srv.node.hub.connections.values()] in ([], ["user-42"])
    assert await refused_status(srv.url, protocols=["mqtt"]) == 403
    async with connect(srv.url, protocols=["phoenix", "123"]) as ws:
        assert ws.protocol == "phoenix"


async def test_auth_token_becomes_user_id(wire_server: StartServer) -> None:
    srv = await wire_server(trust_token_as_user_id=True)
    bearer = "base64url.bearer.phx." + base64.b64encode(b"user-42").decode().rstrip("=")
    async with connect(srv.url, protocols=["phoenix", bearer]) as ws:
        await ws.send_v2("1", "1", "echo:x", "phx_join", {})
        await ws.recv_json()
        (conn,) = srv.node.hub.connections.values()
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
        (conn,) = srv.node.hub.connections.values()
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
        (conn,) = srv.node.hub.connections.values()
        assert conn.info.user_id == "second"
        assert conn.info.params["user"] == {"id": "1"}
        assert conn.info.params["vsn"] == "2.0.0"


async def test_drain_closes_with_1012_and_refuses_new(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as a, connect(srv.url) as b:
        drain = asyncio.create_task(srv.node.hub.drain(grace_s=5, batch=1, interval_s=0.05))
        assert await a.wait_closed() == 1012
        assert await b.wait_closed() == 1012
        assert await drain == 0
    assert await refused_status(srv.url) == 503
    async with aiohttp.ClientSession() as http, http.get(f"{srv.http}/readyz") as resp:
        assert resp.status == 503
    async with aiohttp.ClientSession() as http, http.get(f"{srv.http}/healthz") as resp:
        assert resp.status == 200


async def _raw_upgrade(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(b"0123456789abcdef").decode()
    writer.write(
        f"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode()
    )  # fmt: skip
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return reader, writer


async def test_an_unmasked_client_frame_closes_with_1002(wire_server: StartServer) -> None:
    srv = await wire_server()
    join = b'["1","1","echo:x","phx_join",{}]'
    reader, writer = await _raw_upgrade(srv.port)
    # Masked (all-zero key), in pieces cut inside the header: answered.
    masked = bytes((0x81, 0x80 | len(join))) + b"\0\0\0\0" + join
    for piece in (masked[:1], masked[1:4], masked[4:]):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.01)
    reply = await asyncio.wait_for(reader.read(4096), 5)
    assert b'"phx_reply"' in reply and b'"ok"' in reply
    # The same frame unmasked: a close frame with 1002, then the end of the connection.
    writer.write(bytes((0x81, len(join))) + join)
    await writer.drain()
    close = await asyncio.wait_for(reader.read(4096), 5)
    assert close[:4] == bytes((0x88, 0x02)) + (1002).to_bytes(2, "big"), close
    writer.close()
