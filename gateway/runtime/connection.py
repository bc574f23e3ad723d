"""One client connection, whatever its transport: decodes frames, routes them, owns channels.

The transport hands it raw frames and a `Sink` to write to. Routing decisions come from the
pure `SocketState`; this class only carries them out. A malformed frame ends the connection
with close 1011, as Phoenix does, and touches nothing else.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import structlog

from gateway.channels.context import SocketInfo
from gateway.errors import CLOSE_GOING_AWAY, ClientError
from gateway.observability import metrics
from gateway.observability.labels import classify_event
from gateway.protocol.messages import PHOENIX_TOPIC, PHX_JOIN, Frame, Message
from gateway.protocol.serializers import Serializer
from gateway.protocol.socket_state import Action, SocketState
from gateway.pubsub.core import FrameCache
from gateway.runtime.channel_process import ChannelProcess
from gateway.runtime.sink import Sink

if TYPE_CHECKING:
    from gateway.runtime.parts import ConnectionParts

log = structlog.get_logger("gateway.connection")
_ids = itertools.count(1)

DISCONNECT = "disconnect"
_CLASSES_MAX = 32  # event classes remembered per channel (events are client-chosen names)


class Connection:
    """Socket state plus its channel processes."""

    __slots__ = (
        "__weakref__",
        "channels",
        "closed",
        "id",
        "info",
        "last_seen",
        "parts",
        "serializer",
        "serializer_label",
        "sink",
        "state",
        "sub_id",
    )

    def __init__(
        self,
        parts: ConnectionParts,
        sink: Sink,
        serializer: Serializer,
        info: SocketInfo,
    ) -> None:
        self.last_seen = 0.0  # monotonic time of the last frame (the idle reaper reads it)
        self.parts = parts
        self.sink = sink
        self.serializer = serializer
        self.info = info
        self.id = info.conn_id
        self.sub_id = info.conn_id
        self.state = SocketState(parts.max_channels)
        self.channels: dict[str, ChannelProcess] = {}
        self.closed = False
        self.serializer_label = "v2" if serializer.vsn.startswith("2") else "v1"

    @staticmethod
    def new_id(node: str) -> str:
        return f"{node}-{next(_ids)}"

    # -- lifecycle --------------------------------------------------------------------------
    def opened(self) -> None:
        metrics.connection_opened(self.sink.transport, self.serializer_label)  # type: ignore[arg-type]
        self.parts.hub.add(self)
        if self.info.socket_id:
            self.parts.pubsub.subscribe(self.info.socket_id, self)

    def shutdown(self, reason: str) -> None:
        """The transport ended: stop every channel without a frame (as Phoenix does when a
        transport process exits, phoenix/lib/phoenix/socket.ex)."""
        if self.closed:
            return
        self.closed = True
        if self.info.socket_id:
            self.parts.pubsub.unsubscribe(self.info.socket_id, self)
        for process in list(self.channels.values()):
            process.stop(reason)
        self.parts.hub.remove(self)
        self.parts.admission.forget(self)
        metrics.connection_closed(self.sink.transport, self.serializer_label)  # type: ignore[arg-type]

    def close(self, code: int, reason: str = "") -> None:
        """Close the transport with `code`, then stop the channels."""
        self.sink.close(code, reason)
        self.shutdown(reason or "closed")

    # -- inbound ----------------------------------------------------------------------------
    def receive_text(self, data: bytes | str) -> None:
        try:
            msg = self.serializer.decode_text(data)
        except ClientError as exc:
            self._malformed(exc)
            return
        self.handle(msg)

    def receive_binary(self, data: bytes) -> None:
        try:
            msg = self.serializer.decode_binary(data)
        except ClientError as exc:
            self._malformed(exc)
            return
        self.handle(msg)

    def _malformed(self, exc: ClientError) -> None:
        log.info("frame_rejected", conn_id=self.id, user_id=self.info.user_id, error=str(exc))
        self.close(exc.close_code, "malformed frame")

    def handle(self, msg: Message) -> None:
        if self.closed:
            return
        admission = self.parts.admission
        topic = msg.topic
        event = msg.event
        process = self.channels.get(topic)
        if process is None:
            klass = classify_event(topic, event)
        else:
            classes = process.classes
            if classes is None:
                classes = process.classes = {}
            klass = classes.get(event)  # type: ignore[assignment]
            if klass is None:
                klass = classify_event(topic, event)
                if len(classes) < _CLASSES_MAX:
                    classes[event] = klass
        metrics.MESSAGES_IN_TALLY[klass] += 1  # `count_message_in`, inline
        if (
            process is not None
            and (msg.join_ref is None or msg.join_ref == process.join_ref)
            and event != PHX_JOIN
            and topic != PHOENIX_TOPIC
        ):
            # A push on a joined channel, the common case: what `SocketState.decide` would
            # answer (DELIVER), without asking it.
            # `admit_push`, its bucket asked here: one call less on every push.
            if admission.limits_on and not admission.limiter.allow(self.info.user_id, klass):
                metrics.count_rate_limited_push(klass)
                process.refuse(msg, admission.refused(self, klass))
                return
            process.put(msg, klass)
            return
        decision = self.state.decide(msg, self.parts.router.match(msg.topic) is not None)
        action = decision.action
        if action is Action.DELIVER:
            process = self.channels[msg.topic]
            refusal = admission.admit_push(self, klass)
            if refusal is not None:
                metrics.count_rate_limited_push(klass)
                process.refuse(msg, refusal)
                return
            process.put(msg, klass)
        elif action is Action.HEARTBEAT:
            self.reply(None, msg.ref, msg.topic, "ok", {})
        elif action is Action.JOIN or action is Action.REJOIN:
            refusal = admission.admit_join(self, msg)
            if refusal is not None:
                metrics.count_join("rate_limited")
                self.reply(msg.join_ref, msg.ref, msg.topic, "error", refusal)
                return
            self._join(msg)
        elif action is Action.REPLY:
            if msg.event == "phx_join":
                metrics.count_join("unmatched" if decision.join_ref is None else "limit")
            self.reply(decision.join_ref, msg.ref, msg.topic, decision.status, decision.response)
        # Action.DROP: a stale join_ref gets nothing at all (docs/wire.md, "Frames").

    def _join(self, msg: Message) -> None:
        channel_cls = self.parts.router.match(msg.topic)
        if channel_cls is None:  # a rejoin whose route was removed cannot happen; be safe
            return
        previous = self.channels.get(msg.topic)
        if previous is not None:
            previous.stop("duplicate_join")
        process = ChannelProcess(self, msg.topic, msg.join_ref, channel_cls)
        self.channels[msg.topic] = process
        self.state.joined(msg.topic, msg.join_ref)
        process.start(msg, previous)

    def channel_ended(self, process: ChannelProcess) -> None:
        if self.channels.get(process.topic) is process:
            del self.channels[process.topic]
            self.state.remove(process.topic, process.join_ref)

    def owns(self, process: ChannelProcess) -> bool:
        return self.channels.get(process.topic) is process

    # -- outbound ---------------------------------------------------------------------------
    def send(self, frame: Frame) -> None:
        if not self.closed:
            self.sink.send(frame)

    def reply(self, join_ref: Any, ref: Any, topic: str, status: str, response: Any) -> None:
        replies = metrics.REPLIES_TALLY
        if status in replies:  # `count_reply`, inline for the statuses that are their label
            replies[status] += 1  # type: ignore[index]
        else:
            metrics.count_reply(status)
        if not self.closed:  # `send`, inline: a reply is made for nearly every message
            self.sink.send(self.serializer.reply(join_ref, ref, topic, status, response))

    # -- the socket id subscription (docs/wire.md, "Close codes": 1001) ---------------------
    def deliver(self, topic: str, event: str, payload: Any, frames: FrameCache) -> None:
        if event == DISCONNECT:
            log.info("socket_disconnected", conn_id=self.id, user_id=self.info.user_id)
            self.close(CLOSE_GOING_AWAY, "disconnected")
