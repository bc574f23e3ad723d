"""Writes the gateway's Grafana dashboards (grafana/dashboards/*.json) from one description.

Run `python grafana/generate.py` after changing a panel; a unit test fails when the committed
JSON and this file disagree. Generating keeps the boilerplate (datasource variable, grid
positions, unique ids, filters) identical on every panel, which hand-edited JSON never stays.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every gateway selector is narrowed by the job and instance variables.
SEL = 'job=~"$job", instance=~"$instance"'
RATE = "$__rate_interval"
GRID_WIDTH = 24


def rate(metric: str, matchers: str = "", by: str = "") -> str:
    """`sum [by (...)] (rate(metric{SEL, matchers}[$__rate_interval]))`."""
    extra = f", {matchers}" if matchers else ""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{SEL}{extra}}}[{RATE}]))"


def quantile(q: float, histogram: str, by: str = "", matchers: str = "") -> str:
    """The q-quantile of a histogram over the rate interval, optionally per `by` labels."""
    extra = f", {matchers}" if matchers else ""
    labels = f"le, {by}" if by else "le"
    return (
        f"histogram_quantile({q}, sum by ({labels}) "
        f"(rate({histogram}_bucket{{{SEL}{extra}}}[{RATE}])))"
    )


def ratio(numerator: str, denominator: str) -> str:
    # clamp_min keeps an idle period at 0 instead of NaN from 0/0.
    return f"({numerator}) / clamp_min({denominator}, 1e-9)"


@dataclass
class Panel:
    title: str
    targets: list[tuple[str, str]]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    description: str = ""
    stack: bool = False
    thresholds: list[tuple[float, str]] = field(default_factory=list)


def _target(expr: str, legend: str, ref: int) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": chr(ord("A") + ref),
        "range": True,
        "instant": False,
    }


def _thresholds(steps: list[tuple[float, str]]) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": "green", "value": None}]
        + [{"color": color, "value": value} for value, color in steps],
    }


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": _thresholds(panel.thresholds)}
    options: dict[str, Any]
    if panel.kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
        defaults["color"] = {"mode": "thresholds"}
    else:
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
        }
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [_target(expr, legend, i) for i, (expr, legend) in enumerate(panel.targets)],
    }


def _variables() -> list[dict[str, Any]]:
    def query_var(name: str, label: str, query: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DATASOURCE,
            "definition": query,
            "query": {"query": query, "refId": f"{name}-variable"},
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [],
            "sort": 1,
            "hide": 0,
        }

    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "options": [],
            "refresh": 1,
            "regex": "",
            "hide": 0,
        },
        query_var("job", "Job", "label_values(gateway_build_info, job)"),
        query_var(
            "instance", "Instance", 'label_values(gateway_build_info{job=~"$job"}, instance)'
        ),
    ]


def dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, Any]:
    """A complete dashboard: panels flow left to right and wrap at the grid width."""
    laid_out: list[dict[str, Any]] = []
    x = y = row_height = 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(_panel_json(panel, panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["gateway"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "type": "dashboards",
                "tags": ["gateway"],
                "asDropdown": True,
                "title": "Gateway",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {"list": _variables()},
        "panels": laid_out,
    }


def overview() -> dict[str, Any]:
    p99 = quantile(0.99, "gateway_message_handling_seconds")
    p50 = quantile(0.5, "gateway_message_handling_seconds")
    replies = "gateway_channel_replies_total"
    panels = [
        Panel(
            "Connections",
            [(f"sum(gateway_socket_connections_active{{{SEL}}})", "connections")],
            kind="stat",
            width=4,
            height=5,
        ),
        Panel(
            "Channels joined",
            [(f"sum(gateway_channel_joined_active{{{SEL}}})", "channels")],
            kind="stat",
            width=4,
            height=5,
        ),
        Panel(
            "Messages in / s",
            [(rate("gateway_message_received_total"), "in")],
            unit="ops",
            kind="stat",
            width=4,
            height=5,
        ),
        Panel(
            "Handling p99",
            [(p99, "p99")],
            unit="s",
            kind="stat",
            width=4,
            height=5,
            thresholds=[(0.01, "orange"), (0.05, "red")],
        ),
        Panel(
            "Error reply ratio",
            [(ratio(rate(replies, 'status="error"'), rate(replies)), "errors")],
            unit="percentunit",
            kind="stat",
            width=4,
            height=5,
            thresholds=[(0.01, "orange"), (0.05, "red")],
        ),
        Panel(
            "Nodes ready",
            [(f"sum(gateway_ready{{{SEL}}})", "ready")],
            kind="stat",
            width=4,
            height=5,
        ),
        Panel(
            "Connections by transport and serializer",
            [
                (
                    f"sum by (transport, serializer) (gateway_socket_connections_active{{{SEL}}})",
                    "{{transport}} {{serializer}}",
                )
            ],
            stack=True,
        ),
        Panel(
            "Connects / s by result",
            [(rate("gateway_socket_connects_total", by="result"), "{{result}}")],
            unit="ops",
            stack=True,
        ),
        Panel(
            "Joins / s by result",
            [(rate("gateway_channel_joins_total", by="result"), "{{result}}")],
            unit="ops",
            stack=True,
        ),
        Panel(
            "Messages in / s by class",
            [(rate("gateway_message_received_total", by="event_class"), "{{event_class}}")],
            unit="ops",
            stack=True,
        ),
        Panel(
            "Messages out / s by kind",
            [(rate("gateway_message_sent_total", by="kind"), "{{kind}}")],
            unit="ops",
            stack=True,
        ),
        Panel(
            "Handling latency p50 / p99",
            [(p50, "p50"), (p99, "p99")],
            unit="s",
            description="From a decoded inbound message to its reply queued.",
        ),
        Panel(
            "Handling latency p99 by class",
            [
                (
                    quantile(0.99, "gateway_message_handling_seconds", by="event_class"),
                    "{{event_class}}",
                )
            ],
            unit="s",
        ),
        Panel(
            "Errors",
            [
                (rate(replies, 'status="error"'), "error replies / s"),
                (
                    rate("gateway_channel_joins_total", 'result=~"error|crash"'),
                    "failed joins / s",
                ),
                (rate("gateway_channel_crashes_total"), "channel crashes / s"),
                (
                    rate("gateway_socket_connects_total", 'result!="ok"'),
                    "refused connects / s",
                ),
            ],
            unit="ops",
        ),
        Panel(
            "Rate limiting",
            [
                (
                    rate("gateway_ratelimit_rejected_pushes_total", by="event_class"),
                    "pushes {{event_class}}",
                ),
                (
                    rate("gateway_socket_connects_total", 'result="rate_limited"'),
                    "connects",
                ),
                (rate("gateway_channel_joins_total", 'result="rate_limited"'), "joins"),
            ],
            unit="ops",
        ),
        Panel(
            "Bytes / s by transport",
            [
                (
                    rate("gateway_transport_received_bytes_total", by="transport"),
                    "in {{transport}}",
                ),
                (rate("gateway_transport_sent_bytes_total", by="transport"), "out {{transport}}"),
            ],
            unit="Bps",
        ),
        Panel(
            "Broadcast fan-out",
            [
                (quantile(0.5, "gateway_broadcast_fanout_subscribers"), "p50"),
                (quantile(0.99, "gateway_broadcast_fanout_subscribers"), "p99"),
            ],
            description="Local subscribers each broadcast was written to.",
        ),
        Panel(
            "Presence entries and long-poll sessions",
            [
                (f"sum(gateway_presence_entries{{{SEL}}})", "presence entries"),
                (f"sum(gateway_longpoll_sessions_active{{{SEL}}})", "long-poll sessions"),
            ],
        ),
    ]
    return dashboard(
        "gateway-overview",
        "Gateway / Overview",
        "Traffic, latency, errors and rate limiting across all gateway nodes.",
        panels,
    )


def signaling() -> dict[str, Any]:
    messages = "gateway_signaling_messages_total"
    undeliverable = "gateway_signaling_undeliverable_total"
    panels = [
        Panel(
            "Offers / s",
            [(rate(messages, 'event="offer"'), "offers")],
            unit="ops",
            kind="stat",
            width=6,
            height=5,
        ),
        Panel(
            "Answers / s",
            [(rate(messages, 'event="answer"'), "answers")],
            unit="ops",
            kind="stat",
            width=6,
            height=5,
        ),
        Panel(
            "ICE candidates / s",
            [(rate(messages, 'event="ice_candidate"'), "candidates")],
            unit="ops",
            kind="stat",
            width=6,
            height=5,
        ),
        Panel(
            "Undeliverable ratio",
            [(ratio(rate(undeliverable), rate(messages)), "undeliverable")],
            unit="percentunit",
            kind="stat",
            width=6,
            height=5,
            thresholds=[(0.01, "orange"), (0.05, "red")],
        ),
        Panel(
            "Signaling messages / s by event",
            [(rate(messages, by="event"), "{{event}}")],
            unit="ops",
            stack=True,
        ),
        Panel(
            "Undeliverable / s by event",
            [(rate(undeliverable, by="event"), "{{event}}")],
            unit="ops",
            description="Directed messages whose target had neither a socket nor a grace queue.",
        ),
        Panel(
            "Grace queue depth",
            [
                (
                    f"sum by (instance) (gateway_signaling_grace_queue_messages{{{SEL}}})",
                    "{{instance}}",
                )
            ],
            description="Messages held for members inside their reconnect grace period.",
        ),
        Panel(
            "Signaling handling latency",
            [
                (
                    quantile(
                        0.5, "gateway_message_handling_seconds", matchers='event_class="signaling"'
                    ),
                    "p50",
                ),
                (
                    quantile(
                        0.99, "gateway_message_handling_seconds", matchers='event_class="signaling"'
                    ),
                    "p99",
                ),
            ],
            unit="s",
        ),
        Panel(
            "Chat messages / s",
            [(rate(messages, 'event="chat"'), "chat")],
            unit="ops",
        ),
        Panel(
            "Signaling pushes rate-limited / s",
            [
                (
                    rate(
                        "gateway_ratelimit_rejected_pushes_total", 'event_class=~"signaling|chat"'
                    ),
                    "rejected",
                )
            ],
            unit="ops",
        ),
    ]
    return dashboard(
        "gateway-signaling",
        "Gateway / Signaling",
        "WebRTC signaling in rooms: offers, answers, ICE candidates, delivery and grace queues.",
        panels,
    )


def nodes_and_redis() -> dict[str, Any]:
    panels = [
        Panel(
            "Scrape up by instance",
            [(f"up{{{SEL}}}", "{{instance}}")],
            description="0 when Prometheus cannot scrape the node.",
        ),
        Panel(
            "Ready by instance",
            [(f"gateway_ready{{{SEL}}}", "{{instance}}")],
            description="1 ready; 0 starting, draining or degraded.",
        ),
        Panel(
            "Connections by instance",
            [
                (
                    f"sum by (instance) (gateway_socket_connections_active{{{SEL}}})",
                    "{{instance}}",
                )
            ],
        ),
        Panel(
            "Messages in / s by instance",
            [(rate("gateway_message_received_total", by="instance"), "{{instance}}")],
            unit="ops",
        ),
        Panel(
            "Draining",
            [
                (f"gateway_drain_draining{{{SEL}}}", "draining {{instance}}"),
                (f"gateway_drain_connections_remaining{{{SEL}}}", "remaining {{instance}}"),
            ],
        ),
        Panel(
            "Redis adapter up",
            [(f"gateway_redis_up{{{SEL}}}", "{{instance}} {{role}}")],
            description="Absent on nodes without Redis.",
        ),
        Panel(
            "Redis publish latency",
            [
                (quantile(0.5, "gateway_redis_publish_seconds", by="instance"), "p50 {{instance}}"),
                (
                    quantile(0.99, "gateway_redis_publish_seconds", by="instance"),
                    "p99 {{instance}}",
                ),
            ],
            unit="s",
        ),
        Panel(
            "Redis reconnects",
            [
                (
                    "sum by (instance) "
                    f"(increase(gateway_redis_reconnects_total{{{SEL}}}[{RATE}]))",
                    "{{instance}}",
                )
            ],
        ),
        Panel(
            "Redis buffered messages",
            [(f"sum by (instance) (gateway_redis_buffered_messages{{{SEL}}})", "{{instance}}")],
        ),
        Panel(
            "Redis dropped messages / s",
            [(rate("gateway_redis_dropped_messages_total", by="instance"), "{{instance}}")],
            unit="ops",
        ),
        Panel(
            "PostgreSQL writer queue",
            [(f"sum by (instance) (gateway_database_queued_writes{{{SEL}}})", "{{instance}}")],
            description="History writes waiting for PostgreSQL; grows while the database is "
            "down or slow, up to --database-queue. 0 without --database-url.",
        ),
        Panel(
            "PostgreSQL batch latency",
            [
                (
                    quantile(0.5, "gateway_database_batch_seconds", by="instance"),
                    "p50 {{instance}}",
                ),
                (
                    quantile(0.99, "gateway_database_batch_seconds", by="instance"),
                    "p99 {{instance}}",
                ),
            ],
            unit="s",
        ),
        Panel(
            "PostgreSQL writes / s",
            [(rate("gateway_database_writes_total", by="instance"), "{{instance}}")],
            unit="ops",
        ),
        Panel(
            "PostgreSQL dropped writes and errors / s",
            [
                (
                    rate("gateway_database_dropped_writes_total", by="instance"),
                    "dropped {{instance}}",
                ),
                (rate("gateway_database_errors_total", by="instance"), "errors {{instance}}"),
            ],
            unit="ops",
            description="Dropped: history lost because the queue was full (alert "
            "GatewayDatabaseDroppingWrites). Errors: failed connects, batches, reads.",
        ),
        Panel(
            "Long-poll sessions by instance",
            [(f"sum by (instance) (gateway_longpoll_sessions_active{{{SEL}}})", "{{instance}}")],
        ),
        Panel(
            "Build",
            [(f"gateway_build_info{{{SEL}}}", "{{instance}} {{version}} py{{python}}")],
        ),
    ]
    return dashboard(
        "gateway-nodes-redis",
        "Gateway / Nodes and Redis",
        "Per-node health, the Redis adapter that joins nodes into one cluster, and the "
        "PostgreSQL history writer.",
        panels,
    )


def saturation() -> dict[str, Any]:
    panels = [
        Panel(
            "Event-loop lag p99",
            [(quantile(0.99, "gateway_loop_lag_seconds", by="instance"), "{{instance}}")],
            unit="s",
            thresholds=[(0.05, "orange"), (0.1, "red")],
        ),
        Panel(
            "Event-loop lag (last)",
            [(f"max by (instance) (gateway_loop_lag_last_seconds{{{SEL}}})", "{{instance}}")],
            unit="s",
        ),
        Panel(
            "Outbound queue bytes at write",
            [
                (quantile(0.5, "gateway_socket_outbound_queue_bytes"), "p50"),
                (quantile(0.99, "gateway_socket_outbound_queue_bytes"), "p99"),
            ],
            unit="bytes",
            description="Bytes already waiting in a socket's queue when a frame is added.",
        ),
        Panel(
            "Slow consumers and idle timeouts / s",
            [
                (
                    rate("gateway_socket_slow_consumer_disconnects_total", by="instance"),
                    "slow {{instance}}",
                ),
                (rate("gateway_socket_idle_timeouts_total", by="instance"), "idle {{instance}}"),
            ],
            unit="ops",
        ),
        Panel(
            "Memory RSS",
            [(f"process_resident_memory_bytes{{{SEL}}}", "{{instance}}")],
            unit="bytes",
            description="Absent in multiprocess mode (--workers > 1).",
        ),
        Panel(
            "CPU",
            [(f"rate(process_cpu_seconds_total{{{SEL}}}[{RATE}])", "{{instance}}")],
            unit="percentunit",
            description="Cores used; 1.0 is one core, the most one event loop can use.",
        ),
        Panel(
            "Open file descriptors",
            [
                (f"process_open_fds{{{SEL}}}", "open {{instance}}"),
                (f"process_max_fds{{{SEL}}}", "max {{instance}}"),
            ],
        ),
        Panel(
            "Python GC collections / s",
            [
                (
                    rate("python_gc_collections_total", by="instance, generation"),
                    "{{instance}} gen {{generation}}",
                )
            ],
            unit="ops",
        ),
    ]
    return dashboard(
        "gateway-saturation",
        "Gateway / Saturation",
        "Event-loop lag, queues, slow consumers, memory and CPU: where a node runs out first.",
        panels,
    )


DASHBOARDS = {
    "gateway-overview.json": overview,
    "gateway-signaling.json": signaling,
    "gateway-nodes-redis.json": nodes_and_redis,
    "gateway-saturation.json": saturation,
}


def render(name: str) -> str:
    """The exact file content for dashboard `name`."""
    return json.dumps(DASHBOARDS[name](), indent=2) + "\n"


def main() -> int:
    DASHBOARD_DIR.mkdir(exist_ok=True)
    for name in DASHBOARDS:
        (DASHBOARD_DIR / name).write_text(render(name))
        print(f"wrote {DASHBOARD_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
