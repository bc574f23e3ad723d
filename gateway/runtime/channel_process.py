"""One joined channel: its task, its inbox, and the frames its lifecycle puts on the wire.

The task runs the join, then handles the inbox in order: client pushes, intercepted
broadcasts, info messages. A crash sends `phx_error` for this topic only (reference section
3.7); leave and stop send `phx_close`. Stopping from outside (socket closed, duplicate join,
disconnect) cancels the task and runs `terminate`, sending nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from time import perf_counter
from typing import TYPE_CHECKING, Any

import structlog

from gateway.channels.base import Channel, Reply, Stop
from gateway.errors import CHANNEL_CRASH, JOIN_CRASHED, UNMATCHED_TOPIC
from gateway.observability import metrics
from gateway.observability.labels import EventClass
from gateway.protocol.messages import PHX_CLOSE, PHX_ERROR, PHX_LEAVE, Message
from gateway.pubsub.core import FrameCache
from gateway.runtime.inbox import Inbox

if TYPE_CHECKING:
    from gateway.runtime.connection import Connection

log = structlog.get_logger("gateway.channel")

_IN, _OUT, _INFO, _REFUSED = 0, 1, 2, 3
_ids = itertools.count(1)


class ChannelProcess:
    """The runtime side of a channel; also its pub/sub subscriber."""

    __slots__ = (
        "_extra_keys",
        "_stop_reason",
        "channel",
        "conn",
        "direct",
        "inbox",
        "intercepts",
        "join_ref",
        "joined",
        "ready",
        "sub_id",
        "task",
        "topic",
    )

    def __init__(self, conn: Connection, topic: str, join_ref: Any, channel_cls: type[Channel]):
        self.conn = conn
        self.topic = topic
        self.join_ref = join_ref
        self.sub_id = f"{conn.id}/{next(_ids)}"
        self.inbox = Inbox()
        self.intercepts = channel_cls.intercepts
        self.direct = channel_cls.direct
        self.ready = False
        self.channel = channel_cls(self)
        self.joined = False
        self.task: asyncio.Task[None] | None = None
        self._stop_reason: str | None = None
        self._extra_keys: list[str] | None = None

    # -- started by the connection ----------------------------------------------------------
    def start(self, join: Message, previous: ChannelProcess | None) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(join, previous))

    def put(self, msg: Message, klass: EventClass) -> None:
        """A client push, with its event class (classified once, by the connection)."""
        self.inbox.put((_IN, msg, klass))

    def refuse(self, msg: Message, response: Any) -> None:
        """Answer a push the connection refused, in order with the replies before it."""
        self.inbox.put((_REFUSED, msg, response))

    def send_info(self, message: Any) -> None:
        self.inbox.put((_INFO, message))

    def stop(self, reason: str) -> None:
        """End from outside: no frame is sent, `terminate(reason)` runs."""
        if self._stop_reason is None:
            self._stop_reason = reason
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # -- pub/sub subscriber -----------------------------------------------------------------
    def deliver(self, topic: str, event: str, payload: Any, frames: FrameCache) -> None:
        if event in self.intercepts:
            if self.ready and event in self.direct and not self.inbox:
                self.push(event, payload)
                return
            self.inbox.put((_OUT, event, payload))
        else:
            self.conn.send(frames.get(self.conn.serializer))

    def subscribe_extra(self, key: str) -> None:
        if self._extra_keys is None:
            self._extra_keys = []
        self._extra_keys.append(key)
        self.conn.services.pubsub.subscribe(key, self)

    # -- frames -----------------------------------------------------------------------------
    def push(self, event: str, payload: Any) -> None:
        self.conn.send(self.conn.serializer.push(self.join_ref, self.topic, event, payload))
        metrics.count_message_out("push")

    def reply(self, ref: Any, status: str, response: Any) -> None:
        self.conn.reply(self.join_ref, ref, self.topic, status, response)

    def _control(self, event: str, payload: Any) -> None:
        frame = self.conn.serializer.message(
            self.join_ref, self.join_ref, self.topic, event, payload
        )
        self.conn.send(frame)

    # -- the task ---------------------------------------------------------------------------
    async def _run(self, join: Message, previous: ChannelProcess | None) -> None:
        ended = "normal"
        crashed = False
        try:
            if previous is not None and previous.task is not None:
                # Duplicate join: wait for the old channel to finish, as Phoenix does.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(previous.task)
            if not await self._join(join, previous):
                return
            ended = await self._loop()
        except asyncio.CancelledError:
            ended = self._stop_reason or "shutdown"
        except Exception:
            log.exception("channel crashed", topic=self.topic, conn_id=self.conn.id)
            metrics.CHANNEL_CRASHES.inc()
            ended = "crash"
            crashed = self.conn.owns(self)
        finally:
            await self._finish(ended)
        if crashed:
            # As in Phoenix, terminate runs in the channel before the socket reports the crash.
            self._control(PHX_ERROR, {"reason": CHANNEL_CRASH})

    async def _join(self, join: Message, previous: ChannelProcess | None) -> bool:
        conn = self.conn
        try:
            reply = await self.channel.join(join.payload)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("join crashed", topic=self.topic, conn_id=conn.id)
            reply = Reply("error", {"reason": JOIN_CRASHED})
            metrics.count_join("crash")
        else:
            metrics.count_join("ok" if reply.status == "ok" else "error")
        if reply.status != "ok":
            conn.reply(join.join_ref, join.ref, self.topic, reply.status, reply.response)
            self._close_old(previous)
            conn.channel_ended(self)
            self._refuse_pending()
            return False
        self.joined = True
        metrics.CHANNELS_JOINED.inc()
        conn.services.pubsub.subscribe(self.topic, self)
        conn.reply(join.join_ref, join.ref, self.topic, "ok", reply.response)
        self._close_old(previous)
        await self.channel.after_join()
        self.ready = True
        return True

    def _close_old(self, previous: ChannelProcess | None) -> None:
        # The old join's phx_close goes out after the new join's reply (section 3.3).
        if previous is not None:
            previous._control(PHX_CLOSE, {})

    def _refuse_pending(self) -> None:
        for item in self.inbox.drain():
            if item[0] in (_IN, _REFUSED):
                msg: Message = item[1]
                if msg.event == PHX_LEAVE:
                    self.conn.reply(msg.join_ref, msg.ref, self.topic, "ok", {})
                else:
                    self.conn.reply(None, msg.ref, self.topic, "error", {"reason": UNMATCHED_TOPIC})

    async def _loop(self) -> str:
        channel = self.channel
        while True:
            item = await self.inbox.get()
            kind = item[0]
            if kind == _IN:
                msg: Message = item[1]
                if msg.event == PHX_LEAVE:
                    self.reply(msg.ref, "ok", {})
                    self._control(PHX_CLOSE, {})
                    self.conn.channel_ended(self)
                    return "left"
                started = perf_counter()
                result = await channel.handle_in(msg.event, msg.payload, msg.ref)
                metrics.observe_handling(item[2], perf_counter() - started)
                if result is None:
                    continue
                if isinstance(result, Reply):
                    self.reply(msg.ref, result.status, result.response)
                    continue
                if isinstance(result, Stop):
                    if result.reply is not None:
                        self.reply(msg.ref, result.reply.status, result.reply.response)
                    self._control(PHX_CLOSE, {})
                    self.conn.channel_ended(self)
                    return result.reason
            elif kind == _REFUSED:
                self.reply(item[1].ref, "error", item[2])
            elif kind == _OUT:
                await channel.handle_out(item[1], item[2])
            else:
                await channel.handle_info(item[1])

    async def _finish(self, reason: str) -> None:
        pubsub = self.conn.services.pubsub
        if self.joined:
            pubsub.unsubscribe(self.topic, self)
            metrics.CHANNELS_JOINED.dec()
        for key in self._extra_keys or ():
            pubsub.unsubscribe(key, self)
        self.conn.channel_ended(self)
        if self.joined:
            try:
                await self.channel.terminate(reason)
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("terminate crashed", topic=self.topic, conn_id=self.conn.id)
