"""Input the decoder cannot follow gets Phoenix's answer and hurts nobody else: a frame nested
past the decoder's depth closes its socket with 1011 (long-poll: 400); numbers out of range in a
push get an error reply and the channel goes on (echo and room channels, real sockets)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from tests.integration.conftest import StartServer
from tests.support.raw_ws import RawSocket, connect

DEEP = "[" * 1000 + "]" * 1000
HUGE_INT = "9" * 100_000


async def test_deep_nesting_closes_with_1011_and_the_neighbour_goes_on(
    wire_server: StartServer,
) -> None:
    srv = await wire_server()
    async with connect(srv.url) as bad, connect(srv.url) as good:
        await good.send_v2("1", "1", "echo:n", "phx_join", {})
        assert (await good.recv_json())[4]["status"] == "ok"
        await bad.send_text(f'["1","1","echo:x","ping",{DEEP}]')
        assert await bad.wait_closed() == 1011
        await good.send_v2("1", "2", "echo:n", "ping", {"still": "here"})
        assert (await good.recv_json())[4] == {"response": {"still": "here"}, "status": "ok"}


async def test_longpoll_batch_nested_too_deep_is_400(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.http}/socket/longpoll?vsn=2.0.0") as resp:
            token = (await resp.json())["token"]
        body = f'["1","1","echo:x","ping",{DEEP}]'
        url = f"{srv.http}/socket/longpoll?vsn=2.0.0&token={token}"
        headers = {"content-type": "application/x-ndjson"}
        async with http.post(url, data=body, headers=headers) as resp:
            assert resp.status == 400


async def test_numbers_out_of_range_get_an_error_reply_on_echo(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await ws.send_v2("1", "1", "echo:x", "phx_join", {})
        assert (await ws.recv_json())[4]["status"] == "ok"
        for n, payload in enumerate(['{"n":1e999999}', '{"n":' + HUGE_INT + "}"], start=2):
            await ws.send_text(f'["1","{n}","echo:x","ping",{payload}]')
            reply = await ws.recv_json()
            assert reply[:4] == ["1", str(n), "echo:x", "phx_reply"]
            assert reply[4] == {"response": {"reason": "invalid payload"}, "status": "error"}
        await ws.send_v2("1", "9", "echo:x", "ping", {"ok": 1})
        assert (await ws.recv_json())[4] == {"response": {"ok": 1}, "status": "ok"}


async def _next_reply(ws: RawSocket) -> Any:
    """The next phx_reply, past the room's own pushes (presence frames)."""
    while True:
        frame = await ws.recv_json()
        if frame[3] == "phx_reply":
            return frame


async def test_numbers_out_of_range_are_refused_by_a_room(wire_server: StartServer) -> None:
    srv = await wire_server()
    topic = f"room:{uuid.uuid4()}"
    async with connect(srv.url) as ws:
        await ws.send_v2("1", "1", topic, "phx_join", {})
        assert (await ws.recv_json())[4]["status"] == "ok"
        await ws.send_text(f'["1","2","{topic}","new_msg",{{"body":"hi","n":1e999999}}]')
        reply = await _next_reply(ws)
        assert reply[4]["status"] == "error"
        assert reply[4]["response"]["reason"] == "invalid payload"
        await ws.send_v2("1", "3", topic, "new_msg", {"body": "still here"})
        reply = await _next_reply(ws)
        assert reply[4]["status"] == "ok"
