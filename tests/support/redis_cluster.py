"""A real three-primary Redis Cluster for tests: redis-server nodes plus `redis-cli --cluster create`."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer, RedisServerError
from tests.support.reporting import attach_log

MISSING_MESSAGE = (
    "redis-server and redis-cli must be on PATH: the Redis Cluster tests start a real cluster. "
    "`make test` installs them (scripts/setup-test-deps.sh, Debian package redis-server)."
)

PRIMARIES = 3
BUS_OFFSET = 10_000  # a cluster node also listens on its port + 10000 for the cluster bus
_PORT_RANGE = (20_000, 55_000)  # below the ephemeral range, and port + 10000 stays valid


class RedisClusterError(RuntimeError):
    """The cluster could not be started, created or did not reach `cluster_state:ok`."""


class ClusterNodeServer(RedisServer):
    """One redis-server with cluster mode on, its `nodes.conf` in its own directory."""

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.workdir / "nodes.conf"),
            "--cluster-node-timeout", "5000",
        ]  # fmt: skip


class LocalRedisCluster:
    """Primaries on 127.0.0.1 that form one cluster; `url` names the first, as a user would."""

    def __init__(self, workdir: Path, ports: list[int]) -> None:
        self.workdir = workdir
        self.ports = ports
        self.nodes = [ClusterNodeServer(workdir / f"node-{port}", port) for port in ports]
        self.create_output = ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout: float = 30.0) -> None:
        """Start every node, assign the slots, and return once every node says the cluster is ok."""
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RedisClusterError(MISSING_MESSAGE)
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        create = subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.create_output = create.stdout + create.stderr
        if create.returncode != 0:
            raise RedisClusterError(
                f"redis-cli --cluster create failed ({create.returncode}):\n{self.create_output}"
            )
        self.wait_ok(timeout)

    def wait_ok(self, timeout: float) -> None:
        """Wait until each node reports the whole cluster: state ok, all slots, every primary."""
        deadline = time.monotonic() + timeout
        infos: dict[int, dict[str, str]] = {}
        while time.monotonic() < deadline:
            infos = {port: cluster_info(port) for port in self.ports}
            if all(
                info.get("cluster_state") == "ok"
                and info.get("cluster_slots_ok") == "16384"
                and info.get("cluster_known_nodes") == str(PRIMARIES)
                and info.get("cluster_size") == str(PRIMARIES)
                for info in infos.values()
            ):
                return
            time.sleep(0.05)
        raise RedisClusterError(f"cluster not ok within {timeout}s: {infos}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def logs(self) -> str:
        parts = [f"--- redis-cli --cluster create\n{self.create_output}"]
        parts += [f"--- node :{node.port}\n{node.log()}" for node in self.nodes]
        return "\n".join(parts)


def cluster_info(port: int, timeout: float = 0.5) -> dict[str, str]:
    """`CLUSTER INFO` of the node on `port` as a dict; empty if it does not answer (yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"CLUSTER INFO\r\n")
            data = b""
            while b"\r\n" not in data or len(data) < _reply_length(data):
                chunk = sock.recv(65536)
                if not chunk:
                    return {}
                data += chunk
    except OSError:
        return {}
    if not data.startswith(b"$"):
        return {}  # an error reply: cluster mode off, or still loading
    body = data.split(b"\r\n", 1)[1].decode(errors="replace")
    pairs = (line.partition(":") for line in body.splitlines() if ":" in line)
    return {key: value for key, _, value in pairs}


def _reply_length(data: bytes) -> int:
    """Bytes in the complete reply that starts `data` (a bulk string, or a one-line reply)."""
    header = data.partition(b"\r\n")[0]
    if not header.startswith(b"$"):
        return len(data)
    return len(header) + 2 + int(header[1:]) + 2


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int = PRIMARIES) -> list[int]:
    """`count` free ports whose cluster bus ports (+10000) are free as well.

    Ports are released before returning, so another process could take one in between; a node
    that then fails to start fails the test loudly, as `free_port` callers do.
    """
    rng = random.SystemRandom()
    chosen: list[int] = []
    for _ in range(1000):
        port = rng.randrange(*_PORT_RANGE)
        taken = {p for c in chosen for p in (c, c + BUS_OFFSET)}
        if port in taken or port + BUS_OFFSET in taken:
            continue
        if _bindable(port) and _bindable(port + BUS_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RedisClusterError(f"no {count} free port pairs (port, port + {BUS_OFFSET}) found")


@pytest.fixture(scope="session")
def _session_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """One cluster for the whole run: forming one takes seconds, emptying it takes none."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail(MISSING_MESSAGE, pytrace=False)
    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"), cluster_ports())
    try:
        try:
            cluster.start()
        except (RedisServerError, RedisClusterError, subprocess.TimeoutExpired) as exc:
            pytest.fail(f"{exc}\n{cluster.logs()}", pytrace=False)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(
    request: pytest.FixtureRequest, _session_redis_cluster: LocalRedisCluster
) -> LocalRedisCluster:
    """A running 3-primary Redis Cluster (no replicas, no persistence), emptied for this test."""
    cluster = _session_redis_cluster
    attach_log(request.node, "redis cluster logs", cluster.logs)
    for port in cluster.ports:
        done = subprocess.run(
            ["redis-cli", "-p", str(port), "FLUSHALL"], capture_output=True, text=True, timeout=10
        )
        if done.returncode != 0 or "OK" not in done.stdout:
            pytest.fail(f"FLUSHALL on {port} failed: {done.stdout}{done.stderr}", pytrace=False)
    return cluster
