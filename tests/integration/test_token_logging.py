"""Tokens are never logged, at any length or place: a real gateway logging at debug level is sent
tokens in the `token` param, the `X-Phoenix-AuthToken` header and the `authToken` subprotocol,
short ones and ones past aiohttp's 8,190-byte header line limit."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.gateway_proc import GatewayFactory

MARK = "S3CRETT0KEN"


@pytest.mark.parametrize("size", [100, 8_000, 9_000, 20_000])
async def test_no_token_reaches_the_log(gateway: GatewayFactory, size: int) -> None:
    gw = await gateway(
        env={
            "GATEWAY_LOG_LEVEL": "debug",
            "GATEWAY_ALLOW_ANONYMOUS": "false",
            "GATEWAY_PHOENIX_SECRET_KEY_BASE": "k" * 64,
        }
    )
    token = (MARK * (size // len(MARK) + 1))[:size]
    url = f"{gw.url}/socket/websocket?vsn=2.0.0"
    attempts = [
        {"params": {"token": token}},
        {"headers": {"X-Phoenix-AuthToken": token}},
        {"headers": {"Sec-WebSocket-Protocol": f"phoenix, base64url.bearer.phoenix.{token}"}},
    ]
    async with aiohttp.ClientSession() as http:
        for attempt in attempts:
            async with http.get(url, **attempt) as resp:  # type: ignore[arg-type]
                assert resp.status in (400, 403, 414, 431)
    await asyncio.sleep(0.5)  # let the last lines reach the log
    assert MARK not in gw.output()
