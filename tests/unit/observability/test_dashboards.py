"""The Grafana dashboards are valid, consistent, and match their generator."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
DATASOURCE_VARIABLE = "${datasource}"
REQUIRED_DASHBOARD_FIELDS = {
    "uid": str,
    "title": str,
    "schemaVersion": int,
    "panels": list,
    "templating": dict,
    "time": dict,
    "tags": list,
    "version": int,
}
REQUIRED_PANEL_FIELDS = {
    "id": int,
    "type": str,
    "title": str,
    "gridPos": dict,
    "datasource": dict,
    "targets": list,
}


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "grafana_generate", ROOT / "grafana" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_the_four_dashboards_exist() -> None:
    assert [p.name for p in DASHBOARDS] == [
        "gateway-nodes-redis.json",
        "gateway-overview.json",
        "gateway-saturation.json",
        "gateway-signaling.json",
    ]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_schema(path: Path) -> None:
    board = _load(path)
    for field, kind in REQUIRED_DASHBOARD_FIELDS.items():
        assert isinstance(board.get(field), kind), f"{path.name}: {field}"
    assert board["schemaVersion"] >= 36  # panel-level datasource objects need 36+
    assert board["panels"], "a dashboard without panels"
    for panel in board["panels"]:
        for field, kind in REQUIRED_PANEL_FIELDS.items():
            assert isinstance(panel.get(field), kind), f"{panel.get('title')}: {field}"
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] >= 0 and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["type"] in {"timeseries", "stat"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panel_ids_are_unique(path: Path) -> None:
    ids = [panel["id"] for panel in _load(path)["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_uids_are_unique() -> None:
    uids = [_load(path)["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_and_target_uses_the_datasource_variable(path: Path) -> None:
    board = _load(path)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == DATASOURCE_VARIABLE
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_VARIABLE}
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_VARIABLE
            assert isinstance(target.get("expr"), str) and target["expr"].strip()
            assert target["refId"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_gateway_selectors_are_filtered_by_job_and_instance(path: Path) -> None:
    for panel in _load(path)["panels"]:
        for target in panel["targets"]:
            for selector in re.findall(r"\b[a-z_:]+\{[^}]*\}", target["expr"]):
                assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, selector


def test_no_panel_groups_by_a_high_cardinality_label() -> None:
    for path in DASHBOARDS:
        for panel in _load(path)["panels"]:
            for target in panel["targets"]:
                assert not re.search(r"\b(topic|user|user_id|socket_id)\b", target["expr"])


def test_committed_json_matches_the_generator() -> None:
    generator = _load_generator()
    for path in DASHBOARDS:
        assert path.read_text() == generator.render(path.name), (
            f"{path.name} is stale: run `python grafana/generate.py`"
        )


def test_provisioning_files() -> None:
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/gateway.yaml").read_text())
    assert provider["apiVersion"] == 1
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"]
    sources = yaml.safe_load(
        (ROOT / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"].startswith("http")


def test_alert_runbooks_point_at_documented_sections() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    doc = (ROOT / "docs/observability.md").read_text().lower()
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert {a["alert"] for a in alerts} >= {
        "GatewayHighErrorRatio",
        "GatewayHighP99Latency",
        "GatewayEventLoopLag",
        "GatewayRedisDown",
        "GatewayNodeDown",
        "GatewayNodeNotReady",
    }
    for alert in alerts:
        anchor = alert["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == alert["alert"].lower()
        assert f"### {alert['alert'].lower()}" in doc, f"no runbook section for {alert['alert']}"
        assert alert["labels"]["severity"] in {"warning", "critical"}


def test_every_metric_is_documented() -> None:
    from prometheus_client import REGISTRY

    import gateway.observability.metrics  # noqa: F401  (registers the metrics)

    doc = (ROOT / "docs/observability.md").read_text()
    names = {m.name for m in REGISTRY.collect() if m.name.startswith("gateway_")}
    # Counters are collected without their _total suffix.
    missing = [name for name in names if f"`{name}`" not in doc and f"`{name}_total`" not in doc]
    assert not missing, missing
