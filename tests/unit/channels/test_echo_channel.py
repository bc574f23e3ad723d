"""EchoChannel's events and error replies, without sockets."""

from __future__ import annotations

from gateway.testing import ChannelTest


async def test_a_push_is_answered_with_its_payload() -> None:
    t = ChannelTest.build()
    ann = t.connect("ann")
    assert await ann.reply(ann.join("echo:1")) == {"status": "ok", "response": {}}
    ref = ann.push("echo:1", "ping", {"b": [1, 2], "a": "x"})
    assert await ann.reply(ref) == {"status": "ok", "response": {"a": "x", "b": [1, 2]}}


async def test_a_binary_push_gets_a_binary_reply() -> None:
    t = ChannelTest.build()
    ann = t.connect("ann")
    ann.join("echo:1")
    ref = ann.push_binary("echo:1", "ping", b"\x00\x01\x02")
    frame = await ann.wait_for(lambda f: f[1] == ref)
    assert frame == ["1", ref, "echo:1", "phx_reply", {"status": "ok", "response": b"\x00\x01\x02"}]
    assert not ann.sink.frames[-1].text


async def test_broadcast_reaches_everyone_on_the_topic() -> None:
    t = ChannelTest.build()
    ann, bob, eve = t.connect("ann"), t.connect("bob"), t.connect("eve")
    ann.join("echo:1")
    bob.join("echo:1")
    eve.join("echo:2")
    await t.settle()
    ref = ann.push("echo:1", "broadcast", {"hi": 1})
    assert await ann.reply(ref) == {"status": "ok", "response": {}}
    expected = [None, None, "echo:1", "broadcast", {"hi": 1}]
    assert expected in ann.frames  # the sender too
    assert await bob.wait_for(lambda f: f[3] == "broadcast") == expected
    assert eve.events() == ["phx_reply"]


async def test_an_out_of_range_number_is_an_error_reply_and_the_channel_goes_on() -> None:
    t = ChannelTest.build()
    ann = t.connect("ann")
    ann.join("echo:1")
    ann.send_text('["1","9","echo:1","ping",{"n":1e400}]')
    assert await ann.reply("9") == {"status": "error", "response": {"reason": "invalid payload"}}
    assert (await ann.reply(ann.push("echo:1", "ping", {"n": 2})))["status"] == "ok"


async def test_replies_keep_the_order_of_the_pushes() -> None:
    t = ChannelTest.build()
    ann = t.connect("ann")
    ann.join("echo:1")
    refs = [ann.push("echo:1", "ping", {"i": i}) for i in range(20)]
    await t.settle()
    replies = [f for f in ann.frames if f[3] == "phx_reply"][1:]
    assert [f[1] for f in replies] == refs
    assert [f[4]["response"]["i"] for f in replies] == list(range(20))


async def test_an_unrouted_topic_is_refused() -> None:
    t = ChannelTest.build()
    ann = t.connect("ann")
    ref = ann.join("nowhere:1")
    assert await ann.reply(ref) == {"status": "error", "response": {"reason": "unmatched topic"}}


async def test_echo_off_routes_no_echo_topic() -> None:
    t = ChannelTest.build(echo=False)
    ann = t.connect("ann")
    assert (await ann.reply(ann.join("echo:1")))["status"] == "error"


async def test_a_malformed_frame_closes_the_socket_with_1011() -> None:
    t = ChannelTest.build()
    ann = t.connect("ann")
    ann.join("echo:1")
    await t.settle()
    ann.send_text("[not json")
    assert ann.sink.close_code == 1011
    assert ann.conn.closed and not ann.conn.channels
