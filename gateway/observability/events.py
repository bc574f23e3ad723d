"""The names of the events the gateway logs, so code, sampling keys and docs agree on them.

A line's `event` is one of these; details go in keys (`topic`, `reason`, `code`, ...), never in
the event name, so logs can be counted by event.
"""

from __future__ import annotations

from typing import Final

SERVER_STARTED: Final = "server_started"
SERVER_STOPPING: Final = "server_stopping"
DRAIN_STARTED: Final = "drain_started"
DRAIN_FINISHED: Final = "drain_finished"

SOCKET_CONNECTED: Final = "socket_connected"
SOCKET_REFUSED: Final = "socket_refused"
SOCKET_CLOSED: Final = "socket_closed"
HEARTBEAT_TIMEOUT: Final = "heartbeat_timeout"
SLOW_CONSUMER_DISCONNECTED: Final = "slow_consumer_disconnected"
FRAME_REJECTED: Final = "frame_rejected"

CHANNEL_JOINED: Final = "channel_joined"
CHANNEL_JOIN_REFUSED: Final = "channel_join_refused"
CHANNEL_LEFT: Final = "channel_left"
CHANNEL_CRASHED: Final = "channel_crashed"
PUSH_RATE_LIMITED: Final = "push_rate_limited"

SIGNALING_UNDELIVERABLE: Final = "signaling_undeliverable"
GRACE_QUEUE_EXPIRED: Final = "grace_queue_expired"

REDIS_CONNECTED: Final = "redis_connected"
REDIS_DISCONNECTED: Final = "redis_disconnected"
REDIS_MESSAGE_DROPPED: Final = "redis_message_dropped"

LOOP_LAG_HIGH: Final = "loop_lag_high"

# Events that can fire once per message or per socket under load; log them through a Sampler.
HOT_EVENTS: Final = frozenset(
    {
        FRAME_REJECTED,
        PUSH_RATE_LIMITED,
        SIGNALING_UNDELIVERABLE,
        REDIS_MESSAGE_DROPPED,
        SOCKET_REFUSED,
    }
)
