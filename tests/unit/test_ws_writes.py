"""When a socket's frames are written: at once during a read, at the end of the loop step
otherwise, and always before the close frame."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from gateway.protocol.messages import Frame
from gateway.testing.sockets import MemoryTransport, ParserProtocol, client_text_frame
from gateway.transports.outbound_budget import OutboundBudget
from gateway.transports.websocket import WebSocketSink
from gateway.transports.ws_reader import CorkingReader, DirectQueue, DirectWebSocketResponse
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


async def test_a_read_sends_to_other_sockets_at_once_and_answers_its_own_in_one_write() -> None:
    reader_side, peer_side = MemoryTransport(), MemoryTransport()
    own, peer = sink_on(reader_side), sink_on(peer_side)

    seen: list[int] = []

    def on_message(msg: Any) -> None:  # a push relayed to the peer, then answered
        peer.send(text(f'[null,null,"room:a","offer",{msg[1]}]'))
        seen.append(len(peer_side.writes))  # the peer's frame did not wait for the step's end
        own.send(text('["1","2","room:a","phx_reply",{}]'))

    queue = DirectQueue(ParserProtocol(), 1 << 16, loop=asyncio.get_running_loop())
    reader = CorkingReader(queue, 1 << 20, compress=False, decode_text=True)
    reader.sink = own
    queue.attach(on_message)
    reader.feed_data(client_text_frame(b'{"n":1}') + client_text_frame(b'{"n":2}'))
    assert seen == [1, 2]
    assert len(reader_side.writes) == 1  # the read's two replies: one write
    assert reader_side.writes[0].count(b"phx_reply") == 2
    await asyncio.sleep(0)
    assert len(reader_side.writes) == 1 and len(peer_side.writes) == 2


async def test_held_frames_leave_before_the_close_frame() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        ws = DirectWebSocketResponse()
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        sink = WebSocketSink(ws, transport, 1 << 20, OutboundBudget(1 << 30))  # type: ignore[arg-type]
        ws.attach(lambda msg: None, sink)
        sink.send(text('["1",null,"room:a","presence_state",{}]'))  # held: not from a read
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
