"""A real Prometheus scrapes a real gateway; every dashboard and rule expression is evaluated.

The `prometheus` and `promtool` binaries come from Debian's `prometheus` package. The binary is
run directly on a free port with a temporary configuration and storage directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.gateway_proc import GatewayFactory
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
# What Grafana would put in place of the template variables for this one-node setup.
SUBSTITUTIONS = {"$__rate_interval": "1m", "$job": "gateway", "$instance": ".*"}
PINGS = 20
# PromQL words that look like metric names to a regex.
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` not found: install Debian's prometheus package "
            "(apt-get install -y prometheus)",
            pytrace=False,
        )
    return path


# --- expressions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    origin: str
    promql: str
    # Alerting rules compare against a threshold, so an empty answer is their normal state.
    may_be_empty: bool = False


def _substitute(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def dashboard_expressions() -> list[Expression]:
    found: list[Expression] = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                found.append(
                    Expression(f"{path.stem} / {panel['title']}", _substitute(target["expr"]))
                )
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            # label_values(selector, label) is Grafana's; the selector is the PromQL part.
            match = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["definition"])
            assert match, variable["definition"]
            found.append(
                Expression(f"{path.stem} / ${variable['name']}", _substitute(match.group(1)))
            )
    return found


def rule_expressions() -> list[Expression]:
    rules = yaml.safe_load(ALERTS.read_text())
    found: list[Expression] = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("record") or rule["alert"]
            found.append(Expression(f"rule {name}", rule["expr"], may_be_empty="alert" in rule))
    return found


def with_recorded(moved: set[str]) -> set[str]:
    """`moved` plus the recording rules computed only from moved metrics (in rule order)."""
    result = set(moved)
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule and referenced_metrics(rule["expr"]) <= result:
                result.add(rule["record"])
    return result


def referenced_metrics(promql: str) -> set[str]:
    """Metric (sample) names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', promql)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range durations
    text = re.sub(r"(?<![\w:])\d*\.?\d+(?:[eE][+-]?\d+)?", "", text)  # numbers such as 1e-9
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end() :].lstrip()[:1]
        if following != "(" and match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


# --- Prometheus -------------------------------------------------------------------------------


class Prometheus:
    """The prometheus binary on a free port with its own config and storage directory."""

    def __init__(self, workdir: Path, target_port: int) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.log_path = workdir / "prometheus.log"
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": "gateway",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    _binary("prometheus"),
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited early:\n{self.log_path.read_text()}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),  # not listening yet
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.1)
        pytest.fail(f"prometheus not ready after 20 s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET an API path; 400/422 answers (bad expression) are returned, not raised."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as resp:
                body: dict[str, Any] = json.load(resp)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        return body

    def query(self, promql: str) -> dict[str, Any]:
        return self.api("/api/v1/query", query=promql)


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[list[Prometheus]]:
    started: list[Prometheus] = []
    yield started
    for prom in started:
        prom.stop()


# --- load -------------------------------------------------------------------------------------


async def _reply(ws: aiohttp.ClientWebSocketResponse, ref: str) -> list[Any]:
    """The phx_reply to `ref`, skipping any other frame."""
    while True:
        frame = await ws.receive_json(timeout=5)
        if frame[1] == ref and frame[3] == "phx_reply":
            return list(frame)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _drive_load(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_json(["1", "1", "echo:x", "phx_join", {}])
    assert (await _reply(ws, "1"))[4]["status"] == "ok"
    for i in range(PINGS):
        ref = str(i + 2)
        await ws.send_json(["1", ref, "echo:x", "ping", {"a": 1}])
        assert (await _reply(ws, ref))[4]["status"] == "ok"
    await ws.send_json([None, "100", "phoenix", "heartbeat", {}])
    assert (await _reply(ws, "100"))[4]["status"] == "ok"
    # A topic no channel serves: an error reply and a failed join, so error series move too.
    await ws.send_json(["101", "101", "nope:1", "phx_join", {}])
    assert (await _reply(ws, "101"))[4]["status"] == "error"


def _sample_values(page: str) -> dict[str, float]:
    values = {}
    for line in page.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            values[series] = float(value)
    return values


def _moved_metric_names(before: str, after: str) -> set[str]:
    old, new = _sample_values(before), _sample_values(after)
    return {series.split("{", 1)[0] for series, v in new.items() if old.get(series) != v}


def _fetch_metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text: str = resp.read().decode()
        return text


async def _wait_for_scrapes_after(prom: Prometheus, moment: float, scrapes: int) -> None:
    """Wait until Prometheus holds `scrapes` scrapes of the gateway taken after `moment`."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        result = prom.query('timestamp(up{job="gateway"})')["data"]["result"]
        if result and float(result[0]["value"][1]) >= moment + (scrapes - 1) + 0.2:
            health = prom.query('up{job="gateway"}')["data"]["result"]
            assert health[0]["value"][1] == "1", "Prometheus cannot scrape the gateway"
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"no scrape of the gateway after the load:\n{prom.log_path.read_text()}")


async def _wait_for_recorded(prom: Prometheus, records: set[str]) -> None:
    """Wait until each recording rule has written a sample over the scraped data.

    Rules run every second, but a rule that reads another rule's output lags one evaluation
    behind it, and the first evaluations see too few samples for rate().
    """
    deadline = time.monotonic() + 20
    missing = set(records)
    while missing and time.monotonic() < deadline:
        missing = {name for name in missing if not prom.query(name)["data"]["result"]}
        if missing:
            await asyncio.sleep(0.25)
    assert not missing, f"recording rules produced nothing: {sorted(missing)}"


# --- tests ------------------------------------------------------------------------------------


async def test_prometheus_evaluates_every_dashboard_and_rule_expression(
    gateway: GatewayFactory,
    client: aiohttp.ClientSession,
    prometheus_factory: list[Prometheus],
    tmp_path: Path,
) -> None:
    port = (await gateway()).port
    prom = Prometheus(tmp_path, port)
    prometheus_factory.append(prom)
    await asyncio.to_thread(prom.start)

    before = await asyncio.to_thread(_fetch_metrics, port)
    # The socket stays open until the end, so the connections gauge reads 1 while querying.
    ws = await client.ws_connect(f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0")
    await _drive_load(ws)
    load_done = time.time()
    after = await asyncio.to_thread(_fetch_metrics, port)
    moved = with_recorded(_moved_metric_names(before, after) | {"up"})
    # The wiring this test relies on: the load must show up in these metrics.
    assert {
        "gateway_socket_connects_total",
        "gateway_channel_joins_total",
        "gateway_message_received_total",
        "gateway_message_sent_total",
        "gateway_message_handling_seconds_bucket",
        "gateway_channel_replies_total",
        "gateway_transport_received_bytes_total",
        "gateway_transport_sent_bytes_total",
    } <= moved, sorted(moved)

    await _wait_for_scrapes_after(prom, load_done, scrapes=2)
    await _wait_for_recorded(prom, {name for name in moved if ":" in name})

    expressions = dashboard_expressions() + rule_expressions()
    assert len(expressions) >= 60
    failures: list[str] = []
    checked_non_empty = 0
    for expression in expressions:
        answer = await asyncio.to_thread(prom.query, expression.promql)
        if answer.get("status") != "success":
            failures.append(f"{expression.origin}: {answer.get('error')}  <- {expression.promql}")
            continue
        names = referenced_metrics(expression.promql)
        if expression.may_be_empty or not names or not names <= moved:
            continue
        checked_non_empty += 1
        if not answer["data"]["result"]:
            failures.append(f"{expression.origin}: no series  <- {expression.promql}")
    print(f"{len(expressions)} expressions parsed, {checked_non_empty} returned series")
    assert not failures, "\n".join(failures)
    # Most expressions read metrics the load moved; make sure the check really ran on them.
    assert checked_non_empty >= 25, checked_non_empty

    # Prometheus loaded alerts.yml and evaluated every rule without error.
    groups = prom.api("/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(rule_expressions())
    unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not unhealthy, unhealthy
    recorded = prom.query("job:gateway_replies:rate5m")["data"]["result"]
    assert recorded and recorded[0]["metric"]["job"] == "gateway"
    connections = prom.query('sum(gateway_socket_connections_active{job="gateway"})')
    assert connections["data"]["result"][0]["value"][1] == "1"
    await ws.close()


def test_referenced_metrics_reads_names_not_functions_or_labels() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, instance) (rate(gateway_loop_lag_seconds_bucket"
        '{job=~"gateway", instance=~".*"}[1m]))) > 0.1 and on (job) up{job="gateway"} == 0'
    )
    assert referenced_metrics(expr) == {"gateway_loop_lag_seconds_bucket", "up"}
    assert referenced_metrics("job:gateway_replies:rate5m > 1") == {"job:gateway_replies:rate5m"}
    assert referenced_metrics("(a_total) / clamp_min(b_total, 1e-9) > 0.5") == {
        "a_total",
        "b_total",
    }


def test_recording_rules_count_as_moved_when_their_inputs_did() -> None:
    moved = with_recorded({"gateway_channel_replies_total"})
    assert {
        "job:gateway_replies:rate5m",
        "job:gateway_reply_errors:rate5m",
        "job:gateway_reply_errors:ratio_rate5m",
    } <= moved
    assert "instance:gateway_loop_lag_seconds:p99_rate5m" not in moved


def test_alert_rules_and_example_config_pass_promtool_check() -> None:
    promtool = _binary("promtool")
    for args in (
        ["check", "rules", str(ALERTS)],
        ["check", "config", str(ROOT / "deploy" / "prometheus" / "prometheus.yml")],
    ):
        done = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout + done.stderr


def test_alert_rules_fire_on_synthetic_incidents() -> None:
    done = subprocess.run(
        [_binary("promtool"), "test", "rules", str(ALERTS.with_name("alerts.test.yml"))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
