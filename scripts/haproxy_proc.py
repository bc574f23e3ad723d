"""HAProxy as a local process in front of gateway processes: config rendering, start, stop."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.ports import free_port

# The same load-balancing rules as deploy/haproxy/haproxy.cfg, with local addresses and checks
# fast enough for a smoke run (tests/deploy/test_manifests.py keeps the two in step).
CONFIG_TEMPLATE = """\
global
    maxconn 4096
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option redispatch
    retries 3
    retry-on conn-failure empty-response response-timeout 503
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout client-fin 5s
    timeout http-request 10s

frontend gateway
    bind 127.0.0.1:{port}
    default_backend gateways

backend gateways
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    http-response set-header X-Gateway-Server %s
    default-server check inter {inter_ms}ms fastinter {inter_ms}ms downinter {inter_ms}ms fall 1 rise 1
{servers}
"""


class HAProxyError(RuntimeError):
    """HAProxy rejected its configuration or did not serve every gateway in time."""


def render_config(port: int, servers: dict[str, int], inter_ms: int = 200) -> str:
    lines = "\n".join(f"    server {name} 127.0.0.1:{p}" for name, p in servers.items())
    return CONFIG_TEMPLATE.format(port=port, servers=lines, inter_ms=inter_ms)


class HAProxy:
    """One foreground `haproxy` process balancing round-robin over named gateway ports."""

    def __init__(self, workdir: Path, servers: dict[str, int], port: int | None = None) -> None:
        binary = shutil.which("haproxy")
        if binary is None:
            raise HAProxyError("haproxy is not on PATH (Debian package haproxy)")
        self.binary = binary
        self.workdir = workdir
        self.servers = servers
        self.port = port if port is not None else free_port()
        self.config_path = workdir / "haproxy.cfg"
        self.log_path = workdir / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/socket"

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def start(self, timeout: float = 10.0) -> None:
        """Check the config, start HAProxy and wait until every gateway answered through it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(self.port, self.servers))
        check = subprocess.run(
            [self.binary, "-c", "-f", str(self.config_path)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise HAProxyError(f"haproxy -c rejected the config:\n{check.stdout}{check.stderr}")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while seen != set(self.servers):
            if self.proc.poll() is not None:
                raise HAProxyError(f"haproxy exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise HAProxyError(f"only {sorted(seen)} answered through haproxy")
            server = await asyncio.to_thread(self._answering_server)
            if server:
                seen.add(server)
            else:
                await asyncio.sleep(0.05)

    def _answering_server(self) -> str:
        """Which gateway answered GET /healthz through HAProxy ("" if none did)."""
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1.0) as resp:
                server: str = resp.headers.get("X-Gateway-Server", "")
                return server
        except (urllib.error.URLError, OSError):
            return ""

    async def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
        self.proc = None
