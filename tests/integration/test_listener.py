"""The listener's own WebSocket upgrades (gateway/transports/listener.py), over raw TCP: what it
serves, what it hands to aiohttp, and how its sockets close (an in-process gateway on the site
`gateway serve` runs)."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid

import pytest

from gateway.channels.room import RoomChannel
from gateway.runtime.channel_process import ChannelProcess
from gateway.runtime.connection import Connection
from gateway.testing.sockets import client_text_frame
from gateway.transports.listener import SocketProtocol
from gateway.transports.websocket import WebSocketSink
from tests.support.wire_server import StartServer, WireServer

pytestmark = pytest.mark.asyncio

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example, and its answer
ACCEPT = b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"


def upgrade(target: str, *extra: str, key: str = KEY) -> bytes:
    lines = [
        f"GET {target} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def client_close(code: int) -> bytes:
    return bytes((0x88, 0x82, 0, 0, 0, 0)) + code.to_bytes(2, "big")  # masked with zeros


async def _open(srv: WireServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", srv.port)


async def _head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def _frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next server frame: (opcode, payload); server frames are unmasked."""
    first, second = await asyncio.wait_for(reader.readexactly(2), 5)
    n = second & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(n)


async def _ended(reader: asyncio.StreamReader, within: float = 5.0) -> bool:
    """Whether the server ends the connection within `within` seconds (what it sends before
    the end is read and dropped)."""
    chunk = b"..."
    try:
        async with asyncio.timeout(within):
            while chunk:
                chunk = await reader.read(65536)
    except TimeoutError:
        return False
    except ConnectionError:
        return True  # a reset ends it too
    return True


async def _write_in_pieces(writer: asyncio.StreamWriter, pieces: list[bytes]) -> None:
    """Each piece its own write, a pause between: the server reads them one at a time."""
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.01)


def _aiohttp_connections(srv: WireServer) -> int:
    server = srv.runner.server
    assert server is not None
    return len(server.connections)


async def _events_until(reader: asyncio.StreamReader, last: str) -> list[str]:
    """The events of the server's text frames, up to and including the first `last`."""
    events: list[str] = []
    while not events or events[-1] != last:
        opcode, payload = await _frame(reader)
        assert opcode == 1, (opcode, payload)
        events.append(json.loads(payload)[3])
    return events


def _join(topic: str = "echo:x", ref: str = "1") -> bytes:
    return client_text_frame(json.dumps(["1", ref, topic, "phx_join", {}]).encode())


async def _joined(reader: asyncio.StreamReader, ref: str = "1") -> None:
    opcode, payload = await _frame(reader)
    reply = json.loads(payload)
    assert opcode == 1 and reply[1] == ref and reply[4]["status"] == "ok", reply


async def test_an_upgrade_is_answered_as_aiohttp_answers_it(wire_server: StartServer) -> None:
    srv = await wire_server()
    reader, writer = await _open(srv)
    writer.write(
        upgrade(
            "/socket/websocket?vsn=2.0.0",
            "Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.dG9rZW4",
        )
    )
    head = await _head(reader)
    assert head.startswith(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        + ACCEPT
        + b"Sec-WebSocket-Protocol: phoenix\r\nDate: "
    ), head
    assert b"\r\nServer: Python/" in head
    writer.write(_join())
    await _joined(reader)
    assert _aiohttp_connections(srv) == 0  # served by the listener, not by aiohttp
    writer.close()


async def test_a_head_in_pieces_and_frames_in_the_same_write(wire_server: StartServer) -> None:
    srv = await wire_server()
    reader, writer = await _open(srv)
    # Cut inside the socket path, then inside a header; the join follows the head unasked.
    whole = upgrade("/socket/websocket?vsn=2.0.0") + _join()
    await _write_in_pieces(writer, [whole[:9], whole[9:60], whole[60:]])
    assert (await _head(reader)).startswith(b"HTTP/1.1 101 ")
    await _joined(reader)
    writer.close()


async def test_a_refusal_is_an_empty_status_and_the_end(wire_server: StartServer) -> None:
    srv = await wire_server()
    reader, writer = await _open(srv)
    writer.write(upgrade("/socket/websocket?vsn=9.0.0"))
    head = await _head(reader)
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nDate: "), head
    assert await _ended(reader)
    assert len(srv.node.hub) == 0


@pytest.mark.parametrize(
    "request_bytes, status, body",
    [
        # Another method: the WebSocket route's own answer.
        (b"POST /socket/websocket HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400, b""),
        # No key: aiohttp's handshake refuses it.
        (
            upgrade("/socket/websocket?vsn=2.0.0", key=""),
            400,
            b"'connection' header must contain 'upgrade' and 'upgrade' must be 'websocket'",
        ),
        # A key that is not base64, and one that is not even ASCII: aiohttp's answers.
        (upgrade("/socket/websocket?vsn=2.0.0", key="!!not*base64!!"), 400, None),
        (upgrade("/socket/websocket?vsn=2.0.0", key="é" * 22), 500, None),
        # A plain GET of the path, no upgrade asked.
        (b"GET /socket/websocket HTTP/1.1\r\nHost: x\r\n\r\n", 400, None),
        # Another path entirely.
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, None),
    ],
)
async def test_other_requests_are_aiohttps(
    wire_server: StartServer, request_bytes: bytes, status: int, body: bytes | None
) -> None:
    srv = await wire_server()
    reader, writer = await _open(srv)
    writer.write(request_bytes)
    head = await _head(reader)
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    if body is not None:
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        assert await reader.readexactly(length) == body
    writer.close()


async def test_an_absolute_target_is_upgraded_by_aiohttps_route(wire_server: StartServer) -> None:
    srv = await wire_server()
    reader, writer = await _open(srv)
    writer.write(upgrade(f"http://127.0.0.1:{srv.port}/socket/websocket?vsn=2.0.0"))
    head = await _head(reader)
    assert head.startswith(b"HTTP/1.1 101 ") and ACCEPT in head, head
    writer.write(_join())
    await _joined(reader)
    assert _aiohttp_connections(srv) == 1  # handed over
    writer.close()


async def test_a_clients_close_is_answered_with_1000_then_the_end(
    wire_server: StartServer,
) -> None:
    srv = await wire_server()
    reader, writer = await _open(srv)
    writer.write(upgrade("/socket/websocket?vsn=2.0.0") + _join())
    await _head(reader)
    await _joined(reader)
    # A push and the close in one write: the push's reply leaves before the close frame.
    push = client_text_frame(json.dumps(["1", "2", "echo:x", "ping", {"n": 1}]).encode())
    writer.write(push + client_close(4000))
    await _joined(reader, "2")
    assert await _frame(reader) == (8, (1000).to_bytes(2, "big"))
    assert await _ended(reader)
    await asyncio.sleep(0.05)
    assert len(srv.node.hub) == 0


async def test_a_servers_close_waits_for_the_clients_answer(wire_server: StartServer) -> None:
    srv = await wire_server()
    reader, writer = await _open(srv)
    writer.write(upgrade("/socket/websocket?vsn=2.0.0") + client_text_frame(b"not json"))
    await _head(reader)
    opcode, payload = await _frame(reader)
    assert (opcode, payload[:2]) == (8, (1011).to_bytes(2, "big")), payload
    assert len(srv.node.hub) == 0  # the channels are gone at once
    assert not await _ended(reader, within=0.3)  # the connection waits for the answer
    writer.write(client_close(1011))
    assert await _ended(reader)


async def test_a_protocol_error_is_answered_with_its_code_then_the_end(
    wire_server: StartServer,
) -> None:
    srv = await wire_server()
    reader, writer = await _open(srv)
    # A continuation frame with no message begun: 1002.
    writer.write(upgrade("/socket/websocket?vsn=2.0.0") + bytes((0x80, 0x80, 0, 0, 0, 0)))
    await _head(reader)
    assert await _frame(reader) == (8, (1002).to_bytes(2, "big"))
    assert await _ended(reader)


async def test_every_kind_of_connection_is_released(wire_server: StartServer) -> None:
    srv = await wire_server()
    site_guard = srv.guard
    for request_bytes in (
        upgrade("/socket/websocket?vsn=2.0.0") + _join() + client_close(1000),  # a socket
        upgrade("/socket/websocket?vsn=9.0.0"),  # refused
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",  # aiohttp's
    ):
        reader, writer = await _open(srv)
        writer.write(request_bytes)
        assert await _ended(reader)
        writer.close()
    for _ in range(50):
        if site_guard.total == 0:
            break
        await asyncio.sleep(0.02)
    assert site_guard.total == 0 and not site_guard.per_address


async def test_stopping_the_site_ends_open_sockets(wire_server: StartServer) -> None:
    srv = await wire_server()
    reader, writer = await _open(srv)
    writer.write(upgrade("/socket/websocket?vsn=2.0.0") + _join())
    await _head(reader)
    await _joined(reader)
    await srv.runner.cleanup()
    assert await _ended(reader)


async def test_a_connect_step_that_raises_is_a_500_for_that_request_only(
    wire_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = await wire_server()
    authenticator = srv.node.transport.authenticator
    real = authenticator.authenticate

    def flaky(params: dict[str, object], token: str | None) -> object:
        if params.get("boom"):
            raise RuntimeError("a bug in an authenticator")
        return real(params, token)  # type: ignore[arg-type]

    monkeypatch.setattr(authenticator, "authenticate", flaky)
    reader, writer = await _open(srv)
    writer.write(upgrade("/socket/websocket?vsn=2.0.0&boom=1"))
    assert (await _head(reader)).startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert await _ended(reader)
    reader, writer = await _open(srv)
    writer.write(upgrade("/socket/websocket?vsn=2.0.0") + _join())
    assert (await _head(reader)).startswith(b"HTTP/1.1 101 ")
    await _joined(reader)
    writer.close()


async def test_a_long_head_is_handed_over_whole(wire_server: StartServer) -> None:
    srv = await wire_server()
    reader, writer = await _open(srv)
    # 20 KB of headers, each under aiohttp's field limit: past what the listener keeps.
    big = [f"X-Filler-{i}: {'x' * 5000}" for i in range(4)]
    request = upgrade("/socket/websocket?vsn=2.0.0", *big)
    await _write_in_pieces(writer, [request[i : i + 3000] for i in range(0, len(request), 3000)])
    assert (await _head(reader)).startswith(b"HTTP/1.1 101 ")
    writer.write(_join())
    await _joined(reader)
    assert _aiohttp_connections(srv) == 1
    writer.close()


async def test_a_closed_socket_is_freed_without_the_cyclic_collector(
    wire_server: StartServer,
) -> None:
    # A room member's socket holds the most: its channel, the channel's own subscription, the
    # sink and the protocol. Left, closed by its client, or closed with the channel joined,
    # none of it may wait for the cyclic collector (a pause that grows with every socket).
    srv = await wire_server(trust_token_as_user_id=True)
    kept = (Connection, ChannelProcess, RoomChannel, WebSocketSink, SocketProtocol)
    gc.collect()
    gc.disable()
    try:
        for n, leave in enumerate((True, False)):
            reader, writer = await _open(srv)
            topic = f"room:{uuid.uuid4()}"
            writer.write(upgrade(f"/socket/websocket?vsn=2.0.0&token=u{n}") + _join(topic))
            await _head(reader)
            await _joined(reader)
            if leave:
                writer.write(
                    client_text_frame(json.dumps(["1", "2", topic, "phx_leave", {}]).encode())
                )
                events = await _events_until(reader, "phx_close")
                assert events.index("phx_reply") < events.index("phx_close"), events
            writer.write(client_close(1000))
            assert await _ended(reader)
            writer.close()
        await asyncio.sleep(0.1)  # the server's side of the end
        assert len(srv.node.hub) == 0
        assert [type(o).__name__ for o in gc.get_objects() if isinstance(o, kept)] == []
    finally:
        gc.enable()
