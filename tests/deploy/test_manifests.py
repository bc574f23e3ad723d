"""The deploy files, parsed and checked against the gateway's own settings, probes and ports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.utils import canonicalize_name

from gateway.config import Settings, env_name, field_types, load_settings, render_reference

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
DEFAULTS = Settings()
ENV_FIELDS = {env_name(name): name for name in field_types()}
VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"gateway:{VERSION}"
LABELS = {"app.kubernetes.io/name": "gateway"}

sys.path.insert(0, str(REPO_ROOT))
from scripts import haproxy_proc, lock  # noqa: E402


def k8s_objects() -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["kind"], path
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], path
                assert doc["metadata"]["labels"] == LABELS, path
            assert doc["kind"] not in objects, f"two {doc['kind']} objects"
            objects[doc["kind"]] = doc
    return objects


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def check_env(env: dict[str, str]) -> Settings:
    """Every variable names a Settings field and appears in the reference; the values load."""
    reference = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert reference == render_reference(), "docs/configuration.md is stale"
    for name in env:
        assert name in ENV_FIELDS, f"{name} is not an option of gateway.config.Settings"
        assert f"`{name}`" in reference, f"{name} is missing from docs/configuration.md"
    return load_settings(environ=env)


def compose_env(value: str) -> str:
    """A compose value as the container sees it when the variable is not set (its default)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


# -- Kubernetes ---------------------------------------------------------------------------------


def test_k8s_has_every_object_and_kustomize_lists_them() -> None:
    objects = k8s_objects()
    assert set(objects) == {
        "ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget",
        "HorizontalPodAutoscaler", "ServiceMonitor", "Kustomization",
    }  # fmt: skip
    listed = objects["Kustomization"]["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.stem != "kustomization")


def test_deployment_probes_ports_and_settings_agree_with_the_gateway() -> None:
    objects = k8s_objects()
    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"] == LABELS == pod["metadata"]["labels"]
    [container] = pod["spec"]["containers"]
    assert container["image"] == IMAGE
    [port] = container["ports"]
    assert port == {"name": "http", "containerPort": DEFAULTS.listen.port, "protocol": "TCP"}

    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"

    # Settings: ConfigMap + Secret + the per-pod node id, all real options that load.
    sources = {s.get("configMapRef", s.get("secretRef"))["name"] for s in container["envFrom"]}
    assert sources == {
        objects["ConfigMap"]["metadata"]["name"],
        objects["Secret"]["metadata"]["name"],
    }
    env = {**objects["ConfigMap"]["data"], **objects["Secret"]["stringData"]}
    assert {e["name"] for e in container["env"]} == {"GATEWAY_NODE_ID"}
    settings = check_env({**env, "GATEWAY_NODE_ID": "gateway-abc"})
    assert settings.listen.host == "0.0.0.0" and settings.listen.port == DEFAULTS.listen.port
    assert settings.redis.redis_url.startswith("redis://") and settings.longpoll.longpoll_secret

    # Stop: preStop sleep, then SIGTERM and the drain, all inside the grace period.
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop_s = int(command[1])
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace > pre_stop_s + settings.process.drain_grace_s
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    # Non-root, as the image's USER; the command is the image's CMD.
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == int(image_user().split(":")[0])
    assert container["args"] == image_cmd()


def test_service_pdb_hpa_and_servicemonitor_point_at_the_pods() -> None:
    objects = k8s_objects()
    service = objects["Service"]
    assert service["spec"]["selector"] == LABELS
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == "http" and port["name"] == "http"
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == LABELS

    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "name": objects["Deployment"]["metadata"]["name"],
    }  # fmt: skip
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]

    monitor = objects["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"] == service["metadata"]["labels"]
    [endpoint] = monitor["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    # Without jobLabel the job is the Service name: the rules and dashboards want "gateway".
    assert "jobLabel" not in monitor and service["metadata"]["name"] == "gateway"


# -- compose ------------------------------------------------------------------------------------


def test_compose_runs_two_gateways_on_redis_behind_haproxy() -> None:
    services = compose()["services"]
    assert set(services) == {"gateway-1", "gateway-2", "haproxy", "redis", "prometheus", "grafana"}
    nodes = []
    secrets = set()
    for name in ("gateway-1", "gateway-2"):
        gw = services[name]
        assert gw["image"] == IMAGE
        assert (REPO_ROOT / "deploy" / gw["build"]["context"] / gw["build"]["dockerfile"]).is_file()
        env = {k: compose_env(str(v)) for k, v in gw["environment"].items()}
        settings = check_env(env)
        assert settings.listen.host == "0.0.0.0" and settings.listen.port == DEFAULTS.listen.port
        assert settings.redis.redis_url.split("//")[1].split(":")[0] in services
        assert gw["depends_on"]["redis"]["condition"] == "service_healthy"
        stop_s = int(gw["stop_grace_period"].removesuffix("s"))
        assert gw["stop_signal"] == "SIGTERM" and stop_s > settings.process.drain_grace_s
        nodes.append(settings.process.node_id)
        secrets.add(settings.longpoll.longpoll_secret)
    assert nodes == ["gateway-1", "gateway-2"]
    assert len(secrets) == 1 and secrets != {""}

    haproxy = services["haproxy"]
    [mount] = haproxy["volumes"]
    source, target, _ = mount.split(":")
    assert (DEPLOY / source).resolve() == DEPLOY / "haproxy" / "haproxy.cfg"
    assert target == "/usr/local/etc/haproxy/haproxy.cfg"
    servers = re.findall(r"^\s*server (\S+) (\S+):(\d+)", (DEPLOY / source).read_text(), re.M)
    assert [(n, h, int(p)) for n, h, p in servers] == [
        (n, n, DEFAULTS.listen.port) for n in ("gateway-1", "gateway-2")
    ]
    for gw in ("gateway-1", "gateway-2"):
        assert haproxy["depends_on"][gw]["condition"] == "service_healthy"
    bind = re.search(r"^frontend gateway\n\s+bind :(\d+)", (DEPLOY / source).read_text(), re.M)
    assert bind is not None and f"{bind[1]}:{bind[1]}" in haproxy["ports"]


def test_compose_prometheus_scrapes_both_gateways_with_the_alert_rules() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    mounts = dict(v.split(":")[:2] for v in prometheus["volumes"])
    config_dir = (DEPLOY / next(s for s, t in mounts.items() if t == "/etc/prometheus")).resolve()
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"] and (config_dir / "alerts.yml").is_file()
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "gateway"]
    [static] = job["static_configs"]
    assert static["targets"] == [f"gateway-{i}:{DEFAULTS.listen.port}" for i in (1, 2)]
    assert job["metrics_path"] == "/metrics"


def test_compose_grafana_is_provisioned_from_the_repository() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = {t: (DEPLOY / s).resolve() for s, t, *_ in (v.split(":") for v in grafana["volumes"])}
    assert mounts["/etc/grafana/provisioning"] == REPO_ROOT / "grafana" / "provisioning"
    provider = yaml.safe_load(
        (REPO_ROOT / "grafana/provisioning/dashboards/gateway.yaml").read_text()
    )["providers"][0]
    dashboards = mounts[provider["options"]["path"]]
    assert dashboards == REPO_ROOT / "grafana" / "dashboards"
    assert sorted(p.name for p in dashboards.glob("*.json"))
    datasource = yaml.safe_load(
        (REPO_ROOT / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    assert "9090:9090" in compose()["services"]["prometheus"]["ports"]


# -- image --------------------------------------------------------------------------------------


def image_user() -> str:
    return [arg for ins, arg in dockerfile() if ins == "USER"][-1]


def image_cmd() -> list[str]:
    [cmd] = [arg for ins, arg in dockerfile() if ins == "CMD"]
    parsed: list[str] = json.loads(cmd)  # exec form is a JSON array; shell form would not parse
    return parsed


def test_dockerfile_is_multi_stage_non_root_with_healthcheck_and_exec_cmd() -> None:
    pairs = dockerfile()
    stages = [arg for ins, arg in pairs if ins == "FROM"]
    assert len(stages) == 3 and stages[-1] == "${PYTHON_IMAGE} AS runtime"
    args = dict(arg.split("=", 1) for ins, arg in pairs if ins == "ARG")
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    user = image_user()
    assert user.split(":")[0] not in ("root", "0")
    healthcheck = next(arg for ins, arg in pairs if ins == "HEALTHCHECK")
    assert "/healthz" in healthcheck and "CMD [" in healthcheck
    assert ("STOPSIGNAL", "SIGTERM") in pairs
    assert image_cmd() == ["python", "-m", "gateway", "serve"]
    assert not any(ins == "ENTRYPOINT" for ins, _ in pairs)
    assert ("EXPOSE", str(DEFAULTS.listen.port)) in pairs
    runs = " ".join(arg for ins, arg in pairs if ins == "RUN")
    assert "npm ci" in runs and "-r deploy/requirements.lock" in runs and "--no-deps" in runs
    copies = [arg for ins, arg in pairs if ins == "COPY"]
    assert "gateway ./gateway" in copies and not any("loadtest" in arg for arg in copies)
    env = " ".join(arg for ins, arg in pairs if ins == "ENV")
    assert "GATEWAY_HOST=0.0.0.0" in env


def test_constraints_pin_every_requirement_of_pyproject_within_its_range() -> None:
    pins = lock.read_pins(lock.CONSTRAINTS_PATH)
    for req in lock.runtime_requirements() + lock.extra_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name])
    assert {"pip", "setuptools"} <= pins.keys()


def test_the_venv_is_installed_from_the_constraints() -> None:
    for name, version in lock.read_pins(lock.CONSTRAINTS_PATH).items():
        assert metadata.version(name) == version, f"{name}: run `make` to install the pins"


def test_lock_files_are_the_closure_of_pyproject_and_agree() -> None:
    for path, text in lock.render().items():
        assert path.read_text() == text, "run `.venv/bin/python scripts/lock.py --write`"
    runtime = lock.read_pins(lock.RUNTIME_LOCK_PATH)
    everything = lock.read_pins(lock.CONSTRAINTS_PATH)
    assert all(everything[name] == version for name, version in runtime.items())
    assert {"aiohttp", "msgspec", "redis", "uvloop", "prometheus-client"} <= runtime.keys()
    assert not runtime.keys() & {"pytest", "mypy", "ruff", "playwright", "hypothesis"}
    # The load tester's own dependencies stay out of the server's image.
    assert not runtime.keys() & {"hdrhistogram", "matplotlib"}
    assert "setuptools" in runtime  # the image builds the package with it (--no-build-isolation)


# -- HAProxy ------------------------------------------------------------------------------------

POLICY = re.compile(
    r"^\s*(balance|option (httpchk|redispatch)|http-check|retry-on|retries|timeout)\b"
)


def policy(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if POLICY.match(line)]


@pytest.mark.parametrize("source", ["deploy", "smoke"])
def test_haproxy_config_is_valid(source: str, tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy")
    assert haproxy, "haproxy is missing: scripts/setup-test-deps.sh installs it"
    path = DEPLOY / "haproxy" / "haproxy.cfg"
    if source == "smoke":
        path = tmp_path / "smoke.cfg"
        path.write_text(haproxy_proc.render_config(8080, {"a": 4001, "b": 4002}))
    check = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Configuration file is valid" in check.stdout + check.stderr


def test_smoke_uses_the_deployed_balancing_policy() -> None:
    deployed = policy((DEPLOY / "haproxy" / "haproxy.cfg").read_text())
    assert "balance roundrobin" in deployed and "option httpchk GET /readyz" in deployed
    assert "timeout tunnel 1h" in deployed
    assert policy(haproxy_proc.render_config(8080, {"a": 4001})) == deployed
    # A draining node closes its own sockets in batches; HAProxy must not cut them at once.
    lines = (DEPLOY / "haproxy" / "haproxy.cfg").read_text().splitlines()
    assert not [ln for ln in lines if "shutdown-sessions" in ln and not ln.strip().startswith("#")]
