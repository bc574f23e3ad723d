"""TCP connections that never finish a request: counted against the caps from accept, reaped
after the header timeout, and never able to starve the process of file descriptors (a real
gateway process, raw sockets on loopback)."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import subprocess
import sys
import time
import urllib.request

import aiohttp
import pytest
from aiohttp import web

from gateway.transports.tcp_guard import GuardedSite, TcpGuard
from tests.support.gateway_proc import GatewayFactory
from tests.support.ports import free_port
from tests.support.raw_ws import RawSocket, connect

pytestmark = pytest.mark.asyncio


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(65536), within)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    # A reaped connection reads end of stream; an HTTP answer would be data.
    return data == b""


def _metric(url: str, line_start: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not on /metrics")


async def _echo(sock: RawSocket, ref: str) -> None:
    await sock.send_v2("1", ref, "echo:x", "ping" if ref != "1" else "phx_join", {"n": ref})
    reply = await sock.recv_json()
    assert reply[1] == ref and reply[4]["status"] == "ok", reply


async def _slowloris(writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    writer.write(b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    n = 0
    while not stop.is_set() and not writer.is_closing():
        n += 1
        writer.write(f"X-Slow-{n}: 1\r\n".encode())
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(0.2)


async def test_silent_and_slow_connections_are_reaped_and_neighbours_go_on(
    gateway: GatewayFactory,
) -> None:
    gw = await gateway("--header-timeout-s", "1", "--log-format", "json")
    async with connect(gw.ws_url) as neighbour:
        await _echo(neighbour, "1")
        await _reap_all(gw.port, gw.url)
        # The neighbour, whose request finished long ago, is untouched.
        await _echo(neighbour, "2")
    assert _metric(gw.url, 'gateway_socket_tcp_rejected_total{reason="header_timeout"}') == 50
    lines = [json.loads(x) for x in gw.output().splitlines() if x.startswith("{")]
    refused = [
        x for x in lines if x.get("event") == "socket_refused" and x.get("transport") == "tcp"
    ]
    assert refused and refused[0]["reason"] == "header_timeout"
    # One line a second at most, not one per connection.
    assert len(refused) <= 3


async def _reap_all(port: int, url: str) -> None:
    silent = [await _open(port) for _ in range(40)]
    slow = [await _open(port) for _ in range(10)]
    stop = asyncio.Event()
    feeders = [asyncio.create_task(_slowloris(w, stop)) for _, w in slow]
    assert _metric(url, "gateway_socket_tcp_connections") >= 51
    started = time.monotonic()
    reaped = await asyncio.gather(*(_closed_by_server(r, 5.0) for r, _ in silent + slow))
    elapsed = time.monotonic() - started
    stop.set()
    await asyncio.gather(*feeders)
    assert all(reaped), f"{reaped.count(False)} of {len(reaped)} connections still open"
    assert elapsed < 3.0, f"reaped after {elapsed:.1f}s with a 1s header timeout"
    for _, w in silent + slow:
        w.close()


async def test_unfinished_requests_count_toward_the_per_address_cap(
    gateway: GatewayFactory,
) -> None:
    gw = await gateway("--header-timeout-s", "2", "--max-connections-per-ip", "20")
    held = [await _open(gw.port) for _ in range(20)]
    extra_reader, extra_writer = await _open(gw.port)
    assert await _closed_by_server(extra_reader, 2.0), "the 21st connection was accepted"
    extra_writer.close()
    # Once the silent ones are reaped, the address may connect again.
    assert all(await asyncio.gather(*(_closed_by_server(r, 5.0) for r, _ in held)))
    async with connect(gw.ws_url) as sock:
        await _echo(sock, "1")
    assert _metric(gw.url, 'gateway_socket_tcp_rejected_total{reason="address_capacity"}') >= 1
    for _, w in held:
        w.close()


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))


async def test_the_connection_cap_stays_below_the_open_files_limit() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--log-format", "json",
         "--header-timeout-s", "30", "--max-connections-per-ip", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_low_fd_limit,
    )  # fmt: skip
    held: list[asyncio.StreamWriter] = []
    try:
        assert proc.stdout is not None
        lowered: dict[str, object] = {}
        for line in proc.stdout:
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("event") == "connection_cap_lowered":
                    lowered = entry
                    break
        assert lowered.get("cap") == 400 - 256, lowered
        for _ in range(400 - 256):
            held.append((await _open(port))[1])
        reader, writer = await _open(port)
        assert await _closed_by_server(reader, 2.0), "a connection past the cap was accepted"
        writer.close()
        # The process is alive and answers once a slot frees.
        held.pop().close()
        await asyncio.sleep(0.2)
        status = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status
        )
        assert status == 200
        assert proc.poll() is None
    finally:
        for w in held:
            w.close()
        proc.terminate()
        proc.wait(timeout=30)


async def test_accepted_connections_inherit_keepalive_and_the_send_buffer() -> None:
    """Set once on the listener, inherited by every accepted connection (Linux reports twice
    the send buffer asked for, its bookkeeping included)."""
    seen: list[tuple[int, int]] = []

    async def handler(request: web.Request) -> web.Response:
        assert request.transport is not None
        sock = request.transport.get_extra_info("socket")
        options = (socket.SO_SNDBUF, socket.SO_KEEPALIVE)
        seen.append(tuple(sock.getsockopt(socket.SOL_SOCKET, o) for o in options))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, tcp_keepalive=False)  # as the gateway's: not set per connection
    await runner.setup()
    port = free_port()
    await GuardedSite(
        runner, TcpGuard(100, 100, 5.0, send_buffer_bytes=65536), "127.0.0.1", port
    ).start()
    try:
        for _ in range(3):  # a new connection each time
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/") as resp,
            ):
                assert resp.status == 200
    finally:
        await runner.cleanup()
    assert seen == [(2 * 65536, 1)] * 3
