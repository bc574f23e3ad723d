"""WebSocket channel behaviours of Phoenix's integration suite (reference section 9, WC)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.integration.conftest import StartServer
from tests.support.raw_ws import ConnectionClosed, RawSocket, connect

OK = {"response": {}, "status": "ok"}
UNMATCHED = {"response": {"reason": "unmatched topic"}, "status": "error"}


async def recv_all(ws: RawSocket, count: int) -> list[list[object]]:
    return [await ws.recv_json() for _ in range(count)]


async def join(ws: RawSocket, topic: str, jr: str = "11", payload: object = None) -> None:
    await ws.send_text(json.dumps([jr, jr, topic, "phx_join", payload or {}]))


async def test_heartbeat_v2_and_v1(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await ws.send_text('[null,"7","phoenix","heartbeat",{}]')
        assert (
            await ws.recv_frame()
            == '[null,"7","phoenix","phx_reply",{"response":{},"status":"ok"}]'
        )
    async with connect(srv.url, vsn=None) as ws:
        await ws.send_text('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}')
        assert await ws.recv_frame() == (
            '{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"phoenix"}'
        )


async def test_join_reply_then_broadcast_then_push(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await join(ws, "fixture:lobby", payload={"user": "ann"})
        frames = [await ws.recv_frame() for _ in range(3)]
        assert frames == [
            '["11","11","fixture:lobby","phx_reply",{"response":{},"status":"ok"}]',
            '[null,null,"fixture:lobby","user_entered",{"user":"ann"}]',
            '["11",null,"fixture:lobby","joined",{"status":"connected","user_id":null}]',
        ]


async def test_v1_join_has_no_join_ref(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url, vsn="1.0.0") as ws:
        await ws.send_text('{"topic":"fixture:a","event":"phx_join","payload":{},"ref":"1"}')
        frames = [json.loads(await ws.recv_frame()) for _ in range(3)]
        assert frames[0] == {"event": "phx_reply", "payload": OK, "ref": "1", "topic": "fixture:a"}
        assert {
            "event": "user_entered",
            "payload": {"user": None},
            "ref": None,
            "topic": "fixture:a",
        } in frames
        # leave: reply, then phx_close whose ref is the (null) internal join ref
        await ws.send_text('{"topic":"fixture:a","event":"phx_leave","payload":{},"ref":"2"}')
        assert json.loads(await ws.recv_frame()) == {
            "event": "phx_reply",
            "payload": OK,
            "ref": "2",
            "topic": "fixture:a",
        }
        assert json.loads(await ws.recv_frame()) == {
            "event": "phx_close",
            "payload": {},
            "ref": None,
            "topic": "fixture:a",
        }


async def test_intercepted_broadcast_is_repushed_with_join_ref(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await join(ws, "fixture:lobby")
        await recv_all(ws, 3)
        await ws.send_v2("11", "2", "fixture:lobby", "new_msg", {"body": "hi!"})
        frames = await recv_all(ws, 2)
        assert [
            "11",
            None,
            "fixture:lobby",
            "new_msg",
            {"body": "hi!", "transport": ":websocket"},
        ] in frames
        assert ["11", "2", "fixture:lobby", "phx_reply", OK] in frames


async def test_leave_then_messages_are_unmatched(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await join(ws, "fixture:lobby")
        await recv_all(ws, 3)
        await ws.send_v2("11", "3", "fixture:lobby", "phx_leave", {})
        frames = await recv_all(ws, 3)
        assert frames[0] == ["11", "3", "fixture:lobby", "phx_reply", OK]
        assert frames[1] == ["11", "11", "fixture:lobby", "phx_close", {}]
        assert frames[2] == ["11", None, "fixture:lobby", "you_left", {"message": "bye!"}]
        await ws.send_v2("11", "4", "fixture:lobby", "new_msg", {"body": "x"})
        assert await ws.recv_json() == [None, "4", "fixture:lobby", "phx_reply", UNMATCHED]
        # leaving a topic that is not joined: ok, echoing the join_ref, and no phx_close
        await ws.send_v2("5", "5", "fixture:other", "phx_leave", {})
        assert await ws.recv_json() == ["5", "5", "fixture:other", "phx_reply", OK]


async def test_unjoined_push_and_unmatched_join(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await ws.send_v2("11", "1", "fixture:lobby", "new_msg", {"body": "x"})
        assert await ws.recv_json() == [None, "1", "fixture:lobby", "phx_reply", UNMATCHED]
        await ws.send_v2("1", "1", "unmatched-topic", "phx_join", {})
        assert await ws.recv_json() == [None, "1", "unmatched-topic", "phx_reply", UNMATCHED]


async def test_channel_limit(wire_server: StartServer) -> None:
    srv = await wire_server(rate_limits=False)
    async with connect(srv.url) as ws:
        for i in range(1, 101):
            await ws.send_v2(str(i), str(i), f"echo:{i}", "phx_join", {})
        for _ in range(100):
            frame = await ws.recv_json()
            assert frame[4] == OK
        await ws.send_v2("101", "101", "echo:101", "phx_join", {})
        assert await ws.recv_json() == [
            "101",
            "101",
            "echo:101",
            "phx_reply",
            {"response": {"reason": "too many channels joined"}, "status": "error"},
        ]
    srv1 = await wire_server(max_channels=1)
    async with connect(srv1.url) as ws:
        await ws.send_v2("1", "1", "echo:limited-1", "phx_join", {})
        assert (await ws.recv_json())[4] == OK
        await ws.send_v2("2", "2", "echo:limited-2", "phx_join", {})
        assert (await ws.recv_json())[4]["response"] == {"reason": "too many channels joined"}


async def test_channel_crash_is_phx_error_and_neighbours_live(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await join(ws, "fixture:lobby")
        await recv_all(ws, 3)
        await ws.send_v2("1", "1", "echo:side", "phx_join", {})
        assert (await ws.recv_json())[4] == OK
        await ws.send_v2("11", "2", "fixture:lobby", "boom", {})
        assert await ws.recv_json() == [
            "11",
            None,
            "fixture:lobby",
            "you_left",
            {"message": "bye!"},
        ]
        assert await ws.recv_json() == [
            "11",
            "11",
            "fixture:lobby",
            "phx_error",
            {"reason": "channel_crash"},
        ]
        await ws.send_v2("1", "3", "echo:side", "ping", {"a": 1})
        assert await ws.recv_json() == [
            "1",
            "3",
            "echo:side",
            "phx_reply",
            {"response": {"a": 1}, "status": "ok"},
        ]
        await ws.send_v2("11", "4", "fixture:lobby", "new_msg", {})
        assert await ws.recv_json() == [None, "4", "fixture:lobby", "phx_reply", UNMATCHED]


async def test_custom_join_outcomes_and_self_close(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await ws.send_v2("11", "1", "custom:ignore", "phx_join", {})
        assert await ws.recv_json() == [
            "11",
            "1",
            "custom:ignore",
            "phx_reply",
            {"response": {"action": "ignore"}, "status": "error"},
        ]
        await ws.send_v2("12", "2", "custom:raise", "phx_join", {})
        assert await ws.recv_json() == [
            "12",
            "2",
            "custom:raise",
            "phx_reply",
            {"response": {"reason": "join crashed"}, "status": "error"},
        ]
        await ws.send_v2("13", "3", "custom:ok", "phx_join", {})
        assert await ws.recv_json() == [
            "13",
            "3",
            "custom:ok",
            "phx_reply",
            {"response": {"action": "ok"}, "status": "ok"},
        ]
        await ws.send_v2("13", "4", "custom:ok", "close", {})
        assert await ws.recv_json() == ["13", "13", "custom:ok", "phx_close", {}]


async def test_stop_with_reply_sends_reply_then_close(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await join(ws, "fixture:s")
        await recv_all(ws, 3)
        await ws.send_v2("11", "5", "fixture:s", "stop", {})
        frames = await recv_all(ws, 2)
        assert frames[0] == [
            "11",
            "5",
            "fixture:s",
            "phx_reply",
            {"response": {"bye": True}, "status": "ok"},
        ]
        assert frames[1] == ["11", "11", "fixture:s", "phx_close", {}]


async def test_duplicate_join_reply_first_then_old_close(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await ws.send_v2("1", "1", "echo:joiner", "phx_join", {})
        assert await ws.recv_json() == ["1", "1", "echo:joiner", "phx_reply", OK]
        await ws.send_v2("2", "2", "echo:joiner", "phx_join", {})
        assert await ws.recv_json() == ["2", "2", "echo:joiner", "phx_reply", OK]
        assert await ws.recv_json() == ["1", "1", "echo:joiner", "phx_close", {}]
        await ws.send_v2("2", "3", "echo:joiner", "ping", {})
        assert await ws.recv_json() == ["2", "3", "echo:joiner", "phx_reply", OK]


async def test_stale_join_ref_is_dropped_and_null_accepted(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await ws.send_v2("1", "1", "echo:a", "phx_join", {})
        await ws.recv_json()
        await ws.send_v2("stale", "2", "echo:a", "ping", {"n": 1})
        await ws.send_v2("stale", "3", "echo:a", "phx_leave", {})
        await ws.send_v2(None, "4", "echo:a", "ping", {"n": 2})
        assert await ws.recv_json() == [
            "1",
            "4",
            "echo:a",
            "phx_reply",
            {"response": {"n": 2}, "status": "ok"},
        ]


async def test_refs_echo_their_json_type(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await ws.send_text('[null,7,"phoenix","heartbeat",{}]')
        assert (
            await ws.recv_frame() == '[null,7,"phoenix","phx_reply",{"response":{},"status":"ok"}]'
        )
        await ws.send_text('[1,2,"echo:n","phx_join",{}]')
        assert await ws.recv_frame() == '[1,2,"echo:n","phx_reply",{"response":{},"status":"ok"}]'


async def test_binary_round_trip_exact_bytes(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await ws.send_v2("11", "1", "fixture:bin", "phx_join", {})
        await recv_all(ws, 3)
        await ws.send_bytes(_binary_push("11", "2", "fixture:bin", "binary_event", b"\x01\x02"))
        frames = [await ws.recv_frame() for _ in range(2)]
        assert _binary_reply("11", "2", "fixture:bin", "ok", b"\x01\x02\x03\x04") in frames
        assert _binary_server_push("11", "fixture:bin", "binary_event", b"\x00\x01") in frames


def _binary_push(jr: str, ref: str, topic: str, event: str, payload: bytes) -> bytes:
    fields = [jr.encode(), ref.encode(), topic.encode(), event.encode()]
    return bytes([0, *map(len, fields)]) + b"".join(fields) + payload


def _binary_reply(jr: str, ref: str, topic: str, status: str, payload: bytes) -> bytes:
    fields = [jr.encode(), ref.encode(), topic.encode(), status.encode()]
    return bytes([1, *map(len, fields)]) + b"".join(fields) + payload


def _binary_server_push(jr: str, topic: str, event: str, payload: bytes) -> bytes:
    fields = [jr.encode(), topic.encode(), event.encode()]
    return bytes([0, *map(len, fields)]) + b"".join(fields) + payload


async def test_binary_reference_bytes_for_room_bin(wire_server: StartServer) -> None:
    """The exact bytes of section 2.4's integration round trip, on the echo channel."""
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await ws.send_v2("11", "1", "echo:bin", "phx_join", {})
        await ws.recv_json()
        await ws.send_bytes(bytes.fromhex("0002010803313132") + b"echo:bin" + b"bin" + b"\x01\x02")
        frame = await ws.recv_frame()
        assert frame == bytes.fromhex("0102010802") + b"112" + b"echo:bin" + b"ok" + b"\x01\x02"


async def test_binary_with_empty_join_ref_is_stale_on_joined_topic(
    wire_server: StartServer,
) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await ws.send_v2("11", "1", "echo:b", "phx_join", {})
        await ws.recv_json()
        await ws.send_bytes(_binary_push("", "2", "echo:b", "x", b"\x01"))
        await ws.send_text('[null,"3","phoenix","heartbeat",{}]')
        assert (await ws.recv_json())[1] == "3"


async def test_disconnect_broadcast_closes_every_socket_of_the_id(wire_server: StartServer) -> None:
    srv = await wire_server(trust_token_as_user_id=True)
    async with (
        connect(srv.url, params={"token": "1001"}) as a,
        connect(srv.url, params={"token": "1001"}) as b,
        connect(srv.url, params={"token": "2002"}) as other,
    ):
        for ws in (a, b, other):
            await ws.send_v2("1", "1", "echo:x", "phx_join", {})
            await ws.recv_json()
        srv.node.pubsub.broadcast("users_socket:1001", "disconnect", {})
        assert await a.wait_closed() == 1001
        assert await b.wait_closed() == 1001
        await other.send_text('[null,"2","phoenix","heartbeat",{}]')
        assert (await other.recv_json())[1] == "2"
    await asyncio.sleep(0.05)
    assert len(srv.node.hub) == 0


async def test_channel_terminates_when_socket_closes(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        await ws.send_v2("1", "1", "echo:t", "phx_join", {})
        await ws.recv_json()
        assert srv.node.pubsub.subscribers("echo:t") == 1
    for _ in range(50):
        if srv.node.pubsub.subscribers("echo:t") == 0:
            break
        await asyncio.sleep(0.01)
    assert srv.node.pubsub.subscribers("echo:t") == 0
    assert len(srv.node.hub) == 0


async def test_echo_broadcast_reaches_every_subscriber_once(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as a, connect(srv.url, vsn="1.0.0") as b:
        await a.send_v2("1", "1", "echo:room", "phx_join", {})
        await a.recv_json()
        await b.send_text('{"topic":"echo:room","event":"phx_join","payload":{},"ref":"1"}')
        await b.recv_json()
        await a.send_v2("1", "2", "echo:room", "broadcast", {"z": 1, "a": [1, "é/"]})
        frames = await recv_all(a, 2)
        assert [None, None, "echo:room", "broadcast", {"a": [1, "é/"], "z": 1}] in frames
        assert await b.recv_frame() == (
            '{"event":"broadcast","payload":{"a":[1,"é/"],"z":1},"ref":null,"topic":"echo:room"}'
        )


async def test_socket_closed_with_1011_on_malformed_frames(wire_server: StartServer) -> None:
    srv = await wire_server()
    for bad in ("garbage", "[1,2,3]", '{"a":1}', '[null,"1",5,"heartbeat",{}]'):
        async with connect(srv.url) as ws, connect(srv.url) as neighbour:
            await neighbour.send_v2("1", "1", "echo:n", "phx_join", {})
            await neighbour.recv_json()
            await ws.send_text(bad)
            assert await ws.wait_closed() == 1011
            await neighbour.send_v2("1", "2", "echo:n", "ping", {})
            assert (await neighbour.recv_json())[1] == "2"
    async with connect(srv.url, vsn="1.0.0") as ws:
        await ws.send_text('["1","1","echo:a","phx_join",{}]')
        assert await ws.wait_closed() == 1011


async def test_oversize_frame_closes_with_1009(wire_server: StartServer) -> None:
    srv = await wire_server(max_frame_bytes=1000)
    async with connect(srv.url) as ws:
        await ws.send_text(json.dumps([None, "1", "echo:a", "x", {"b": "x" * 2000}]))
        assert await ws.wait_closed() == 1009


async def test_invalid_utf8_closes_with_1007(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url) as ws:
        # aiohttp refuses to send invalid UTF-8 as text, so write the frame by hand.
        writer = ws.ws._writer
        await writer.send_frame(b'[null,"1","phoenix","heartbeat",{"a":"\xff"}]', 0x1)
        assert await ws.wait_closed() == 1007


async def test_ping_gets_pong_with_payload(wire_server: StartServer) -> None:
    srv = await wire_server()
    async with connect(srv.url, autoping=False) as ws:
        await ws.ws.ping(b"123")
        msg = await ws.ws.receive(2)
        assert msg.data == b"123"
        await ws.send_text('[null,"1","phoenix","heartbeat",{}]')
        assert (await ws.recv_json())[1] == "1"


async def test_idle_timeout_closes_without_1000(wire_server: StartServer) -> None:
    srv = await wire_server(idle_timeout_ms=200)
    async with connect(srv.url) as ws:
        await ws.send_text('[null,"1","phoenix","heartbeat",{}]')
        assert (await ws.recv_json())[1] == "1"
        loop = asyncio.get_running_loop()
        started = loop.time()
        code = await ws.wait_closed(timeout=2)
        assert code == 1002
        assert loop.time() - started < 0.4


async def test_slow_consumer_is_dropped(wire_server: StartServer) -> None:
    srv = await wire_server(outbound_limit_bytes=200_000)
    async with connect(srv.url) as slow, connect(srv.url) as polite:
        await slow.send_v2("1", "1", "echo:flood", "phx_join", {})
        await slow.recv_json()
        # `slow` stops reading; the broadcasts pile up until its buffer passes the limit.
        big = {"blob": "y" * 60_000}
        for _ in range(400):
            srv.node.pubsub.broadcast("echo:flood", "big", big)
            if len(srv.node.hub) < 2:
                break
            await asyncio.sleep(0.001)
        assert len(srv.node.hub) == 1
        await polite.send_text('[null,"1","phoenix","heartbeat",{}]')
        assert (await polite.recv_json())[1] == "1"
        with pytest.raises(ConnectionClosed):
            for _ in range(1000):
                await slow.recv_frame(timeout=3)
