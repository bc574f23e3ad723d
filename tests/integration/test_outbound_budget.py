"""Clients that stop reading cannot together hold more than the process's outbound budget: past
it the largest debtors are closed first, the others and a reading neighbour go on (a real
gateway process; clients that push echo requests and never read the replies)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import urllib.request

import aiohttp
import pytest

from gateway.testing.sockets import client_text_frame
from tests.support.gateway_proc import GatewayFactory

pytestmark = pytest.mark.asyncio

MB = 1_000_000
CHUNK = "x" * 64_000


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not on /metrics")


class PausedClient:
    """A WebSocket client on a raw socket with a small receive buffer that stops reading."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> PausedClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def push(self, ref: int, event: str, payload: object) -> None:
        frame = json.dumps(["1", str(ref), "echo:x", event, payload]).encode()
        self.writer.write(client_text_frame(frame))
        await self.writer.drain()

    async def read_bytes(self, want: int, timeout: float) -> int:
        """Reads until `want` bytes arrived, the server closed, or `timeout`; bytes read."""
        got = 0
        # A reset or the deadline ends the reading; what arrived until then is the answer.
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(timeout):
                while got < want:
                    data = await self.reader.read(1 << 20)
                    if not data:
                        break
                    got += len(data)
        return got


async def _debtor(port: int, owe_mb: int) -> PausedClient:
    """Joins echo and pushes `owe_mb` MB of pings without reading a single reply."""
    client = await PausedClient.open(port)
    await client.push(1, "phx_join", {})
    for n in range(owe_mb * MB // len(CHUNK)):
        await client.push(n + 2, "ping", {"b": CHUNK})
    return client


async def test_the_largest_debtors_are_cut_first(gateway: GatewayFactory) -> None:
    gw = await gateway(
        "--outbound-budget-bytes", str(16 * MB), "--outbound-limit-bytes", str(10 * MB),
        "--socket-send-buffer-bytes", "65536", "--no-rate-limits", "--log-format", "json",
    )  # fmt: skip
    clients: dict[int, PausedClient] = {}
    for owe_mb in range(1, 9):  # 1 MB, 2 MB, ... 8 MB: 36 MB in all
        clients[owe_mb] = await _debtor(gw.port, owe_mb)
        await asyncio.sleep(0.4)  # a sweep or more between two debtors
    async with aiohttp.ClientSession() as session:
        await asyncio.sleep(0.5)
        cut_count = _metric(gw.url, "gateway_socket_outbound_budget_disconnects_total")
        assert _metric(gw.url, "gateway_socket_outbound_owed_bytes") <= 16 * MB
        cuts = [
            json.loads(line)
            for line in gw.output().splitlines()
            if line.startswith("{") and '"outbound budget"' in line
        ]
        assert len(cuts) == cut_count >= 2, cuts
        # Only a debtor bigger than every smaller one is ever the largest: 4 MB at least.
        assert all(c["owed"] > 3 * MB for c in cuts), cuts

        # A neighbour that reads is answered all along.
        async with session.ws_connect(f"{gw.ws_url}/websocket?vsn=2.0.0") as neighbour:
            await neighbour.send_str(json.dumps(["1", "1", "echo:x", "phx_join", {}]))
            assert json.loads(await neighbour.receive_str(timeout=5))[4]["status"] == "ok"

    # A cut connection keeps its backlog for one second (its close frame is behind it), then
    # it is reset. The survivors fit the budget and get every reply once they read; the smallest three
    # were never the largest debtor, so they survive.
    await asyncio.sleep(1.5)
    survivors = []
    for owe_mb, client in clients.items():
        want = owe_mb * MB // len(CHUNK) * len(CHUNK)
        if await client.read_bytes(want, timeout=10) >= want:
            survivors.append(owe_mb)
        client.writer.close()
    assert {1, 2, 3} <= set(survivors), survivors
    # What the kernels hold (send and receive buffers, some 100-300 KB a connection) is not owed.
    assert sum(survivors) * MB <= 16 * MB + len(survivors) * 400_000, survivors
    assert len(survivors) == 8 - cut_count, survivors
