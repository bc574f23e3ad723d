"""Phoenix's long-poll channel tests (reference section 9, LC 42-63) over raw HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import jwt
import pytest

from tests.longpoll.conftest import LongPollClient, LongPollServer, StartServer
from tests.longpoll.fixture_channel import TERMINATED
from tests.longpoll.wire import collect, fields, frame, settle

VSNS = ["1.0.0", "2.0.0"]
JWT_SECRET = "a-test-secret-of-at-least-32-bytes!!"


def jr_of(vsn: str) -> str | None:
    """The join_ref a client of this serializer sends: V1 clients have none."""
    return None if vsn.startswith("1") else "1"


def lc_client(server: LongPollServer, http: aiohttp.ClientSession, vsn: str) -> LongPollClient:
    return LongPollClient(http, server.endpoint, vsn=vsn)


async def joined(client: LongPollClient, vsn: str, topic: str = "lc:lobby", jr: str = "1") -> None:
    """Open, join (ref "1"), and consume the three join messages."""
    await client.open()
    reply = await client.post(frame(vsn, jr_of(vsn) and jr, "1", topic, "phx_join", {}))
    assert reply.json == {"status": 200}
    await collect(client, 3)


@pytest.mark.parametrize("vsn", VSNS)
async def test_42_43_open_join_then_messages_in_order_then_204(
    server: LongPollServer, http: aiohttp.ClientSession, vsn: str
) -> None:
    client = lc_client(server, http, vsn)
    opened = await client.get()
    assert opened.http_status == 200
    assert opened.json["status"] == 410 and opened.json["messages"] == []
    assert list(opened.json) == ["messages", "status", "token"]  # Phoenix's key order
    client.token = opened.json["token"]
    posted = await client.post(frame(vsn, jr_of(vsn), "1", "lc:lobby", "phx_join", {}))
    assert (posted.http_status, posted.json) == (200, {"status": 200})

    messages = [fields(m) for m in await collect(client, 3)]
    v1 = vsn.startswith("1")
    assert messages[0] == (
        None if v1 else "1",
        "1",
        "lc:lobby",
        "phx_reply",
        {"response": {}, "status": "ok"},
    )
    assert messages[1] == (None, None, "lc:lobby", "user_entered", {"user": None})
    assert messages[2] == (
        None if v1 else "1",
        None,
        "lc:lobby",
        "joined",
        {"status": "connected", "user_id": None},
    )
    empty = await client.get()
    assert (empty.status, empty.json["messages"], empty.json["token"]) == (204, [], client.token)


async def test_44_one_hundred_topics_then_too_many_channels(
    server: LongPollServer, http: aiohttp.ClientSession
) -> None:
    client = lc_client(server, http, "2.0.0")
    await client.open()
    for i in range(1, 101):
        topic = f"lc:t{i}"
        assert (await client.post(frame("2.0.0", str(i), str(i), topic, "phx_join", {}))).json == {
            "status": 200
        }
        events = [fields(m)[2:4] for m in await collect(client, 3)]
        assert events == [(topic, "phx_reply"), (topic, "user_entered"), (topic, "joined")]
    over = await client.post(frame("2.0.0", "101", "101", "lc:t101", "phx_join", {}))
    assert over.json == {"status": 200}
    [message] = await collect(client, 1)
    assert fields(message) == (
        "101",
        "101",
        "lc:t101",
        "phx_reply",
        {"response": {"reason": "too many channels joined"}, "status": "error"},
    )


@pytest.mark.parametrize("vsn", VSNS)
async def test_49_push_without_join_ref_is_broadcast_and_intercepted(
    server: LongPollServer, http: aiohttp.ClientSession, vsn: str
) -> None:
    client = lc_client(server, http, vsn)
    await joined(client, vsn)
    assert (
        await client.post(frame(vsn, None, None, "lc:lobby", "new_msg", {"body": "hi!"}))
    ).json == {"status": 200}
    [message] = await collect(client, 1)
    join_ref, ref, topic, event, payload = fields(message)
    assert (ref, topic, event, payload) == (
        None, "lc:lobby", "new_msg", {"body": "hi!", "transport": ":longpoll"}
    )  # fmt: skip
    assert join_ref == (None if vsn.startswith("1") else "1")


@pytest.mark.parametrize("vsn", VSNS)
async def test_50_push_to_unjoined_topic_gets_unmatched_topic(
    server: LongPollServer, http: aiohttp.ClientSession, vsn: str
) -> None:
    client = lc_client(server, http, vsn)
    await client.open()
    reply = await client.post(
        frame(vsn, None, "12300", "lc:private-room", "new_msg", {"body": "x"})
    )
    assert reply.json == {"status": 200}
    [message] = await collect(client, 1)
    assert fields(message) == (
        None,
        "12300",
        "lc:private-room",
        "phx_reply",
        {"response": {"reason": "unmatched topic"}, "status": "error"},
    )


async def test_52_ndjson_batch_stale_join_ref_and_base64_binary(
    server: LongPollServer, http: aiohttp.ClientSession
) -> None:
    client = lc_client(server, http, "2.0.0")
    await client.open()
    await client.post(["1", "1", "lc:lobby", "phx_join", {}])
    batch = await client.post(
        ["1", None, "lc:lobby", "new_msg", {"body": "hi1"}],
        ["1", None, "lc:lobby", "new_msg", {"body": "hi2"}],
        ["stale", None, "lc:lobby", "new_msg", {"body": "stale"}],
    )
    assert batch.json == {"status": 200}
    # A kind 0 binary push: join_ref "1", topic lc:lobby, event "bin", payload 01 02.
    binary = bytes([0, 1, 0, 8, 3]) + b"1lc:lobbybin" + b"\x01\x02"
    second = await client.post(
        base64.b64encode(binary), ["1", None, "lc:lobby", "new_msg", {"body": "hi3"}]
    )
    assert second.json == {"status": 200}
    messages = [fields(m) for m in await collect(client, 7)]
    assert [m[3] for m in messages] == [
        "phx_reply", "user_entered", "joined", "new_msg", "new_msg", "bin_ack", "new_msg"
    ]  # fmt: skip
    for join_ref, ref, _topic, _event, payload in messages[3:]:
        assert (join_ref, ref, payload["transport"]) == ("1", None, ":longpoll")
    assert [m[4].get("body") for m in messages[3:]] == ["hi1", "hi2", None, "hi3"]
    assert messages[5][4]["size"] == 2


async def test_53_idle_session_ends_with_inactive_and_post_gets_410(
    server: LongPollServer, http: aiohttp.ClientSession
) -> None:
    client = lc_client(server, http, "2.0.0")
    await joined(client, "2.0.0")
    started = time.monotonic()
    while ("lc:lobby", "inactive") not in TERMINATED:
        assert time.monotonic() - started < 5, TERMINATED
        # POSTs do not keep a session alive (section 5.7).
        await client.post(["1", "9", "lc:lobby", "ping", {}])
        await asyncio.sleep(0.05)
    assert time.monotonic() - started >= 0.25  # not before 1.5 x the 200 ms window
    assert (await client.post(["1", "9", "lc:lobby", "ping", {}])).json == {"status": 410}
    assert len(server.node.hub) == 0


async def test_polls_keep_a_session_alive(server: LongPollServer, client: LongPollClient) -> None:
    await client.open()
    for _ in range(4):  # 4 windows of 200 ms: longer than 1.5 x window
        assert (await client.get()).status == 204
    assert (await client.post(["1", "1", "lc:lobby", "phx_join", {}])).json == {"status": 200}


async def test_55_only_the_first_100_lines_are_dispatched(
    server: LongPollServer, http: aiohttp.ClientSession
) -> None:
    client = lc_client(server, http, "2.0.0")
    await joined(client, "2.0.0")
    lines = [["1", None, "lc:lobby", "new_msg", {"body": str(i)}] for i in range(1, 102)]
    assert (await client.post(*lines)).json == {"status": 200}
    messages = await collect(client, 100)
    assert [fields(m)[4]["body"] for m in messages] == [str(i) for i in range(1, 101)]
    await settle()
    assert (await client.get()).status == 204  # message 101 never comes


@pytest.mark.parametrize("vsn", VSNS)
async def test_56_refused_connect_is_403(
    lp_server: StartServer, http: aiohttp.ClientSession, vsn: str
) -> None:
    server = await lp_server(allow_anonymous=False, jwt_secret=JWT_SECRET)
    client = lc_client(server, http, vsn)
    reply = await client.get()
    assert (reply.http_status, reply.json) == (200, {"status": 403})
    assert reply.headers["cache-control"] == "no-store"
    forged = jwt.encode({"sub": "u1"}, "not the secret, but just as long as it!", algorithm="HS256")
    assert (await client.get(headers={"X-Phoenix-AuthToken": forged})).json == {"status": 403}
    # The X-Phoenix-AuthToken header is the auth token of the connecting GET (section 1.6).
    good = jwt.encode({"sub": "u1"}, JWT_SECRET, algorithm="HS256")
    await client.open(headers={"X-Phoenix-AuthToken": good})
    [conn] = server.node.hub.connections.values()
    assert (conn.info.user_id, conn.info.authenticated) == ("u1", True)


@pytest.mark.parametrize("vsn", VSNS)
async def test_57_allowed_and_refused_origins(
    lp_server: StartServer, http: aiohttp.ClientSession, vsn: str
) -> None:
    server = await lp_server(check_origin="//example.com")
    client = lc_client(server, http, vsn)
    allowed = await client.get(headers={"Origin": "https://example.com"})
    assert allowed.status == 410
    refused = await client.get(headers={"Origin": "http://notallowed.com"})
    assert (refused.http_status, refused.json) == (200, {"status": 403})
    client.token = allowed.json["token"]
    post = await client.request("POST", client.query(), b"", {"Origin": "http://notallowed.com"})
    assert post.json == {"status": 403}


@pytest.mark.parametrize("vsn", VSNS)
async def test_59_crash_sends_phx_error(
    server: LongPollServer, http: aiohttp.ClientSession, vsn: str
) -> None:
    client = lc_client(server, http, vsn)
    await client.open()
    await client.post(frame(vsn, jr_of(vsn), "1", "lc:lobby", "phx_join", {}))
    assert (await client.post(frame(vsn, jr_of(vsn), "2", "lc:lobby", "boom", {}))).json == {
        "status": 200
    }
    messages = [fields(m) for m in await collect(client, 4)]
    jr = None if vsn.startswith("1") else "1"
    assert messages[3] == (jr, jr, "lc:lobby", "phx_error", {"reason": "channel_crash"})


@pytest.mark.parametrize("vsn", VSNS)
async def test_60_stale_leave_is_ignored_then_leave_closes(
    server: LongPollServer, http: aiohttp.ClientSession, vsn: str
) -> None:
    client = lc_client(server, http, vsn)
    await client.open()
    await client.post(frame(vsn, jr_of(vsn), "1", "lc:lobby", "phx_join", {}))
    assert (await client.post(frame(vsn, "stale", "2", "lc:lobby", "phx_leave", {}))).json == {
        "status": 200
    }
    assert (await client.post(frame(vsn, None, "2", "lc:lobby", "phx_leave", {}))).json == {
        "status": 200
    }
    messages = [fields(m) for m in await collect(client, 5)]
    jr = None if vsn.startswith("1") else "1"
    assert messages[3] == (jr, "2", "lc:lobby", "phx_reply", {"response": {}, "status": "ok"})
    assert messages[4] == (jr, jr, "lc:lobby", "phx_close", {})


@pytest.mark.parametrize("vsn", VSNS)
async def test_61_disconnect_broadcast_ends_session(
    lp_server: StartServer, http: aiohttp.ClientSession, vsn: str
) -> None:
    server = await lp_server(trust_token_as_user_id=True)
    client = lc_client(server, http, vsn)
    # Phoenix's scenario: the user's `token` param first, the session token appended last.
    await client.open("token=456")
    for jr, topic in (("1", "lc:a"), ("2", "lc:b")):
        await client.post(frame(vsn, jr_of(vsn) and jr, jr, topic, "phx_join", {}))
    await collect(client, 6)
    server.node.pubsub.broadcast("users_socket:456", "disconnect", {})
    await settle()
    assert sorted(TERMINATED) == [("lc:a", "disconnected"), ("lc:b", "disconnected")]
    old = client.token
    again = await client.get("token=456")
    assert again.status == 410 and again.json["token"] != old


@pytest.mark.parametrize("vsn", VSNS)
async def test_62_unsupported_vsn_is_403(
    server: LongPollServer, http: aiohttp.ClientSession, vsn: str
) -> None:
    reply = await LongPollClient(http, server.endpoint, vsn="123.1.1").get()
    assert (reply.http_status, reply.json) == (200, {"status": 403})


@pytest.mark.parametrize("vsn", VSNS)
async def test_63_empty_content_type_is_one_json_message(
    server: LongPollServer, http: aiohttp.ClientSession, vsn: str
) -> None:
    client = lc_client(server, http, vsn)
    await joined(client, vsn)
    body = json.dumps(frame(vsn, jr_of(vsn), "2", "lc:lobby", "phx_leave", {})).encode()
    reply = await client.post_raw(body, content_type="")
    assert (reply.http_status, reply.json) == (200, {"status": 200})
    events = [fields(m)[3] for m in await collect(client, 2)]
    assert events == ["phx_reply", "phx_close"]
