"""The Channel contract: what an application channel implements, and what it may call.

Mirrors Phoenix.Channel: `join`, `handle_in`, `handle_out` for intercepted broadcasts,
`handle_info`, `terminate`. Each joined channel handles one message at a time, in order (see
`runtime/channel_process.py`), so a channel never needs a lock and a crash ends only its topic.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, ClassVar, Protocol

import msgspec

from gateway.channels.context import ChannelContext, SocketInfo
from gateway.protocol import jsonenc
from gateway.protocol.messages import Payload


class Reply(msgspec.Struct, frozen=True, gc=False):
    """A reply to a push or a join: `{status, response}` on the wire."""

    status: str
    response: Any = msgspec.field(default_factory=dict)


class Stop(msgspec.Struct, frozen=True, gc=False):
    """Returned by `handle_in` to end the channel: phx_close follows (after `reply`, if any)."""

    reason: str = "normal"
    reply: Reply | None = None


def ok(response: Any = None) -> Reply:
    return Reply("ok", {} if response is None else response)


def error(response: Any) -> Reply:
    return Reply("error", response)


def decode_payload(payload: Payload) -> Any:
    """A JSON payload as Python values; binary payloads stay bytes."""
    if isinstance(payload, bytes):
        return payload
    return jsonenc.decode(payload)


class Channel:
    """Base class of every channel. Override the callbacks; call the helpers."""

    #: Events whose broadcasts pass through `handle_out` instead of the fastlane.
    intercepts: ClassVar[frozenset[str]] = frozenset()
    #: Whether this channel's coroutines may take their first steps on the caller's stack,
    #: outside any task, so that one which finishes without suspending costs no task. Only
    #: when nothing they do before suspending needs `asyncio.current_task()` (as
    #: `asyncio.timeout` does, and so redis-py and aiohttp's client).
    inline_coroutines: bool = False
    # A subclass that declares no `__slots__` gets an instance dict as usual.
    __slots__ = ("_process", "topic")

    def __init__(self, process: ChannelContext) -> None:
        self._process = process
        self.topic: str = process.topic

    # -- context ----------------------------------------------------------------------------
    @property
    def socket(self) -> SocketInfo:
        return self._process.conn.info

    # -- callbacks --------------------------------------------------------------------------
    # Each callback may be a plain method or a coroutine. A plain one runs at once on the read
    # path; a coroutine gets a task, and the channel's later messages wait for it (in order).
    # Write the common events plain and keep `async` for the ones that must wait on I/O.

    def join(self, payload: Payload) -> Reply | Awaitable[Reply]:
        """Accept (`ok(...)`) or refuse (`error({"reason": ...})`) the join."""
        return ok()

    def after_join(self) -> Awaitable[None] | None:
        """Runs right after the join reply went out (Phoenix's `send(self(), :after_join)`)."""
        return None

    def handle_in(
        self, event: str, payload: Payload, ref: Any
    ) -> Reply | Stop | Awaitable[Reply | Stop | None] | None:
        """A client push. Return a reply, nothing (no reply), or `Stop`."""
        return None

    def handle_out(self, event: str, payload: Any) -> Awaitable[None] | None:
        """An intercepted broadcast; push it on, changed or not, or drop it."""
        self.push(event, payload)
        return None

    def handle_info(self, message: Any) -> Awaitable[None] | None:
        """A message sent to this channel with `ChannelProcess.send_info`."""
        return None

    def terminate(self, reason: str) -> Awaitable[None] | None:
        """The channel is ending: left, closed, duplicate_join, disconnected, shutdown."""
        return None

    # -- helpers ----------------------------------------------------------------------------
    def push(self, event: str, payload: Any) -> None:
        """Send to this client only, with this channel's join_ref and a null ref."""
        self._process.push(event, payload)

    def reply(self, ref: Any, reply: Reply) -> None:
        """Reply later (or again) to the push whose ref is `ref`."""
        self._process.reply(ref, reply.status, reply.response)

    def broadcast(self, event: str, payload: Any) -> int:
        """To every subscriber of this topic, this client included."""
        return self._process.conn.parts.pubsub.broadcast(self.topic, event, payload)

    def broadcast_from(self, event: str, payload: Any) -> int:
        """To every subscriber of this topic except this channel."""
        pubsub = self._process.conn.parts.pubsub
        return pubsub.broadcast(self.topic, event, payload, exclude=self._process)

    def subscribe(self, key: str) -> None:
        """Receive broadcasts on a further key (they arrive with this channel's topic)."""
        self._process.subscribe_extra(key)

    def send_info(self, message: Any) -> None:
        self._process.send_info(message)


class ChannelFactory(Protocol):
    """What the router hands the runtime for a topic: a `Channel` subclass, or a route that
    builds one with its options (`Router.route("room:*", RoomChannel, rooms=rooms)`)."""

    @property
    def intercepts(self) -> frozenset[str]: ...

    def __call__(self, process: ChannelContext) -> Channel: ...
