"""The channel runtime's ordering rules, through the socket-less harness (gateway.testing)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.channels.base import Channel, Reply, error, ok
from gateway.channels.echo import EchoChannel
from gateway.protocol.messages import Payload
from gateway.testing import ChannelTest, Client


class Greeter(EchoChannel):
    """Echo plus a push after the join, a slow refusal, a crash and a goodbye."""

    __slots__ = ()

    async def join(self, payload: Payload) -> Reply:
        await asyncio.sleep(0)  # the join waits, so pushes sent meanwhile queue behind it
        if self.topic.endswith(":refuse"):
            return error({"reason": "nope"})
        return ok({"hello": True})

    def after_join(self) -> None:
        self.push("welcome", {})

    def handle_in(self, event: str, payload: Payload, ref: Any) -> Reply:
        if event == "boom":
            raise RuntimeError("boom")
        return super().handle_in(event, payload, ref)

    def terminate(self, reason: str) -> None:
        self.push("bye", {"reason": reason})


async def test_the_join_reply_comes_before_after_join_pushes() -> None:
    t = ChannelTest.build()
    t.route("greet:*", Greeter)
    ann = t.connect("ann")
    ann.join("greet:1")
    ann.push("greet:1", "ping", {"n": 1})
    await t.settle()
    assert ann.frames == [
        ["1", "1", "greet:1", "phx_reply", {"status": "ok", "response": {"hello": True}}],
        ["1", None, "greet:1", "welcome", {}],
        ["1", "2", "greet:1", "phx_reply", {"status": "ok", "response": {"n": 1}}],
    ]


async def test_pushes_queued_behind_a_failed_join_get_unmatched_topic() -> None:
    t = ChannelTest.build()
    t.route("greet:*", Greeter)
    ann = t.connect("ann")
    join = ann.join("greet:refuse")
    first = ann.push("greet:refuse", "ping")
    leave = ann.leave("greet:refuse")
    await t.settle()
    assert ann.frames == [
        ["1", join, "greet:refuse", "phx_reply", {"status": "error", "response": {"reason": "nope"}}],
        [None, first, "greet:refuse", "phx_reply",
         {"status": "error", "response": {"reason": "unmatched topic"}}],
        ["1", leave, "greet:refuse", "phx_reply", {"status": "ok", "response": {}}],
    ]  # fmt: skip


async def test_a_rejoin_closes_the_old_join_after_the_new_reply() -> None:
    t = ChannelTest.build()
    t.route("greet:*", Greeter)
    ann = t.connect("ann")
    old = ann.join("greet:1")
    await t.settle()
    new = ann.join("greet:1")
    await t.settle()
    after_first_join = ann.frames[2:]
    assert after_first_join == [
        [old, None, "greet:1", "bye", {"reason": "duplicate_join"}],
        [new, new, "greet:1", "phx_reply", {"status": "ok", "response": {"hello": True}}],
        [old, old, "greet:1", "phx_close", {}],
        [new, None, "greet:1", "welcome", {}],
    ]


async def test_terminate_runs_before_phx_error_and_the_socket_lives_on() -> None:
    t = ChannelTest.build()
    t.route("greet:*", Greeter)
    t.route("echo:*", EchoChannel)
    ann = t.connect("ann")
    ann.join("greet:1")
    ann.join("echo:1")
    await t.settle()
    ann.push("greet:1", "boom")
    await t.settle()
    assert ann.events("greet:1")[-2:] == ["bye", "phx_error"]
    assert ann.frames[-1] == ["1", "1", "greet:1", "phx_error", {"reason": "channel_crash"}]
    assert not ann.conn.closed
    assert (await ann.reply(ann.push("echo:1", "ping", {"a": 1}))) == {
        "status": "ok",
        "response": {"a": 1},
    }


async def test_leave_replies_then_closes_and_terminates() -> None:
    t = ChannelTest.build()
    t.route("greet:*", Greeter)
    ann = t.connect("ann")
    ann.join("greet:1")
    await t.settle()
    leave = ann.leave("greet:1")
    await t.settle()
    assert ann.frames[2:] == [
        ["1", leave, "greet:1", "phx_reply", {"status": "ok", "response": {}}],
        ["1", "1", "greet:1", "phx_close", {}],
        ["1", None, "greet:1", "bye", {"reason": "left"}],
    ]
    assert "greet:1" not in ann.conn.channels


async def test_a_disconnect_terminates_without_frames_to_the_client() -> None:
    t = ChannelTest.build()

    class Recorder(Channel):
        __slots__ = ()
        reasons: list[str] = []

        def terminate(self, reason: str) -> None:
            self.reasons.append(reason)

    t.route("rec:*", Recorder)
    ann = t.connect("ann")
    ann.join("rec:1")
    await t.settle()
    count = len(ann.frames)
    ann.disconnect()
    await t.settle()
    assert Recorder.reasons == ["test disconnect"]
    assert len(ann.frames) == count
    assert ann.sink.closed


class Inbox(Channel):
    """A member's own key, subscribed at join; an `after_join` that waits; broadcasts dropped."""

    __slots__ = ()
    gate: asyncio.Event

    def join(self, payload: Payload) -> Reply:
        self.subscribe(f"{self.topic}#me")
        return ok({})

    async def after_join(self) -> None:
        self.push("welcome", {})
        await self.gate.wait()
        self.push("settled", {})

    def handle_out(self, event: str, payload: Any) -> None:
        return None  # a room drops intercepted broadcasts it does not want


async def test_a_targeted_message_that_waits_for_after_join_is_still_pushed() -> None:
    t = ChannelTest.build()
    t.route("inbox:*", Inbox)
    Inbox.gate = asyncio.Event()
    ann = t.connect("ann")
    ann.join("inbox:1")
    await ann.wait_for(lambda f: f[3] == "welcome")
    t.node.pubsub.broadcast("inbox:1#me", "offer", {"n": 1}, topic="inbox:1")
    Inbox.gate.set()
    await t.settle()
    assert ann.events() == ["phx_reply", "welcome", "settled", "offer"]
    assert ann.frames[-1] == ["1", None, "inbox:1", "offer", {"n": 1}]


class Prompt(Channel):
    """Coroutines run inline: a join that waits only when its topic says so, and pushes
    and a `terminate` that never wait."""

    __slots__ = ()
    inline_coroutines = True
    gate: asyncio.Event
    cancelled: list[str] = []

    async def join(self, payload: Payload) -> Reply:
        if self.topic.endswith(":wait"):
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(self.topic)
                raise
        if self.topic.endswith(":refuse"):
            return error({"reason": "nope"})
        return ok({"hello": True})

    async def after_join(self) -> None:
        self.push("welcome", {})

    async def handle_in(self, event: str, payload: Payload, ref: Any) -> Reply:
        if event == "boom":
            raise RuntimeError("boom")
        return ok(payload)

    async def terminate(self, reason: str) -> None:
        self.push("bye", {"reason": reason})


def prompted() -> tuple[ChannelTest, Client]:
    """A node routing `prompt:*` to `Prompt` (a fresh gate, nothing cancelled yet), and ann."""
    t = ChannelTest.build()
    t.route("prompt:*", Prompt)
    Prompt.gate = asyncio.Event()
    Prompt.cancelled = []
    return t, t.connect("ann")


async def test_inline_coroutines_that_do_not_wait_are_answered_at_once_without_a_task() -> None:
    _, ann = prompted()
    tasks = len(asyncio.all_tasks())
    ann.join("prompt:1")
    ann.push("prompt:1", "ping", {"n": 1})
    leave = ann.leave("prompt:1")
    # No turn of the event loop yet: all of it ran on the read path.
    assert ann.frames == [
        ["1", "1", "prompt:1", "phx_reply", {"status": "ok", "response": {"hello": True}}],
        ["1", None, "prompt:1", "welcome", {}],
        ["1", "2", "prompt:1", "phx_reply", {"status": "ok", "response": {"n": 1}}],
        ["1", leave, "prompt:1", "phx_reply", {"status": "ok", "response": {}}],
        ["1", "1", "prompt:1", "phx_close", {}],
        ["1", None, "prompt:1", "bye", {"reason": "left"}],
    ]
    assert len(asyncio.all_tasks()) == tasks


async def test_an_inline_coroutine_that_waits_goes_on_in_a_task_and_keeps_the_order() -> None:
    t, ann = prompted()
    ann.join("prompt:wait")
    ann.push("prompt:wait", "ping", {"n": 1})
    await t.settle()
    assert ann.frames == []  # the join waits; the push waits behind it
    Prompt.gate.set()
    await t.settle()
    assert ann.frames == [
        ["1", "1", "prompt:wait", "phx_reply", {"status": "ok", "response": {"hello": True}}],
        ["1", None, "prompt:wait", "welcome", {}],
        ["1", "2", "prompt:wait", "phx_reply", {"status": "ok", "response": {"n": 1}}],
    ]


@pytest.mark.parametrize("task_started", [True, False])
async def test_a_disconnect_cancels_an_inline_coroutine_where_it_waits(task_started: bool) -> None:
    t, ann = prompted()
    ann.join("prompt:wait")  # starts on the read path and waits: a task takes it over
    if task_started:
        await t.settle()
    ann.disconnect()
    await t.settle()
    assert Prompt.cancelled == ["prompt:wait"]
    assert ann.frames == []  # never joined: no reply, and no terminate
    assert not ann.conn.channels
    assert not Prompt.gate._waiters  # the cancel ran the wait's own cleanup


async def test_inline_coroutines_that_fail_crash_the_channel_alone() -> None:
    _, ann = prompted()
    refused = ann.join("prompt:refuse")
    ann.join("prompt:1")
    ann.push("prompt:1", "boom")
    assert ann.frames[0] == [
        "1", refused, "prompt:refuse", "phx_reply", {"status": "error", "response": {"reason": "nope"}}
    ]  # fmt: skip
    assert ann.events("prompt:1")[-2:] == ["bye", "phx_error"]
    assert not ann.conn.closed
    again = ann.join("prompt:1")
    assert (await ann.reply(again))["status"] == "ok"
