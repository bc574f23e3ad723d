"""Each metric moves when its helper (or, for unlabelled metrics, its object) is used."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from gateway.observability import metrics as m


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    value = REGISTRY.get_sample_value(name, labels or {})
    assert value is not None, f"{name}{labels} is not exported"
    return value


def _each(up: Callable[[], None], down: Callable[[], None], ups: int) -> None:
    """`ups` steps up and one down: the tallied steps add up before the scrape."""
    for _ in range(ups):
        up()
    down()


CASES: list[tuple[str, Callable[[], None], str, dict[str, str], float]] = [
    (
        "connection_opened",
        lambda: m.connection_opened("websocket", "v2"),
        "gateway_socket_connections_active",
        {"transport": "websocket", "serializer": "v2"},
        1,
    ),
    (
        "connection_closed",
        lambda: m.connection_closed("longpoll", "v1"),
        "gateway_socket_connections_active",
        {"transport": "longpoll", "serializer": "v1"},
        -1,
    ),
    (
        "count_connect",
        lambda: m.count_connect("websocket", "rate_limited"),
        "gateway_socket_connects_total",
        {"transport": "websocket", "result": "rate_limited"},
        1,
    ),
    (
        "add_bytes_in",
        lambda: m.add_bytes_in("websocket", 120),
        "gateway_transport_received_bytes_total",
        {"transport": "websocket"},
        120,
    ),
    (
        "add_bytes_out",
        lambda: m.add_bytes_out("longpoll", 77),
        "gateway_transport_sent_bytes_total",
        {"transport": "longpoll"},
        77,
    ),
    (
        "count_join",
        lambda: m.count_join("unmatched"),
        "gateway_channel_joins_total",
        {"result": "unmatched"},
        1,
    ),
    (
        "channels_joined",
        lambda: _each(lambda: m.channels_joined(1), lambda: m.channels_joined(-1), 2),
        "gateway_channel_joined_active",
        {},
        1,
    ),
    ("CHANNEL_CRASHES", lambda: m.CHANNEL_CRASHES.inc(), "gateway_channel_crashes_total", {}, 1),
    (
        "count_message_in",
        lambda: m.count_message_in("signaling"),
        "gateway_message_received_total",
        {"event_class": "signaling"},
        1,
    ),
    (
        "count_message_out",
        lambda: m.count_message_out("broadcast", 25),
        "gateway_message_sent_total",
        {"kind": "broadcast"},
        25,
    ),
    (
        "observe_handling",
        lambda: m.observe_handling("echo", 0.0003),
        "gateway_message_handling_seconds_bucket",
        {"event_class": "echo", "le": "0.0005"},
        1,
    ),
    (
        "count_reply",
        lambda: m.count_reply("error"),
        "gateway_channel_replies_total",
        {"status": "error"},
        1,
    ),
    (
        "count_reply counts a message out",
        lambda: m.count_reply("ok"),
        "gateway_message_sent_total",
        {"kind": "reply"},
        1,
    ),
    (
        "count_reply folds unknown statuses",
        lambda: m.count_reply("timeout"),
        "gateway_channel_replies_total",
        {"status": "other"},
        1,
    ),
    (
        "count_rate_limited_push",
        lambda: m.count_rate_limited_push("chat"),
        "gateway_ratelimit_rejected_pushes_total",
        {"event_class": "chat"},
        1,
    ),
    (
        "observe_fanout",
        lambda: m.observe_fanout(40),
        "gateway_broadcast_fanout_subscribers_sum",
        {},
        40,
    ),
    (
        "observe_outbound_queue",
        lambda: m.observe_outbound_queue(5000),
        "gateway_socket_outbound_queue_bytes_bucket",
        {"le": "16384.0"},
        1,
    ),
    (
        "SLOW_CONSUMER_DISCONNECTS",
        lambda: m.SLOW_CONSUMER_DISCONNECTS.inc(),
        "gateway_socket_slow_consumer_disconnects_total",
        {},
        1,
    ),
    (
        "IDLE_TIMEOUTS",
        lambda: m.IDLE_TIMEOUTS.inc(),
        "gateway_socket_idle_timeouts_total",
        {},
        1,
    ),
    (
        "DRAIN_CONNECTIONS_REMAINING",
        lambda: m.DRAIN_CONNECTIONS_REMAINING.inc(3),
        "gateway_drain_connections_remaining",
        {},
        3,
    ),
    (
        "presence_entries",
        lambda: _each(lambda: m.presence_entries(1), lambda: None, 2),
        "gateway_presence_entries",
        {},
        2,
    ),
    (
        "LONGPOLL_SESSIONS",
        lambda: m.LONGPOLL_SESSIONS.inc(),
        "gateway_longpoll_sessions_active",
        {},
        1,
    ),
    (
        "REDIS_PUBLISH",
        lambda: m.REDIS_PUBLISH.observe(0.002),
        "gateway_redis_publish_seconds_count",
        {},
        1,
    ),
    (
        "REDIS_RECONNECTS",
        lambda: m.REDIS_RECONNECTS.inc(),
        "gateway_redis_reconnects_total",
        {},
        1,
    ),
    (
        "REDIS_BUFFERED",
        lambda: m.REDIS_BUFFERED.inc(4),
        "gateway_redis_buffered_messages",
        {},
        4,
    ),
    (
        "REDIS_DROPPED",
        lambda: m.REDIS_DROPPED.inc(),
        "gateway_redis_dropped_messages_total",
        {},
        1,
    ),
    (
        "count_signaling",
        lambda: m.count_signaling("ice_candidate"),
        "gateway_signaling_messages_total",
        {"event": "ice_candidate"},
        1,
    ),
    (
        "count_undeliverable",
        lambda: m.count_undeliverable("offer"),
        "gateway_signaling_undeliverable_total",
        {"event": "offer"},
        1,
    ),
    (
        "SIGNALING_GRACE_QUEUE",
        lambda: m.SIGNALING_GRACE_QUEUE.inc(6),
        "gateway_signaling_grace_queue_messages",
        {},
        6,
    ),
    ("LOOP_LAG", lambda: m.LOOP_LAG.observe(0.3), "gateway_loop_lag_seconds_sum", {}, 0.3),
    (
        "DATABASE_QUEUED",
        lambda: m.DATABASE_QUEUED.inc(3),
        "gateway_database_queued_writes",
        {},
        3,
    ),
    (
        "DATABASE_BATCH",
        lambda: m.DATABASE_BATCH.observe(0.02),
        "gateway_database_batch_seconds_sum",
        {},
        0.02,
    ),
    ("DATABASE_WRITES", lambda: m.DATABASE_WRITES.inc(5), "gateway_database_writes_total", {}, 5),
    (
        "DATABASE_DROPPED",
        lambda: m.DATABASE_DROPPED.inc(),
        "gateway_database_dropped_writes_total",
        {},
        1,
    ),
    ("DATABASE_ERRORS", lambda: m.DATABASE_ERRORS.inc(), "gateway_database_errors_total", {}, 1),
]


@pytest.mark.parametrize(
    ("action", "name", "labels", "delta"),
    [pytest.param(c[1], c[2], c[3], c[4], id=c[0]) for c in CASES],
)
def test_metric_moves_when_its_helper_is_called(
    action: Callable[[], None], name: str, labels: dict[str, str], delta: float
) -> None:
    before = _value(name, labels)
    action()
    assert _value(name, labels) - before == pytest.approx(delta)


@pytest.mark.parametrize(
    ("gauge_name", "gauge"),
    [
        ("gateway_ready", m.READY),
        ("gateway_drain_draining", m.DRAIN_DRAINING),
        ("gateway_loop_lag_last_seconds", m.LOOP_LAG_LAST),
    ],
)
def test_flag_and_last_value_gauges_are_set(gauge_name: str, gauge: m.Gauge) -> None:
    gauge.set(1)
    assert _value(gauge_name) == 1
    gauge.set(0)
    assert _value(gauge_name) == 0


def test_tcp_connections_shows_the_last_count_set() -> None:
    m.set_tcp_connections(5)
    m.set_tcp_connections(4)
    assert _value("gateway_socket_tcp_connections") == 4


def test_redis_up_is_absent_until_a_role_reports() -> None:
    # The RedisDown alert relies on nodes without Redis exporting no gateway_redis_up series.
    assert REGISTRY.get_sample_value("gateway_redis_up", {"role": "presence"}) is None
    m.set_redis_up("presence", False)
    assert _value("gateway_redis_up", {"role": "presence"}) == 0
    m.set_redis_up("presence", True)
    assert _value("gateway_redis_up", {"role": "presence"}) == 1


def test_handling_histogram_spans_50_microseconds_to_1_second() -> None:
    assert m.HANDLING_BUCKETS[0] == 0.00005
    assert m.HANDLING_BUCKETS[-1] == 1.0
    assert list(m.HANDLING_BUCKETS) == sorted(m.HANDLING_BUCKETS)


def test_build_info_names_the_version() -> None:
    import platform

    from gateway import __version__

    labels = {"version": __version__, "python": platform.python_version()}
    assert _value("gateway_build_info", labels) == 1


def test_every_gateway_metric_follows_the_naming_rule() -> None:
    names = {metric.name for metric in REGISTRY.collect() if metric.name.startswith("gateway_")}
    assert len(names) >= 30
    for name in names:
        area = name.split("_")[1]
        assert area in {
            "build",
            "ready",
            "drain",
            "socket",
            "transport",
            "longpoll",
            "channel",
            "message",
            "ratelimit",
            "broadcast",
            "presence",
            "redis",
            "signaling",
            "ice",
            "database",
            "sfu",
            "loop",
        }, name


def test_labels_are_low_cardinality() -> None:
    # Pre-created label sets are the only ones; a topic or user can never appear as a value.
    series_per_metric: dict[str, int] = {}
    for metric in REGISTRY.collect():
        if metric.name.startswith("gateway_"):
            series_per_metric[metric.name] = len(metric.samples)
    # The largest is the handling histogram: 6 classes x (14 buckets + +Inf + sum + count).
    assert max(series_per_metric.values()) <= 6 * 17


def test_render_latest_returns_the_text_format() -> None:
    m.count_message_in("heartbeat")
    body, content_type = m.render_latest()
    assert content_type.startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'gateway_message_received_total{event_class="heartbeat"}' in text
    assert "process_resident_memory_bytes" in text
    # Created timestamps are switched off: they would double the series count.
    assert "_created" not in text
