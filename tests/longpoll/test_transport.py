"""Phoenix's long-poll transport tests (section 9, LT 64-70), bad input, and session rules."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp

from gateway.protocol import longpoll as rules
from tests.longpoll.conftest import LongPollClient, LongPollServer, StartServer
from tests.longpoll.fixture_channel import TERMINATED
from tests.longpoll.wire import collect, fields, settle

JOIN = ["1", "1", "lc:lobby", "phx_join", {}]


async def test_64_origin_on_first_get(lp_server: StartServer, http: aiohttp.ClientSession) -> None:
    server = await lp_server(check_origin="//example.com")
    client = LongPollClient(http, server.endpoint)
    assert (await client.get(headers={"Origin": "https://example.com"})).status == 410
    assert (await client.get(headers={"Origin": "http://notallowed.com"})).json == {"status": 403}


async def test_65_connect_params_reach_the_socket(client: LongPollClient) -> None:
    opened = await client.open("hello=world")
    assert opened.http_status == 200 and opened.json["token"]
    await client.post(JOIN, ["1", "2", "lc:lobby", "params", {}])
    messages = [fields(m) for m in await collect(client, 4)]
    assert messages[3][4] == {
        "response": {"hello": "world", "vsn": "2.0.0"},
        "status": "ok",
    }


async def test_67_token_in_the_header(client: LongPollClient) -> None:
    await client.open()
    token, client.token = client.token, None
    header = {rules.TOKEN_HEADER: token or ""}
    reply = await client.request(
        "POST",
        client.query(),
        b'["1","1","lc:lobby","phx_join",{}]',
        {**header, "Content-Type": rules.NDJSON},
    )
    assert reply.json == {"status": 200}
    polled = await client.get(headers=header)
    assert polled.status == 200 and polled.json["token"] == token


async def test_68_header_token_wins_over_a_bogus_query_token(client: LongPollClient) -> None:
    await client.open()
    header = {rules.TOKEN_HEADER: client.token or "", "Content-Type": rules.NDJSON}
    client.token = "bogus"
    reply = await client.request(
        "POST", client.query(), b'["1","1","lc:lobby","phx_join",{}]', header
    )
    assert reply.json == {"status": 200}


async def test_69_every_answer_is_no_store_with_cors(client: LongPollClient) -> None:
    answers = [
        await client.open(),
        await client.post(JOIN),
        await client.get(),
        await client.request("OPTIONS", client.endpoint),
        await client.request("PUT", client.endpoint),
        await client.post_raw(b"!!!not base64"),
    ]
    for answer in answers:
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["access-control-allow-origin"] == "*"
    assert answers[0].headers["content-type"] == "application/json; charset=utf-8"


async def test_70_async_push_reaches_the_next_get(client: LongPollClient) -> None:
    await client.open()
    await client.post(JOIN)
    await collect(client, 3)
    assert (await client.post(["1", "2", "lc:lobby", "ping", {}])).json == {"status": 200}
    [pong] = await collect(client, 1)
    assert fields(pong)[3] == "pong"


async def test_options_preflight(client: LongPollClient) -> None:
    reply = await client.request(
        "OPTIONS",
        client.endpoint,
        headers={"Access-Control-Request-Headers": "x-phoenix-authtoken, content-type"},
    )
    assert (reply.http_status, reply.raw) == (200, b"")
    assert reply.headers["access-control-allow-headers"] == "x-phoenix-authtoken, content-type"
    assert reply.headers["access-control-allow-methods"] == "get, post, options"
    assert reply.headers["access-control-max-age"] == "3600"


async def test_unsupported_method_is_http_400(client: LongPollClient) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        reply = await client.request(method, client.endpoint)
        assert (reply.http_status, reply.raw) == (400, b"")


# -- bad input: the status Phoenix gives, and the session goes on ---------------------------


async def assert_session_intact(client: LongPollClient) -> None:
    assert (await client.post(["1", "7", "lc:lobby", "params", {}])).json == {"status": 200}
    [reply] = await collect(client, 1)
    assert fields(reply)[1:4] == ("7", "lc:lobby", "phx_reply")


async def test_oversize_body_is_http_400(
    lp_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await lp_server(longpoll_max_body_bytes=1000)
    client = LongPollClient(http, server.endpoint)
    await client.open()
    await client.post(JOIN)
    await collect(client, 3)
    big = b'["1","2","lc:lobby","new_msg",{"body":"' + b"x" * 1000 + b'"}]'
    reply = await client.post_raw(big)
    assert (reply.http_status, reply.raw) == (400, b"")
    await settle()
    assert (await client.get()).status == 204  # nothing of it was dispatched
    await assert_session_intact(client)


async def test_malformed_lines_are_http_400_and_nothing_is_dispatched(
    client: LongPollClient,
) -> None:
    await client.open()
    await client.post(JOIN)
    await collect(client, 3)
    good = b'["1",null,"lc:lobby","new_msg",{"body":"never"}]'
    for body in (
        good + b"\n!!!not base64!!!",  # neither JSON array nor base64
        good + b"\n[1,2",  # truncated JSON
        good + b'\n["1",null,"lc:lobby"]',  # not a Phoenix message
        good + b"\n" + base64.b64encode(b"\x00\x09"),  # truncated binary frame
        good + b"\n",  # an empty line is an empty binary frame: malformed
        b"",  # an empty batch body is one empty line
    ):
        reply = await client.post_raw(body)
        assert (reply.http_status, reply.raw) == (400, b""), body
    not_json = await client.post_raw(b"{nope", content_type="application/json")
    assert not_json.http_status == 400
    await settle()
    assert (await client.get()).status == 204
    await assert_session_intact(client)


async def test_crlf_lines_and_more_than_100_lines(client: LongPollClient) -> None:
    await client.open()
    await client.post(JOIN)
    await collect(client, 3)
    line = b'["1",null,"lc:lobby","new_msg",{"body":"b"}]'
    reply = await client.post_raw(b"\r\n".join([line] * 150))
    assert reply.json == {"status": 200}
    assert len(await collect(client, 100)) == 100


async def test_bad_content_types_make_the_body_one_frame(client: LongPollClient) -> None:
    await client.open()
    await client.post(JOIN)
    await collect(client, 3)
    two_lines = b'["1","5","lc:lobby","params",{}]\n["1","6","lc:lobby","params",{}]'
    for ctype in ("application/x-ndjson; charset=utf-8", "text/plain", "application/json"):
        reply = await client.post_raw(two_lines, content_type=ctype)
        assert reply.http_status == 400, ctype  # two lines are not one JSON frame
    one = await client.post_raw(b'["1","5","lc:lobby","params",{}]', content_type="text/plain")
    assert one.json == {"status": 200}
    [reply] = await collect(client, 1)
    assert fields(reply)[1] == "5"


async def test_unknown_forged_and_expired_tokens(
    server: LongPollServer, client: LongPollClient
) -> None:
    await client.open()
    real = client.token or ""
    signer = server.longpoll.signer
    node = server.node.settings.node
    body, _, mac = real.partition(".")
    forged_mac = body + "." + ("A" if mac[0] != "A" else "B") + mac[1:]
    other_key = rules.TokenSigner(b"k" * 32).sign(node, "whatever", time.time())
    expired = signer.sign(node, "whatever", time.time() - 100, max_age_s=10)
    unknown_session = signer.sign(node, "no-such-session", time.time())
    unknown_node = signer.sign("another-node", "s", time.time())
    for token in ("garbage", forged_mac, other_key, expired, unknown_session, unknown_node):
        client.token = token
        assert (await client.post(JOIN)).json == {"status": 410}, token
        fresh = await client.get()
        assert fresh.status == 410 and fresh.json["token"] not in (token, real), token
    client.token = real
    assert (await client.post(JOIN)).json == {"status": 200}


async def test_a_second_get_takes_over(lp_server: StartServer, http: aiohttp.ClientSession) -> None:
    server = await lp_server(longpoll_window_ms=600)
    client = LongPollClient(http, server.endpoint)
    await client.open()
    first = asyncio.create_task(client.get())
    await asyncio.sleep(0.1)
    second = asyncio.create_task(client.get())
    await asyncio.sleep(0.1)
    await client.post(JOIN)
    taken = await second
    assert taken.status == 200 and taken.messages
    older = await first
    assert (older.status, older.json["messages"]) == (204, [])


async def test_a_held_get_answers_as_soon_as_a_message_arrives(
    lp_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await lp_server(longpoll_window_ms=5000)
    client = LongPollClient(http, server.endpoint)
    await client.open()
    held = asyncio.create_task(client.get())
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await client.post(JOIN)
    assert (await held).status == 200
    assert time.monotonic() - started < 1.0


async def test_overflowing_buffer_ends_the_session(
    lp_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await lp_server(outbound_limit_bytes=2000)
    client = LongPollClient(http, server.endpoint)
    await client.open()
    await client.post(JOIN)
    lines = [f'["1","{i}","lc:lobby","params",{{}}]'.encode() for i in range(60)]
    assert (await client.post_raw(b"\n".join(lines))).json in ({"status": 200}, {"status": 410})
    await settle()
    assert len(server.node.hub) == 0
    assert (await client.post(JOIN)).json == {"status": 410}
    assert (await client.get()).json["token"] != client.token  # a fresh session


async def test_drain_ends_sessions_and_refuses_new_ones(
    server: LongPollServer, client: LongPollClient
) -> None:
    await client.open()
    await client.post(JOIN)
    await collect(client, 3)
    held = asyncio.create_task(client.get())
    await asyncio.sleep(0.05)
    left = await server.node.hub.drain(1.0, 100, 0.01)
    assert left == 0
    assert (await held).status == 204  # released at once, not after the window
    assert ("lc:lobby", "draining") in TERMINATED
    assert (await client.post(JOIN)).json == {"status": 410}
    assert (await client.get()).json == {"status": 403}  # a draining node takes no one


async def test_binary_replies_are_not_sent_over_long_poll(client: LongPollClient) -> None:
    await client.open()
    await client.post(["1", "1", "echo:bin", "phx_join", {}])
    binary = bytes([0, 1, 1, 8, 4]) + b"12echo:binecho" + b"\x01\x02"
    assert (
        await client.post(base64.b64encode(binary), ["1", "3", "echo:bin", "e", {"a": 1}])
    ).json == {"status": 200}
    messages = [fields(m) for m in await collect(client, 2)]
    assert [m[1] for m in messages] == ["1", "3"]  # the join reply and the JSON echo only
