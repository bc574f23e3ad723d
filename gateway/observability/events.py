"""The names of the events the gateway logs, so code, sampling keys and docs agree on them.

A line's `event` is one of these; details go in keys (`topic`, `reason`, `code`, ...), never in
the event name, so logs can be counted by event. `tests/unit/observability/test_events.py`
checks that every name here is logged somewhere and nothing else is.
"""

from __future__ import annotations

from typing import Final

SERVER_STARTED: Final = "server_started"
SERVER_STOPPED: Final = "server_stopped"
WORKERS_STARTED: Final = "workers_started"
WORKER_EXITED: Final = "worker_exited"
WORKERS_EXITED: Final = "workers_exited"
TRUST_TOKEN_AS_USER_ID: Final = "trust_token_as_user_id"
DRAIN_STARTED: Final = "drain_started"
DRAIN_FINISHED: Final = "drain_finished"

SOCKET_CONNECTED: Final = "socket_connected"
SOCKET_REFUSED: Final = "socket_refused"
CONNECTION_CAP_LOWERED: Final = "connection_cap_lowered"
SOCKET_CLOSED: Final = "socket_closed"
SOCKET_DISCONNECTED: Final = "socket_disconnected"
HEARTBEAT_TIMEOUT: Final = "heartbeat_timeout"
SLOW_CONSUMER_DISCONNECTED: Final = "slow_consumer_disconnected"
FRAME_REJECTED: Final = "frame_rejected"
FRAME_HANDLING_FAILED: Final = "frame_handling_failed"
SOCKET_WRITE_FAILED: Final = "socket_write_failed"
SOCKET_CONNECT_FAILED: Final = "socket_connect_failed"

CHANNEL_CRASHED: Final = "channel_crashed"
ROOM_STORE_UNAVAILABLE: Final = "room_store_unavailable"
PUSH_RATE_LIMITED: Final = "push_rate_limited"

GRACE_QUEUE_EXPIRED: Final = "grace_queue_expired"
GRACE_QUEUE_EXPIRY_FAILED: Final = "grace_queue_expiry_failed"
BOOKKEEPING_DROPPED: Final = "bookkeeping_dropped"
BOOKKEEPING_WRITE_FAILED: Final = "bookkeeping_write_failed"
PRESENCE_KEEPALIVE_FAILED: Final = "presence_keepalive_failed"
PRESENCE_RETRACKED: Final = "presence_retracked"

REDIS_CONNECTED: Final = "redis_connected"
REDIS_DISCONNECTED: Final = "redis_disconnected"
REDIS_MESSAGE_DROPPED: Final = "redis_message_dropped"
LONGPOLL_FORWARD_FAILED: Final = "longpoll_forward_failed"

DATABASE_CONNECTED: Final = "database_connected"
DATABASE_UNAVAILABLE: Final = "database_unavailable"
DATABASE_WRITES_DROPPED: Final = "database_writes_dropped"
DATABASE_READ_FAILED: Final = "database_read_failed"
DATABASE_FLUSH_INCOMPLETE: Final = "database_flush_incomplete"
DATABASE_MIGRATED: Final = "database_migrated"
RETENTION_PURGED: Final = "retention_purged"
RETENTION_FAILED: Final = "retention_failed"

SFU_SESSION_CREATED: Final = "sfu_session_created"
SFU_SESSION_LOST: Final = "sfu_session_lost"
SFU_UNAVAILABLE: Final = "sfu_unavailable"
SFU_REFUSED: Final = "sfu_refused"
SFU_ROOM_NOT_DESTROYED: Final = "sfu_room_not_destroyed"

LOOP_LAG_HIGH: Final = "loop_lag_high"

ALL: Final = frozenset(
    value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str)
)
