"""Per-connection channel table and the decision each inbound message leads to (docs/wire.md,
"Frames").

Pure: the connection feeds every decoded message to `decide` and carries out the returned
decision. The table maps a topic to the join_ref it was joined with; at most one channel per
topic per connection.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from gateway.errors import TOO_MANY_CHANNELS, UNMATCHED_TOPIC
from gateway.protocol.messages import HEARTBEAT, PHOENIX_TOPIC, PHX_JOIN, PHX_LEAVE, Message


class Action(enum.Enum):
    HEARTBEAT = "heartbeat"  # reply ok on topic phoenix, null join_ref
    JOIN = "join"  # start a channel for the topic
    REJOIN = "rejoin"  # duplicate join: stop the old channel, join again, close the old ref
    DELIVER = "deliver"  # hand the message to the topic's channel (leave included)
    REPLY = "reply"  # answer at once with `status`/`response`, no channel involved
    DROP = "drop"  # stale join_ref: nothing at all


class Decision(msgspec.Struct, frozen=True, gc=False):
    action: Action
    join_ref: Any = None  # join_ref to put on an immediate reply
    status: str = "ok"
    response: Any = None
    old_join_ref: Any = None


HEARTBEAT_DECISION = Decision(Action.HEARTBEAT)
JOIN_DECISION = Decision(Action.JOIN)
DELIVER_DECISION = Decision(Action.DELIVER)
DROP_DECISION = Decision(Action.DROP)
UNMATCHED = Decision(Action.REPLY, None, "error", {"reason": UNMATCHED_TOPIC})


class SocketState:
    """Topic -> join_ref of the channels joined (or joining) on one connection."""

    __slots__ = ("channels", "max_channels")

    def __init__(self, max_channels: int) -> None:
        self.channels: dict[str, Any] = {}
        self.max_channels = max_channels

    def decide(self, msg: Message, routable: bool) -> Decision:
        """What to do with `msg`; `routable` says whether a channel route matches its topic."""
        topic = msg.topic
        event = msg.event
        if event == HEARTBEAT and topic == PHOENIX_TOPIC:
            return HEARTBEAT_DECISION
        current = self.channels.get(topic, _ABSENT)
        if event == PHX_JOIN:
            if current is not _ABSENT:
                return Decision(Action.REJOIN, old_join_ref=current)
            if not routable:
                return UNMATCHED
            if len(self.channels) >= self.max_channels:
                return Decision(Action.REPLY, msg.join_ref, "error", {"reason": TOO_MANY_CHANNELS})
            return JOIN_DECISION
        if current is _ABSENT:
            if event == PHX_LEAVE:
                return Decision(Action.REPLY, msg.join_ref, "ok", {})
            return UNMATCHED
        # Since 1.8.12 a null join_ref is accepted on a joined topic; anything else that differs
        # (including "" from binary frames) is stale and dropped silently (docs/wire.md, "Frames").
        if msg.join_ref is None or msg.join_ref == current:
            return DELIVER_DECISION
        return DROP_DECISION

    def joined(self, topic: str, join_ref: Any) -> None:
        self.channels[topic] = join_ref

    def remove(self, topic: str, join_ref: Any) -> bool:
        """Forget a channel if it is still the one joined with `join_ref`."""
        if topic in self.channels and self.channels[topic] == join_ref:
            del self.channels[topic]
            return True
        return False


_ABSENT = object()
