"""Every Prometheus metric of the gateway, defined once, with typed helpers for the labelled ones.

Names follow `gateway_<area>_<name>_<unit>`: counters end in `_total`, durations in `_seconds`,
sizes in `_bytes`; gauges that count things carry no unit. Labels come only from the closed
sets in `labels.py`, never from a topic, an event typed by a client, or a user.

All labelled children are created at import so every series exists (at 0) from the first
scrape: `rate()` then sees a counter's first increment, and dashboards show 0 instead of
"no data". The helpers use those pre-bound children, which skips the lock and dict lookup that
`.labels()` costs on every call in a hot path.

Gauges carry a `multiprocess_mode` for `gateway serve --workers N` (see `exposition.py`):
`livesum` for counts that add up across workers, `livemax`/`livemin` for flags and last values.
"""

from __future__ import annotations

import platform
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Final

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics_core import Metric

from gateway import __version__
from gateway.observability.exposition import render_latest
from gateway.observability.labels import (
    CONNECT_RESULTS,
    EVENT_CLASSES,
    ICE_KINDS,
    JOIN_RESULTS,
    OUT_KINDS,
    REPLY_STATUSES,
    SERIALIZERS,
    SIGNALING_EVENTS,
    TRANSPORTS,
    ConnectResult,
    EventClass,
    IceKind,
    JoinResult,
    OutKind,
    RedisRole,
    ReplyStatus,
    Serializer,
    SignalingEvent,
    Transport,
    reply_status,
)

__all__ = [
    "BROADCAST_FANOUT",
    "BUILD_INFO",
    "BYTES_IN",
    "BYTES_OUT",
    "CHANNELS_JOINED",
    "CHANNEL_CRASHES",
    "CONNECTIONS_ACTIVE",
    "CONNECTS",
    "DATABASE_BATCH",
    "DATABASE_DROPPED",
    "DATABASE_ERRORS",
    "DATABASE_QUEUED",
    "DATABASE_WRITES",
    "DRAIN_CONNECTIONS_REMAINING",
    "DRAIN_DRAINING",
    "ICE_CREDENTIALS",
    "IDLE_TIMEOUTS",
    "JOINS",
    "LONGPOLL_SESSIONS",
    "LOOP_LAG",
    "LOOP_LAG_LAST",
    "MESSAGES_IN",
    "MESSAGES_OUT",
    "MESSAGE_HANDLING",
    "OUTBOUND_BUDGET_CUTS",
    "OUTBOUND_OWED_BYTES",
    "OUTBOUND_QUEUE_BYTES",
    "PRESENCE_ENTRIES",
    "RATELIMIT_EVICTED",
    "RATELIMIT_KEYS",
    "RATE_LIMITED_PUSHES",
    "READY",
    "REDIS_BUFFERED",
    "REDIS_DROPPED",
    "REDIS_PUBLISH",
    "REDIS_RECONNECTS",
    "REDIS_UP",
    "REPLIES",
    "SFU_HANDLES",
    "SFU_OUTCOMES",
    "SFU_REQUESTS",
    "SFU_REQUEST_SECONDS",
    "SFU_SESSIONS_LOST",
    "SIGNALING_GRACE_QUEUE",
    "SIGNALING_MESSAGES",
    "SIGNALING_UNDELIVERABLE",
    "SLOW_CONSUMER_DISCONNECTS",
    "TCP_CONNECTIONS",
    "TCP_REJECTED",
    "add_bytes_in",
    "add_bytes_out",
    "connection_closed",
    "connection_opened",
    "count_connect",
    "count_ice_credentials",
    "count_join",
    "count_message_in",
    "count_message_out",
    "count_rate_limited_push",
    "count_reply",
    "count_signaling",
    "count_undeliverable",
    "observe_fanout",
    "observe_handling",
    "observe_outbound_queue",
    "render_latest",
    "set_redis_up",
]

# 50 µs to 1 s: an echo or a relayed candidate takes tens of microseconds; above 1 s is an outage.
HANDLING_BUCKETS: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
FANOUT_BUCKETS: Final = (0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
PUBLISH_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
LOOP_LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Powers of four from 256 B to 16 MiB; 0 is its own bucket because most writes find an empty queue.
QUEUE_BYTES_BUCKETS: Final = (0, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)

# The `*_created` timestamps would double the series count and no dashboard or alert reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class _FlushFirst:
    """A collector with no series of its own: collecting it runs the flushes registered with
    `before_collect` (the hot-path tallies), so every scrape sees their sums."""

    flushes: ClassVar[list[Callable[[], None]]] = []

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        for flush in self.flushes:
            flush()
        return iter(())


def before_collect(flush: Callable[[], None]) -> None:
    """Run `flush` before every collection (a module of tallies registers itself)."""
    _FlushFirst.flushes.append(flush)


# Registered before every metric, so any collection folds the tallies in first.
REGISTRY.register(_FlushFirst())

# --- node -------------------------------------------------------------------------------------

BUILD_INFO = Gauge(
    "gateway_build_info",
    "Always 1; labels carry the gateway and Python versions.",
    ["version", "python"],
    multiprocess_mode="livemax",
)
READY = Gauge(
    "gateway_ready",
    "1 when this node accepts traffic; 0 while starting, draining or degraded (Redis lost).",
    multiprocess_mode="livemin",
)
DRAIN_DRAINING = Gauge(
    "gateway_drain_draining",
    "1 while the node is draining (closing sockets before shutdown), else 0.",
    multiprocess_mode="livemax",
)
DRAIN_CONNECTIONS_REMAINING = Gauge(
    "gateway_drain_connections_remaining",
    "Connections still open during a drain; 0 outside one.",
    multiprocess_mode="livesum",
)

# --- sockets and transports -------------------------------------------------------------------

CONNECTIONS_ACTIVE = Gauge(
    "gateway_socket_connections_active",
    "Open sockets by transport (websocket|longpoll) and serializer (v1|v2).",
    ["transport", "serializer"],
    multiprocess_mode="livesum",
)
CONNECTS = Counter(
    "gateway_socket_connects_total",
    "Socket connect attempts by transport and result "
    "(ok|origin|auth|vsn|rate_limited|capacity|draining).",
    ["transport", "result"],
)
OUTBOUND_OWED_BYTES = Gauge(
    "gateway_socket_outbound_owed_bytes",
    "Unsent bytes owed by WebSocket connections holding more than 64 KiB each (last sweep).",
    multiprocess_mode="livesum",
)
OUTBOUND_BUDGET_CUTS = Counter(
    "gateway_socket_outbound_budget_disconnects_total",
    "Connections closed (1013), largest debtors first, because all together owed more than "
    "--outbound-budget-bytes.",
)
TCP_CONNECTIONS = Gauge(
    "gateway_socket_tcp_connections",
    "Open TCP connections, including those that have not finished an HTTP request yet.",
    multiprocess_mode="livesum",
)
TCP_REJECTED = Counter(
    "gateway_socket_tcp_rejected_total",
    "TCP connections reset at accept (capacity|address_capacity) or closed because no request "
    "head arrived within the header timeout (header_timeout).",
    ["reason"],
)
BYTES_IN = Counter(
    "gateway_transport_received_bytes_total",
    "Frame payload bytes received from clients, by transport.",
    ["transport"],
)
BYTES_OUT = Counter(
    "gateway_transport_sent_bytes_total",
    "Frame payload bytes sent to clients, by transport.",
    ["transport"],
)
SLOW_CONSUMER_DISCONNECTS = Counter(
    "gateway_socket_slow_consumer_disconnects_total",
    "Sockets closed because their outbound queue passed its byte limit.",
)
IDLE_TIMEOUTS = Counter(
    "gateway_socket_idle_timeouts_total",
    "Sockets closed because no heartbeat (or any message) arrived within the idle timeout.",
)
OUTBOUND_QUEUE_BYTES = Histogram(
    "gateway_socket_outbound_queue_bytes",
    "Bytes waiting in a socket's outbound queue, sampled each time a frame is queued.",
    buckets=QUEUE_BYTES_BUCKETS,
)
LONGPOLL_SESSIONS = Gauge(
    "gateway_longpoll_sessions_active",
    "Long-poll sessions held by this node (polling or inside their reconnect window).",
    multiprocess_mode="livesum",
)

# --- channels and messages --------------------------------------------------------------------

JOINS = Counter(
    "gateway_channel_joins_total",
    "phx_join outcomes (ok|error|crash|unmatched|limit|rate_limited).",
    ["result"],
)
CHANNELS_JOINED = Gauge(
    "gateway_channel_joined_active",
    "Channels currently joined, summed over sockets (one per socket and topic).",
    multiprocess_mode="livesum",
)
CHANNEL_CRASHES = Counter(
    "gateway_channel_crashes_total",
    "Channel tasks that raised after joining (the topic got phx_error, the socket lived on).",
)
MESSAGES_IN = Counter(
    "gateway_message_received_total",
    "Messages decoded from clients, by event_class (heartbeat|control|signaling|chat|echo|other).",
    ["event_class"],
)
MESSAGES_OUT = Counter(
    "gateway_message_sent_total",
    "Messages queued to clients, by kind (reply|push|broadcast); a broadcast counts once "
    "per receiving socket.",
    ["kind"],
)
MESSAGE_HANDLING = Histogram(
    "gateway_message_handling_seconds",
    "Time from a decoded inbound message to its handling finished (reply queued or dropped), "
    "by event_class.",
    ["event_class"],
    buckets=HANDLING_BUCKETS,
)
REPLIES = Counter(
    "gateway_channel_replies_total",
    "phx_reply messages sent, by status (ok|error|other).",
    ["status"],
)
RATE_LIMITED_PUSHES = Counter(
    "gateway_ratelimit_rejected_pushes_total",
    "Inbound pushes refused by a token bucket, by event_class.",
    ["event_class"],
)
BROADCAST_FANOUT = Histogram(
    "gateway_broadcast_fanout_subscribers",
    "Local subscribers a broadcast was delivered to on this node.",
    buckets=FANOUT_BUCKETS,
)
PRESENCE_ENTRIES = Gauge(
    "gateway_presence_entries",
    "Presence metas tracked by this node (one per tracked socket and topic).",
    multiprocess_mode="livesum",
)

# --- Redis ------------------------------------------------------------------------------------

# Labelled by role and *not* pre-created: a node without Redis exports no series, so the
# RedisDown alert cannot fire on it.
RATELIMIT_KEYS = Gauge(
    "gateway_ratelimit_keys",
    "Token buckets tracked by this process (all classes); capped by --rate-limit-max-keys.",
    multiprocess_mode="livesum",
)
RATELIMIT_EVICTED = Counter(
    "gateway_ratelimit_evicted_keys_total",
    "Buckets evicted (oldest first) to admit a new key into a full table.",
)

REDIS_UP = Gauge(
    "gateway_redis_up",
    "1 while the Redis connection for a role (pubsub|presence|signaling) is healthy, else 0. "
    "Absent when Redis is not configured.",
    ["role"],
    multiprocess_mode="livemin",
)
REDIS_PUBLISH = Histogram(
    "gateway_redis_publish_seconds",
    "Latency of one PUBLISH of a broadcast envelope to Redis.",
    buckets=PUBLISH_BUCKETS,
)
REDIS_RECONNECTS = Counter(
    "gateway_redis_reconnects_total",
    "Times the Redis adapter re-established a lost connection.",
)
REDIS_BUFFERED = Gauge(
    "gateway_redis_buffered_messages",
    "Envelopes held in the adapter's bounded buffer while Redis is unreachable.",
    multiprocess_mode="livesum",
)
REDIS_DROPPED = Counter(
    "gateway_redis_dropped_messages_total",
    "Envelopes dropped because the adapter's buffer was full or a publish failed for good.",
)

# --- signaling --------------------------------------------------------------------------------

SIGNALING_MESSAGES = Counter(
    "gateway_signaling_messages_total",
    "Room messages accepted, by event (offer|answer|ice_candidate|chat|ready).",
    ["event"],
)
SIGNALING_UNDELIVERABLE = Counter(
    "gateway_signaling_undeliverable_total",
    "Directed room messages whose target had no socket and no grace queue, by event.",
    ["event"],
)
SIGNALING_GRACE_QUEUE = Gauge(
    "gateway_signaling_grace_queue_messages",
    "Messages held for members inside their reconnect grace period.",
    multiprocess_mode="livesum",
)
ICE_CREDENTIALS = Counter(
    "gateway_ice_credentials_issued_total",
    "ICE server lists handed out (room join and ice_servers push), by kind: stun (STUN only) "
    "or turn (with a TURN credential).",
    ["kind"],
)

# --- PostgreSQL history (gateway/history/) ---------------------------------------------------

DATABASE_QUEUED = Gauge(
    "gateway_database_queued_writes",
    "Session, signaling and chat writes waiting for the PostgreSQL writer (the batch in flight "
    "included).",
    multiprocess_mode="livesum",
)
DATABASE_BATCH = Histogram(
    "gateway_database_batch_seconds",
    "Time to write one batch (one transaction) to PostgreSQL, failed attempts included.",
    buckets=PUBLISH_BUCKETS,
)
DATABASE_WRITES = Counter(
    "gateway_database_writes_total",
    "Writes (joins, leaves, signaling events, chat messages) committed to PostgreSQL.",
)
DATABASE_DROPPED = Counter(
    "gateway_database_dropped_writes_total",
    "Writes dropped, oldest first, because the writer's queue was full (history lost).",
)
DATABASE_ERRORS = Counter(
    "gateway_database_errors_total",
    "Failed PostgreSQL operations: connects, batches, history reads and retention runs.",
)

# --- the SFU bridge (gateway/sfu/) -------------------------------------------------------------

SFU_HANDLES = Gauge(
    "gateway_sfu_handles",
    "Janus VideoRoom handles this node holds for its room members (publishers and subscriptions).",
    multiprocess_mode="livesum",
)
SFU_REQUESTS = Counter(
    "gateway_sfu_requests_total",
    "Requests sent to Janus, by outcome: ok, refused (Janus or the VideoRoom said no) or "
    "unavailable (unreachable, lost, or no answer in --sfu-timeout-ms).",
    ["outcome"],
)
SFU_REQUEST_SECONDS = Histogram(
    "gateway_sfu_request_seconds",
    "Time from sending a request to Janus to its answer (for a VideoRoom request, its event).",
    buckets=PUBLISH_BUCKETS,
)
SFU_SESSIONS_LOST = Counter(
    "gateway_sfu_sessions_lost_total",
    "Janus sessions lost (socket closed, Janus restarted or timed the session out); the "
    "members' media sessions ended with them.",
)

# --- event loop -------------------------------------------------------------------------------

LOOP_LAG = Histogram(
    "gateway_loop_lag_seconds",
    "How late the event loop ran a timer scheduled by the lag monitor.",
    buckets=LOOP_LAG_BUCKETS,
)
LOOP_LAG_LAST = Gauge(
    "gateway_loop_lag_last_seconds",
    "The most recent event-loop lag measurement.",
    multiprocess_mode="livemax",
)

# --- pre-bound children -----------------------------------------------------------------------

_CONNECTIONS: Final = {
    (t, s): CONNECTIONS_ACTIVE.labels(t, s) for t in TRANSPORTS for s in SERIALIZERS
}
_TCP_REJECTED: Final = {
    r: TCP_REJECTED.labels(r) for r in ("capacity", "address_capacity", "header_timeout")
}
_CONNECTS: Final = {(t, r): CONNECTS.labels(t, r) for t in TRANSPORTS for r in CONNECT_RESULTS}
_BYTES_IN: Final = {t: BYTES_IN.labels(t) for t in TRANSPORTS}
_BYTES_OUT: Final = {t: BYTES_OUT.labels(t) for t in TRANSPORTS}
_JOINS: Final = {r: JOINS.labels(r) for r in JOIN_RESULTS}
_MESSAGES_IN: Final = {c: MESSAGES_IN.labels(c) for c in EVENT_CLASSES}
_MESSAGES_OUT: Final = {k: MESSAGES_OUT.labels(k) for k in OUT_KINDS}
_MESSAGES_OUT_REPLY: Final = _MESSAGES_OUT["reply"]
_HANDLING: Final = {c: MESSAGE_HANDLING.labels(c) for c in EVENT_CLASSES}
_REPLIES: Final = {s: REPLIES.labels(s) for s in REPLY_STATUSES}
_RATE_LIMITED: Final = {c: RATE_LIMITED_PUSHES.labels(c) for c in EVENT_CLASSES}
_SIGNALING: Final = {e: SIGNALING_MESSAGES.labels(e) for e in SIGNALING_EVENTS}
_UNDELIVERABLE: Final = {e: SIGNALING_UNDELIVERABLE.labels(e) for e in SIGNALING_EVENTS}
_ICE_CREDENTIALS: Final = {k: ICE_CREDENTIALS.labels(k) for k in ICE_KINDS}
SFU_OUTCOMES: Final = {o: SFU_REQUESTS.labels(o) for o in ("ok", "refused", "unavailable")}

BUILD_INFO.labels(__version__, platform.python_version()).set(1)


# --- helpers ----------------------------------------------------------------------------------


# --- hot paths: plain-int tallies folded into the series when they are collected ------------
#
# A prometheus-client `inc()` or `observe()` takes a lock and costs about a microsecond, and the
# per-message helpers below run several times per message. They add to plain numbers instead;
# `flush_hot()` moves the sums into the real series before every collection (see `_FlushFirst`)
# and once a second in the server, which is what multiprocess mode reads.

# The per-message counts; the few call sites run for every message add to these directly
# (`MESSAGES_IN_TALLY[klass] += 1`), one call less each, and the rest call the helpers below.
MESSAGES_IN_TALLY: dict[EventClass, int] = dict.fromkeys(EVENT_CLASSES, 0)
MESSAGES_OUT_TALLY: dict[OutKind, int] = dict.fromkeys(OUT_KINDS, 0)  # replies: REPLIES_TALLY
REPLIES_TALLY: dict[ReplyStatus, int] = dict.fromkeys(REPLY_STATUSES, 0)
_REPLY_FOLD: dict[str, ReplyStatus] = {"ok": "ok", "error": "error"}
_HANDLING_BOUNDS: Final = [*HANDLING_BUCKETS, float("inf")]
# per class: one count per bucket, then the sum
_SIGNALING_T: dict[SignalingEvent, int] = dict.fromkeys(SIGNALING_EVENTS, 0)
_FANOUT_BOUNDS: Final = [*FANOUT_BUCKETS, float("inf")]
_FANOUT_T: list[float] = [0.0] * (len(_FANOUT_BOUNDS) + 1)
_HANDLING_T: dict[EventClass, list[float]] = {
    c: [0.0] * (len(_HANDLING_BOUNDS) + 1) for c in EVENT_CLASSES
}


# Per connection and per join: counts and gauge steps by series (about ten a connection would
# otherwise take a lock each), and the last value of the TCP connections gauge.
_STEPS: dict[Any, float] = {}
_TCP_OPEN: list[int | None] = [None]


def _step(child: Any, amount: float = 1.0) -> None:
    _STEPS[child] = _STEPS.get(child, 0.0) + amount


def flush_hot() -> None:
    """Fold the hot-path tallies into their Prometheus series."""
    if _STEPS:
        steps = list(_STEPS.items())
        _STEPS.clear()
        for child, amount in steps:
            if amount:
                child.inc(amount)
    tcp_open = _TCP_OPEN[0]
    if tcp_open is not None:
        _TCP_OPEN[0] = None
        TCP_CONNECTIONS.set(tcp_open)
    for c, n in MESSAGES_IN_TALLY.items():
        if n:
            MESSAGES_IN_TALLY[c] = 0
            _MESSAGES_IN[c].inc(n)
    replies = 0
    for s, n in REPLIES_TALLY.items():
        if n:
            REPLIES_TALLY[s] = 0
            _REPLIES[s].inc(n)
            replies += n
    MESSAGES_OUT_TALLY["reply"] += replies  # every reply is also a message out
    for k, n in MESSAGES_OUT_TALLY.items():
        if n:
            MESSAGES_OUT_TALLY[k] = 0
            _MESSAGES_OUT[k].inc(n)
    for e, n in _SIGNALING_T.items():
        if n:
            _SIGNALING_T[e] = 0
            _SIGNALING[e].inc(n)
    _flush_histogram(BROADCAST_FANOUT, _FANOUT_T)
    for c, counts in _HANDLING_T.items():
        _flush_histogram(_HANDLING[c], counts)


before_collect(flush_hot)


def _flush_histogram(child: Histogram, counts: list[float]) -> None:
    """Add bucket counts (then the sum, last) to a histogram and zero them."""
    if not any(counts[:-1]):
        return
    # prometheus-client keeps one (non-cumulative) value per bucket, plus the sum.
    for i, count in enumerate(counts[:-1]):
        if count:
            child._buckets[i].inc(count)
            counts[i] = 0.0
    child._sum.inc(counts[-1])
    counts[-1] = 0.0


def connection_opened(transport: Transport, serializer: Serializer) -> None:
    """A socket finished its handshake and is now open."""
    _step(_CONNECTIONS[(transport, serializer)])


def connection_closed(transport: Transport, serializer: Serializer) -> None:
    """A socket counted by `connection_opened` is gone, whatever the reason."""
    _step(_CONNECTIONS[(transport, serializer)], -1.0)


def count_connect(transport: Transport, result: ConnectResult) -> None:
    """One connect attempt ended with `result` (ok, or the reason it was refused)."""
    _step(_CONNECTS[(transport, result)])


def set_tcp_connections(count: int) -> None:
    """`count` TCP connections are open, requests finished or not."""
    _TCP_OPEN[0] = count


def count_tcp_rejected(reason: str) -> None:
    """A TCP connection was reset at accept or reaped before its first request head."""
    _TCP_REJECTED[reason].inc()


def add_bytes_in(transport: Transport, nbytes: int) -> None:
    """`nbytes` of frame payload arrived from a client."""
    _BYTES_IN[transport].inc(nbytes)


def add_bytes_out(transport: Transport, nbytes: int) -> None:
    """`nbytes` of frame payload were written to a client."""
    _BYTES_OUT[transport].inc(nbytes)


def count_join(result: JoinResult) -> None:
    """A phx_join finished with `result`; pair an `ok` with `channels_joined(1)`."""
    _step(_JOINS[result])


def channels_joined(change: int) -> None:
    """A channel was joined (1) or ended after its join (-1)."""
    _step(CHANNELS_JOINED, change)


def presence_entries(change: int) -> None:
    """This node tracked (1) or untracked (-1) a presence entry."""
    _step(PRESENCE_ENTRIES, change)


def count_message_in(event_class: EventClass) -> None:
    """One inbound message was decoded (see `labels.classify_event`)."""
    MESSAGES_IN_TALLY[event_class] += 1


def observe_handling(event_class: EventClass, seconds: float) -> None:
    """Handling one inbound message took `seconds` (use `time.perf_counter` deltas)."""
    tally = _HANDLING_T[event_class]
    tally[bisect_left(_HANDLING_BOUNDS, seconds)] += 1
    tally[-1] += seconds


def count_message_out(kind: OutKind, count: int = 1) -> None:
    """`count` outbound messages of `kind` were queued (a broadcast passes its fan-out).

    Replies are counted by `count_reply`; call this for pushes and broadcasts.
    """
    MESSAGES_OUT_TALLY[kind] += count


def count_reply(status: str) -> None:
    """A phx_reply with this status went out; unknown statuses fold into `other`.

    Also counts the reply in `MESSAGES_OUT{kind="reply"}` (when the tallies are folded), so
    reply call sites make one call, or add to `REPLIES_TALLY` themselves.
    """
    folded: ReplyStatus = _REPLY_FOLD.get(status) or reply_status(status)
    REPLIES_TALLY[folded] += 1


def count_rate_limited_push(event_class: EventClass) -> None:
    """A token bucket refused an inbound push of this class."""
    _RATE_LIMITED[event_class].inc()


def observe_fanout(subscribers: int) -> None:
    """A broadcast reached `subscribers` local sockets."""
    _FANOUT_T[bisect_left(_FANOUT_BOUNDS, subscribers)] += 1
    _FANOUT_T[-1] += subscribers


def observe_outbound_queue(queued_bytes: int) -> None:
    """A frame was queued on a socket whose outbound queue now holds `queued_bytes`."""
    OUTBOUND_QUEUE_BYTES.observe(queued_bytes)


def set_redis_up(role: RedisRole, up: bool) -> None:
    """Record the health of the Redis connection used for `role`."""
    REDIS_UP.labels(role).set(1 if up else 0)


def count_signaling(event: SignalingEvent) -> None:
    """A room accepted a signaling or chat message (see `labels.signaling_event`)."""
    _SIGNALING_T[event] += 1


def count_undeliverable(event: SignalingEvent) -> None:
    """A directed room message found no live or grace-queued target."""
    _UNDELIVERABLE[event].inc()


def count_ice_credentials(kind: IceKind) -> None:
    """A member was handed an ICE server list: STUN only, or with a TURN credential."""
    _ICE_CREDENTIALS[kind].inc()


def _ignore(*args: object, **kwargs: object) -> None:
    return None


def disable() -> None:
    """Turn the per-event helpers into no-ops (`--no-metrics`): the series stay, frozen at start.

    Used to measure what instrumentation costs; production keeps metrics on.
    """
    module = globals()
    for name in (
        "connection_opened",
        "connection_closed",
        "count_connect",
        "add_bytes_in",
        "add_bytes_out",
        "count_join",
        "channels_joined",
        "presence_entries",
        "count_message_in",
        "observe_handling",
        "count_message_out",
        "count_reply",
        "count_rate_limited_push",
        "observe_fanout",
        "observe_outbound_queue",
        "count_signaling",
        "count_undeliverable",
        "count_ice_credentials",
    ):
        module[name] = _ignore
