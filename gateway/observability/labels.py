"""The closed sets of metric label values, and the classifiers that map wire values onto them.

Labels are typed as `Literal`s so mypy rejects a value outside the set: a topic, an event name
typed by a client or a user id can never become a label and explode the series count.
"""

from __future__ import annotations

from typing import Final, Literal

Transport = Literal["websocket", "longpoll"]
Serializer = Literal["v1", "v2"]
ConnectResult = Literal["ok", "origin", "auth", "vsn", "rate_limited", "capacity", "draining"]
JoinResult = Literal["ok", "error", "crash", "unmatched", "limit", "rate_limited"]
EventClass = Literal["heartbeat", "control", "signaling", "chat", "echo", "other"]
OutKind = Literal["reply", "push", "broadcast"]
ReplyStatus = Literal["ok", "error", "other"]
SignalingEvent = Literal["offer", "answer", "ice_candidate", "chat", "ready"]
RedisRole = Literal["pubsub", "presence", "signaling"]
IceKind = Literal["stun", "turn"]

TRANSPORTS: Final[tuple[Transport, ...]] = ("websocket", "longpoll")
SERIALIZERS: Final[tuple[Serializer, ...]] = ("v1", "v2")
CONNECT_RESULTS: Final[tuple[ConnectResult, ...]] = (
    "ok",
    "origin",
    "auth",
    "vsn",
    "rate_limited",
    "capacity",
    "draining",
)
JOIN_RESULTS: Final[tuple[JoinResult, ...]] = (
    "ok",
    "error",
    "crash",
    "unmatched",
    "limit",
    "rate_limited",
)
EVENT_CLASSES: Final[tuple[EventClass, ...]] = (
    "heartbeat",
    "control",
    "signaling",
    "chat",
    "echo",
    "other",
)
OUT_KINDS: Final[tuple[OutKind, ...]] = ("reply", "push", "broadcast")
REPLY_STATUSES: Final[tuple[ReplyStatus, ...]] = ("ok", "error", "other")
SIGNALING_EVENTS: Final[tuple[SignalingEvent, ...]] = (
    "offer",
    "answer",
    "ice_candidate",
    "chat",
    "ready",
)
REDIS_ROLES: Final[tuple[RedisRole, ...]] = ("pubsub", "presence", "signaling")
ICE_KINDS: Final[tuple[IceKind, ...]] = ("stun", "turn")

# Phoenix's control events (`phx_join`, `phx_leave`, ...) all carry the `phx_` prefix.
_CONTROL_PREFIX: Final = "phx_"
_SIGNALING_EVENTS: Final[dict[str, SignalingEvent]] = {
    "offer": "offer",
    "answer": "answer",
    "ice-candidate": "ice_candidate",
    "ice_candidate": "ice_candidate",
    "ready": "ready",
}
_CHAT_EVENTS: Final = frozenset({"new_msg"})
# Room pushes limited by the signaling bucket without being relayed signaling messages: each
# `ice_servers` mints TURN credentials, which must not come faster than offers do.
_SIGNALING_CLASS_ONLY: Final = frozenset({"ice_servers"})


def classify_event(topic: str, event: str) -> EventClass:
    """Map an inbound message's topic and event to the `event_class` label.

    Control events win over the topic, so joining a room counts as control, not signaling.
    """
    if topic == "phoenix" and event == "heartbeat":
        return "heartbeat"
    if event.startswith(_CONTROL_PREFIX):
        return "control"
    if topic.startswith("echo:"):
        return "echo"
    if event in _SIGNALING_EVENTS or event in _SIGNALING_CLASS_ONLY:
        return "signaling"
    if event in _CHAT_EVENTS:
        return "chat"
    return "other"


def signaling_event(event: str) -> SignalingEvent | None:
    """Map a room event name to the `event` label of the signaling metrics, or None if foreign."""
    if event in _CHAT_EVENTS:
        return "chat"
    return _SIGNALING_EVENTS.get(event)


def reply_status(status: str) -> ReplyStatus:
    """Fold a reply's free-form status string into the three `status` label values."""
    if status == "ok":
        return "ok"
    if status == "error":
        return "error"
    return "other"
