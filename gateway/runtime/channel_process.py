"""One joined channel: its mailbox, the order it handles things in, and its lifecycle frames.

A channel handles one thing at a time, in arrival order: its join, client pushes, intercepted
broadcasts, info messages (Phoenix runs a process per channel; this is the same contract).
Callbacks may be plain functions or coroutines. A plain callback runs at once, on the read path
of the message that caused it, with no task switch; a callback that returns an awaitable gets a
task, and whatever arrives meanwhile waits in the mailbox until that task has handled it.
There is no task while a channel is idle. When the channel allows it (`inline_coroutines`), a
coroutine is first run here too, and gets a task only if it suspends.

A crash sends `phx_error` for this topic only, after `terminate` (docs/wire.md, "Channel
crash"); leave and `Stop` send `phx_close`. Stopping from outside (socket closed, duplicate
join, disconnect) sends nothing. Every path ends in `_finish`, which runs exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Coroutine, Generator
from time import perf_counter
from types import CoroutineType
from typing import Any, Protocol, TypeGuard

import structlog

from gateway.channels.base import ChannelFactory, Reply, Stop
from gateway.channels.context import SocketInfo
from gateway.errors import CHANNEL_CRASH, JOIN_CRASHED, UNMATCHED_TOPIC
from gateway.observability import metrics
from gateway.observability.labels import EventClass
from gateway.protocol.messages import PHX_CLOSE, PHX_ERROR, PHX_LEAVE, Frame, Message
from gateway.protocol.serializers import Serializer
from gateway.pubsub.core import FrameCache
from gateway.runtime.parts import ConnectionParts

log = structlog.get_logger("gateway.channel")

_JOIN, _IN, _OUT, _INFO, _REFUSED, _PUSH = 0, 1, 2, 3, 4, 5
_ids = itertools.count(1)
# Tasks that finish a channel after its socket is gone: kept so they are not collected.
_orphans: set[asyncio.Task[None]] = set()

# What a step still has to await: the awaitable, what to do with its value, and what to do
# instead if it raises (None: the channel crashes).
Wait = tuple[
    Awaitable[Any], Callable[[Any], "Wait | None"] | None, Callable[[], "Wait | None"] | None
]
_JOIN_CRASHED_REPLY = Reply("error", {"reason": JOIN_CRASHED})


def _awaitable(value: Any) -> TypeGuard[Awaitable[Any]]:
    return value is not None and type(value) is not Reply and hasattr(value, "__await__")


class Owner(Protocol):
    """What a channel sees of its socket (implemented by `runtime/connection.py`)."""

    id: str
    info: SocketInfo
    parts: ConnectionParts
    serializer: Serializer

    def send(self, frame: Frame) -> None: ...

    def reply(self, join_ref: Any, ref: Any, topic: str, status: str, response: Any) -> None: ...

    def owns(self, process: ChannelProcess) -> bool: ...

    def channel_ended(self, process: ChannelProcess) -> None: ...


class ChannelProcess:
    """The runtime side of a channel; also its pub/sub subscriber on the channel's topic."""

    __slots__ = (
        "_busy",
        "_crashed",
        "_extra",
        "_finished",
        "_first",
        "_inline",
        "_stop_reason",
        "_task",
        "_waiters",
        "channel",
        "classes",
        "conn",
        "inbox",
        "intercepts",
        "join_ref",
        "joined",
        "ready",
        "sub_id",
        "topic",
    )

    def __init__(self, conn: Owner, topic: str, join_ref: Any, channel_cls: ChannelFactory):
        self.conn = conn
        self.topic = topic
        self.join_ref = join_ref
        self.sub_id = f"{conn.id}/{next(_ids)}"
        # A list, not a deque: it is almost always empty, and an empty deque costs 600 bytes.
        self.inbox: list[tuple[Any, ...]] = []
        self.intercepts = channel_cls.intercepts
        # The event class of each event pushed on this topic (`labels.classify_event`), so the
        # connection classifies a push with one lookup; made at the first push (most members of
        # a large room never push), bounded since events come from clients.
        self.classes: dict[str, EventClass] | None = None
        self.ready = False  # the join reply and after_join are done
        self.joined = False
        self.channel = channel_cls(self)
        self._inline = self.channel.inline_coroutines
        self._busy = False  # an item is being handled (inline or by the task)
        self._task: asyncio.Task[None] | None = None
        self._first: Wait | None = None
        self._stop_reason: str | None = None
        self._crashed = False
        self._finished = False
        self._waiters: list[asyncio.Future[None]] | None = None
        self._extra: list[tuple[str, _Targeted]] | None = None

    # -- fed by the connection --------------------------------------------------------------
    def start(self, join: Message, previous: ChannelProcess | None) -> None:
        self._submit((_JOIN, join, previous))

    def put(self, msg: Message, klass: EventClass) -> None:
        """A client push, with its event class (classified once, by the connection)."""
        if self._busy or self.inbox:
            self._submit((_IN, msg, klass))
        elif self._stop_reason is None and not self._finished:
            # Idle: handled now, not through the mailbox (what `_pump` does for one item).
            self._busy = True
            try:
                wait = self._handle_in(msg, klass)
                if wait is not None and self._inline:
                    wait = self._settle(wait)
            except Exception:
                self._crash()
                return
            if wait is not None:
                self._await(wait)
            elif self.inbox:
                self._pump()  # the handler queued something for this channel
            else:
                self._busy = False
                if self._stop_reason is not None and not self._finished:
                    self._run(self._finish(self._stop_reason))

    def refuse(self, msg: Message, response: Any) -> None:
        """Answer a push the connection refused, in order with the replies before it."""
        self._submit((_REFUSED, msg, response))

    def send_info(self, message: Any) -> None:
        self._submit((_INFO, message))

    def stop(self, reason: str) -> None:
        """End from outside: no frame is sent, `terminate(reason)` runs once."""
        if self._stop_reason is not None or self._finished:
            return
        self._stop_reason = reason
        task = self._task
        if task is not None:
            if self._first is None:
                task.cancel()  # interrupt what it awaits; `_task_done` finishes the channel
            # Not started yet: it sees the stop first thing and discards what it would await.
        elif not self._busy:
            self._run(self._finish(reason))
        # Busy inline (stopped from inside a handler): the pump finishes after that handler.

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def idle(self) -> bool:
        """Nothing being handled and nothing waiting (a test harness settles on it)."""
        return not self._busy and not self.inbox

    async def wait_finished(self) -> None:
        if self._finished:
            return
        future = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(future)
        await future

    # -- pub/sub subscriber -----------------------------------------------------------------
    def deliver(self, topic: str, event: str, payload: Any, frames: FrameCache) -> None:
        if event in self.intercepts:
            self._submit((_OUT, event, payload))
        else:
            self.conn.send(frames.get(self.conn.serializer))

    def subscribe_extra(self, key: str) -> None:
        sub = _Targeted(self)
        if self._extra is None:
            self._extra = []
        self._extra.append((key, sub))
        self.conn.parts.pubsub.subscribe(key, sub)

    # -- frames -----------------------------------------------------------------------------
    def push(self, event: str, payload: Any) -> None:
        self.conn.send(self.conn.serializer.push(self.join_ref, self.topic, event, payload))
        metrics.MESSAGES_OUT_TALLY["push"] += 1  # `count_message_out`, inline

    def reply(self, ref: Any, status: str, response: Any) -> None:
        self.conn.reply(self.join_ref, ref, self.topic, status, response)

    def _control(self, event: str, payload: Any) -> None:
        frame = self.conn.serializer.message(
            self.join_ref, self.join_ref, self.topic, event, payload
        )
        self.conn.send(frame)

    # -- the mailbox pump -------------------------------------------------------------------
    def _submit(self, item: tuple[Any, ...]) -> None:
        if self._stop_reason is not None or self._finished:
            return
        self.inbox.append(item)
        if not self._busy:
            self._pump()

    def _pump(self) -> None:
        """Handle what is in the mailbox; hand over to a task at the first awaitable."""
        self._busy = True
        inbox = self.inbox
        while self._stop_reason is None and not self._finished:
            if not inbox:
                break
            try:
                wait = self._step(inbox.pop(0))
                if wait is not None and self._inline:
                    wait = self._settle(wait)
            except Exception:
                self._crash()
                return
            if wait is not None:
                self._await(wait)
                return
        self._busy = False
        if self._stop_reason is not None and not self._finished:
            self._run(self._finish(self._stop_reason))

    def _settle(self, wait: Wait | None) -> Wait | None:
        """Run what `wait` awaits here, on the caller's stack, while each coroutine finishes
        without suspending (an in-process store's, nearly always); what is left when one does
        suspend goes to the task, resumed where it stopped."""
        while wait is not None:
            awaitable, then, failed = wait
            if type(awaitable) is not CoroutineType:
                return wait
            if self._stop_reason is not None or self._finished:
                awaitable.close()
                return None
            try:
                yielded = awaitable.send(None)
            except StopIteration as done:
                wait = then(done.value) if then is not None else None
                continue
            except Exception:
                if failed is None:
                    raise
                wait = failed()
                continue
            return (_Resumed(awaitable, yielded), then, failed)
        return None

    def _await(self, wait: Wait) -> None:
        """A step returned something to await: a task takes over the mailbox."""
        self._first = wait
        task = asyncio.get_running_loop().create_task(self._pump_async())
        task.add_done_callback(self._task_done)
        self._task = task

    async def _pump_async(self) -> None:
        wait, self._first = self._first, None
        inbox = self.inbox
        try:
            while True:
                while wait is not None:
                    awaitable, then, failed = wait
                    if self._stop_reason is not None or self._finished:
                        if type(awaitable) is _Resumed:
                            # Started on the read path already: it ends as a cancel ends it.
                            awaitable.cancel()
                            await awaitable
                        else:
                            _discard(awaitable)
                        return
                    try:
                        value = await awaitable
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        if failed is None:
                            raise
                        wait = failed()
                    else:
                        wait = then(value) if then is not None else None
                if not inbox or self._stop_reason is not None or self._finished:
                    return
                wait = self._step(inbox.pop(0))
        except asyncio.CancelledError:
            pass  # stopped from outside: `_task_done` finishes
        except Exception:
            self._crash()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._task = None
        self._busy = False
        if self._stop_reason is not None and not self._finished:
            self._run(self._finish(self._stop_reason))
        elif self.inbox and not self._finished:
            self._pump()  # arrived after the task's last look at the mailbox

    def _run(self, ending: Coroutine[Any, Any, None] | None) -> None:
        """Let a `terminate` that awaits run to its end without holding up the caller."""
        if ending is not None:
            if self._inline:
                try:
                    yielded = ending.send(None)
                except StopIteration:
                    return
                ending = _resume(_Resumed(ending, yielded))
            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(ending)  # type: ignore[arg-type]
            _orphans.add(task)
            task.add_done_callback(_orphans.discard)

    def _crash(self) -> None:
        log.exception("channel_crashed", phase="handling", topic=self.topic, conn_id=self.conn.id)
        metrics.CHANNEL_CRASHES.inc()
        self._crashed = self.conn.owns(self)
        self._stop_reason = "crash"
        self._busy = False
        self._run(self._finish("crash"))

    # -- one item ---------------------------------------------------------------------------
    def _step(self, item: tuple[Any, ...]) -> Wait | None:
        kind = item[0]
        if kind == _IN:
            return self._handle_in(item[1], item[2])
        if kind == _REFUSED:
            self.reply(item[1].ref, "error", item[2])
            return None
        if kind == _OUT:
            out = self.channel.handle_out(item[1], item[2])
            return (out, None, None) if _awaitable(out) else None
        if kind == _PUSH:
            # A targeted message that waited its turn: still this client's, not a broadcast
            # the channel may drop, unless the channel intercepts its event.
            if item[1] not in self.intercepts:
                self.push(item[1], item[2])
                return None
            out = self.channel.handle_out(item[1], item[2])
            return (out, None, None) if _awaitable(out) else None
        if kind == _INFO:
            info = self.channel.handle_info(item[1])
            return (info, None, None) if _awaitable(info) else None
        return self._join(item[1], item[2])

    def _handle_in(self, msg: Message, klass: EventClass) -> Wait | None:
        if msg.event == PHX_LEAVE:
            self.reply(msg.ref, "ok", {})
            self._control(PHX_CLOSE, {})
            self.conn.channel_ended(self)
            self._stop_reason = "left"
            return None
        started = perf_counter()
        result = self.channel.handle_in(msg.event, msg.payload, msg.ref)
        if type(result) is not Reply and _awaitable(result):  # a Reply, mostly: no call

            def handled(value: Any) -> None:
                metrics.observe_handling(klass, perf_counter() - started)
                self._handled(msg, value)

            return (result, handled, None)
        metrics.observe_handling(klass, perf_counter() - started)
        if type(result) is Reply:  # `_handled`'s common case, inline
            self.conn.reply(self.join_ref, msg.ref, self.topic, result.status, result.response)
        elif result is not None:
            self._handled(msg, result)
        return None

    def _handled(self, msg: Message, result: Any) -> None:
        if result is None:
            return
        if type(result) is Reply:
            self.conn.reply(self.join_ref, msg.ref, self.topic, result.status, result.response)
            return
        if isinstance(result, Stop):
            if result.reply is not None:
                self.reply(msg.ref, result.reply.status, result.reply.response)
            self._control(PHX_CLOSE, {})
            self.conn.channel_ended(self)
            self._stop_reason = result.reason

    # -- join -------------------------------------------------------------------------------
    def _join(self, join: Message, previous: ChannelProcess | None) -> Wait | None:
        if previous is not None and not previous.finished:
            # Duplicate join: the old channel finishes first, as in Phoenix.
            return (previous.wait_finished(), lambda _: self._join(join, previous), None)
        try:
            reply = self.channel.join(join.payload)
        except Exception:
            reply = self._join_crashed()
        if isinstance(reply, Reply):
            return self._joined(join, previous, reply)
        return (
            reply,
            lambda value: self._joined(join, previous, value),
            lambda: self._joined(join, previous, self._join_crashed()),
        )

    def _join_crashed(self) -> Reply:
        log.exception("channel_crashed", phase="join", topic=self.topic, conn_id=self.conn.id)
        metrics.count_join("crash")
        return _JOIN_CRASHED_REPLY

    def _joined(self, join: Message, previous: ChannelProcess | None, reply: Reply) -> Wait | None:
        conn = self.conn
        if reply is not _JOIN_CRASHED_REPLY:
            metrics.count_join("ok" if reply.status == "ok" else "error")
        if reply.status != "ok":
            conn.reply(join.join_ref, join.ref, self.topic, reply.status, reply.response)
            self._close_old(previous)
            conn.channel_ended(self)
            self._refuse_pending()
            self._stop_reason = "join refused"
            self._run(self._finish("join refused"))  # not joined: no terminate, no wait
            return None
        self.joined = True
        metrics.channels_joined(1)
        pubsub = conn.parts.pubsub
        pubsub.subscribe(self.topic, self)
        # With several nodes the reply waits until the backend has the subscriptions, so a
        # broadcast another node makes after the client saw its reply reaches it (as in Phoenix).
        settling = pubsub.settling(self._keys())
        if settling is not None:
            return (settling, lambda _: self._subscribed(join, previous, reply), None)
        return self._subscribed(join, previous, reply)

    def _keys(self) -> list[str]:
        return [self.topic, *(key for key, _ in self._extra or ())]

    def _subscribed(
        self, join: Message, previous: ChannelProcess | None, reply: Reply
    ) -> Wait | None:
        self.conn.reply(join.join_ref, join.ref, self.topic, "ok", reply.response)
        self._close_old(previous)
        after = self.channel.after_join()
        if _awaitable(after):
            return (after, self._ready, None)  # type: ignore[return-value]
        self.ready = True
        return None

    def _ready(self, _: Any = None) -> None:
        self.ready = True

    def _close_old(self, previous: ChannelProcess | None) -> None:
        # The old join's phx_close goes out after the new join's reply (docs/wire.md).
        if previous is not None:
            previous._control(PHX_CLOSE, {})

    def _refuse_pending(self) -> None:
        while self.inbox:
            item = self.inbox.pop(0)
            if item[0] in (_IN, _REFUSED):
                msg: Message = item[1]
                if msg.event == PHX_LEAVE:
                    self.conn.reply(msg.join_ref, msg.ref, self.topic, "ok", {})
                else:
                    self.conn.reply(None, msg.ref, self.topic, "error", {"reason": UNMATCHED_TOPIC})

    # -- the end ----------------------------------------------------------------------------
    def _finish(self, reason: str) -> Coroutine[Any, Any, None] | None:
        """Unsubscribe, then `terminate`, then (after a crash) `phx_error`: exactly once.

        Returns what is left to await when `terminate` is a coroutine."""
        if self._finished:
            return None
        self._finished = True
        self.inbox.clear()
        pubsub = self.conn.parts.pubsub
        if self.joined:
            pubsub.unsubscribe(self.topic, self)
            metrics.channels_joined(-1)
        for key, sub in self._extra or ():
            pubsub.unsubscribe(key, sub)
        self.conn.channel_ended(self)
        if not self.joined:
            self._done()
            return None
        try:
            ending = self.channel.terminate(reason)
        except Exception:
            log.exception(
                "channel_crashed", phase="terminate", topic=self.topic, conn_id=self.conn.id
            )
            ending = None
        if _awaitable(ending):
            return self._finish_later(ending)  # type: ignore[arg-type]
        self._after_terminate()
        return None

    async def _finish_later(self, ending: Awaitable[None]) -> None:
        try:
            await ending
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception(
                "channel_crashed", phase="terminate", topic=self.topic, conn_id=self.conn.id
            )
        self._after_terminate()

    def _after_terminate(self) -> None:
        if self._crashed:
            # As in Phoenix, terminate runs in the channel before the socket reports the crash.
            self._control(PHX_ERROR, {"reason": CHANNEL_CRASH})
        self._done()

    def _done(self) -> None:
        self._finished = True
        for future in self._waiters or ():
            if not future.done():
                future.set_result(None)
        self._waiters = None
        # Nothing here calls the channel or its subscriptions again: dropping them ends the
        # reference cycles through this process, so the channel and its connection are freed
        # when the last reference goes, not by the cyclic collector (a pause that grows with
        # every closed socket it finds).
        self._extra = None
        del self.channel


def _discard(awaitable: Awaitable[Any]) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # a coroutine that never ran: closed, not left to warn


class _Targeted:
    """The channel's subscription to a key of its own (a member's inbox in a room): what
    arrives there is for this client alone, so it goes out as a push with the join_ref."""

    __slots__ = ("process", "sub_id")

    def __init__(self, process: ChannelProcess) -> None:
        self.process = process
        self.sub_id = process.sub_id

    def deliver(self, topic: str, event: str, payload: Any, frames: FrameCache) -> None:
        process = self.process  # its rules here, not in a method of it: one call less a relay
        if event in process.intercepts or not process.ready or process._busy or process.inbox:
            process._submit((_PUSH, event, payload))
        else:
            process.push(event, payload)


class _Resumed:
    """A coroutine that was started outside a task and suspended on `yielded`: awaiting this
    goes on from there (the task takes over the future it waits for)."""

    __slots__ = ("coro", "exc", "yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self.coro = coro
        self.yielded = yielded
        self.exc: BaseException | None = None

    def cancel(self) -> None:
        """Awaiting this then cancels the coroutine where it waits, as a task's cancel would
        (its cleanup runs and may await), instead of going on."""
        self.exc = asyncio.CancelledError()

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded, exc = self.coro, self.yielded, self.exc
        while True:
            try:
                if exc is not None:
                    thrown, exc = exc, None
                    yielded = coro.throw(thrown)
                try:
                    sent = yield yielded
                except GeneratorExit:
                    coro.close()
                    raise
                except BaseException as thrown_in:  # a cancel, for where the coroutine waits
                    exc = thrown_in
                    continue
                yielded = coro.send(sent)
            except StopIteration as done:
                return done.value

    def close(self) -> None:
        self.coro.close()


async def _resume(resumed: _Resumed) -> None:
    await resumed
