"""When a socket's frames are written: at the end of the loop step that sent them, together,
and always before the close frame."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from gateway.protocol.messages import Frame
from gateway.testing.sockets import MemoryTransport, ParserProtocol, client_text_frame
from gateway.transports.outbound_budget import OutboundBudget
from gateway.transports.websocket import WebSocketSink
from gateway.transports.ws_reader import ClientFrameReader, DirectQueue, DirectWebSocketResponse
from tests.support.wire_server import serve_app


def sink_on(transport: MemoryTransport) -> WebSocketSink:
    return WebSocketSink(None, transport, 1 << 20, OutboundBudget(1 << 30))  # type: ignore[arg-type]


def text(data: str) -> Frame:
    return Frame(data.encode(), True)


async def test_frames_sent_from_a_task_leave_together_when_the_loop_step_ends() -> None:
    transport = MemoryTransport()
    sink = sink_on(transport)
    sink.send(text('["1","1","room:a","phx_reply",{}]'))
    sink.send(text('["1",null,"room:a","presence_state",{}]'))
    assert transport.writes == []  # held while the step runs
    await asyncio.sleep(0)
    assert len(transport.writes) == 1
    assert transport.writes[0].count(b"\x81") == 2  # both frames, in order, in one write
    assert transport.writes[0].index(b"phx_reply") < transport.writes[0].index(b"presence_state")


async def test_what_a_loop_step_sends_a_socket_leaves_in_one_write_when_the_step_ends() -> None:
    # Two peers whose pushes are read in the same step, each relayed to the other and
    # answered: each socket gets its reply and its peer's signal in one write.
    sides = MemoryTransport(), MemoryTransport()
    sinks = sink_on(sides[0]), sink_on(sides[1])
    feeds = []
    for me in (0, 1):
        own, peer = sinks[me], sinks[1 - me]

        def on_message(msg: Any, own: WebSocketSink = own, peer: WebSocketSink = peer) -> None:
            peer.send(text(f'[null,null,"room:a","offer",{msg[1]}]'))
            own.send(text('["1","2","room:a","phx_reply",{}]'))

        queue = DirectQueue(ParserProtocol(), 1 << 16, loop=asyncio.get_running_loop())
        reader = ClientFrameReader(queue, 1 << 20, compress=False, decode_text=True)
        queue.attach(on_message)
        feeds.append(reader.feed_data)
    feeds[0](client_text_frame(b'{"n":1}') + client_text_frame(b'{"n":2}'))
    feeds[1](client_text_frame(b'{"n":3}'))
    assert sides[0].writes == [] and sides[1].writes == []  # held while the step runs
    await asyncio.sleep(0)
    assert [len(side.writes) for side in sides] == [1, 1]
    first, second = sides[0].writes[0], sides[1].writes[0]
    assert first.count(b"phx_reply") == 2 and first.count(b"offer") == 1
    assert first.index(b"phx_reply") < first.index(b'{"n":3}')  # in the order they were sent
    assert second.count(b"offer") == 2 and second.count(b"phx_reply") == 1
    assert second.index(b'{"n":1}') < second.index(b'{"n":2}') < second.index(b"phx_reply")


async def test_held_frames_leave_before_the_close_frame() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        ws = DirectWebSocketResponse()
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        sink = WebSocketSink(ws, transport, 1 << 20, OutboundBudget(1 << 30))  # type: ignore[arg-type]
        ws.attach(lambda msg: None, sink)
        sink.send(text('["1",null,"room:a","presence_state",{}]'))  # held to the step's end
        await ws.close(code=1000)  # before the loop step ends
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner, port = await serve_app(app)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"http://127.0.0.1:{port}/ws") as ws,
        ):
            first = await ws.receive(timeout=5)
            assert first.type is aiohttp.WSMsgType.TEXT
            assert "presence_state" in first.data
            assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSE
    finally:
        await runner.cleanup()


class BrokenTransport(MemoryTransport):
    """A transport whose write raises, as a bug under a write would."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def write(self, data: bytes) -> None:
        raise RuntimeError("broken")

    def abort(self) -> None:
        self.aborted = True


async def test_a_write_that_raises_ends_that_socket_and_the_others_are_written() -> None:
    broken, fine = BrokenTransport(), MemoryTransport()
    sink_on(broken).send(text('["1",null,"room:a","offer",{}]'))
    sink_on(fine).send(text('["1",null,"room:a","offer",{}]'))
    await asyncio.sleep(0)
    assert broken.aborted
    assert len(fine.writes) == 1


def _unframe(stream: bytes) -> list[tuple[int, bytes]]:
    """(first byte, payload) of each unmasked frame in `stream`, read as RFC 6455 says."""
    frames = []
    pos = 0
    while pos < len(stream):
        first, second = stream[pos], stream[pos + 1]
        assert second & 0x80 == 0  # a server never masks
        length, pos = second & 0x7F, pos + 2
        if length == 126:
            length, pos = int.from_bytes(stream[pos : pos + 2], "big"), pos + 2
        elif length == 127:
            length, pos = int.from_bytes(stream[pos : pos + 8], "big"), pos + 8
        frames.append((first, stream[pos : pos + length]))
        pos += length
    return frames


async def test_every_payload_length_gets_its_rfc_6455_length_encoding() -> None:
    # Each side of the 7-bit, 16-bit and 64-bit length forms, text and binary.
    lengths = [0, 1, 125, 126, 127, 1100, 65_535, 65_536, 70_000]
    frames = [Frame(b"t" * n, True) for n in lengths] + [Frame(b"\x00" * n, False) for n in lengths]
    transport = MemoryTransport()
    sink = sink_on(transport)
    for frame in frames:
        sink.send(frame)
    await asyncio.sleep(0)
    written = _unframe(b"".join(transport.writes))
    assert written == [(0x81 if f.text else 0x82, f.data) for f in frames]
