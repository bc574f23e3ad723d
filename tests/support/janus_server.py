"""A real Janus (Debian's `janus`) on loopback for tests, with a configuration of its own.

The generated config dir loads only what the SFU bridge needs: the VideoRoom plugin and the
WebSockets transport, on a free port of 127.0.0.1. ICE is restricted to the loopback interface
(`ice_enforce_list = "lo"`, no STUN, no TURN) and media ports come from a random window of the
dynamic range. The Admin API listens on another port of 127.0.0.1, for the tests to list
sessions and handles. Nothing of /etc/janus is read.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.ports import free_port, port_is_open
from tests.support.reporting import attach_log

MISSING_MESSAGE = (
    "janus was not found on PATH. The SFU tests need a real Janus: `make test` installs it "
    "(scripts/setup-test-deps.sh, Debian package janus)."
)
LIBDIR = Path("/usr/lib/x86_64-linux-gnu/janus")
# The VideoRoom's admin_key: only who knows it may create rooms (the gateway does).
ADMIN_KEY = "videoroom-test-key"
# The Admin API (its own port, on 127.0.0.1) lets tests list sessions and handles.
ADMIN_SECRET = "janus-admin-test-secret"


class JanusServerError(RuntimeError):
    """Janus could not be started or did not open its WebSocket port."""


class JanusServer:
    """One janus process with the VideoRoom plugin and the WebSockets API on 127.0.0.1."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        found = shutil.which("janus")
        if found is None:
            raise JanusServerError(MISSING_MESSAGE)
        self.binary = found
        self.port = port if port is not None else free_port()
        self.admin_port = free_port()
        self.rtp_min = random.randrange(20000, 59000, 1000)
        self.workdir = workdir
        self.log_path = workdir / "janus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def admin_url(self) -> str:
        return f"ws://127.0.0.1:{self.admin_port}/"

    def write_config(self) -> Path:
        conf = self.workdir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        plugins = sorted(
            p.name for p in (LIBDIR / "plugins").glob("*.so") if p.name != "libjanus_videoroom.so"
        )
        transports = sorted(
            p.name
            for p in (LIBDIR / "transports").glob("*.so")
            if p.name != "libjanus_websockets.so"
        )
        (conf / "janus.jcfg").write_text(
            f"""general: {{
    configs_folder = "{conf}"
    plugins_folder = "{LIBDIR / "plugins"}"
    transports_folder = "{LIBDIR / "transports"}"
    events_folder = "{LIBDIR / "events"}"
    loggers_folder = "{LIBDIR / "loggers"}"
    debug_level = 4
    admin_secret = "{ADMIN_SECRET}"
    session_timeout = 60
    server_name = "gateway-test-janus"
}}
media: {{
    rtp_port_range = "{self.rtp_min}-{self.rtp_min + 999}"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "lo"
    full_trickle = false
    ignore_mdns = true
}}
plugins: {{
    disable = "{",".join(plugins)}"
}}
transports: {{
    disable = "{",".join(transports)}"
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
events: {{
    broadcast = false
}}
"""
        )
        (conf / "janus.transport.websockets.jcfg").write_text(
            f"""general: {{
    json = "compact"
    ws = true
    ws_port = {self.port}
    ws_ip = "127.0.0.1"
    wss = false
}}
admin: {{
    admin_ws = true
    admin_ws_port = {self.admin_port}
    admin_ws_ip = "127.0.0.1"
    admin_wss = false
}}
"""
        )
        (conf / "janus.plugin.videoroom.jcfg").write_text(
            f"""general: {{
    admin_key = "{ADMIN_KEY}"
    string_ids = true
}}
"""
        )
        return conf

    def command(self, conf: Path) -> list[str]:
        return [
            self.binary,
            f"--configs-folder={conf}",
            f"--config={conf / 'janus.jcfg'}",
            f"--log-file={self.log_path}",
            "--disable-colors",
        ]

    def start(self, timeout: float = 15.0) -> None:
        """Start Janus and return once its WebSocket port accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.write_config()
        self.proc = subprocess.Popen(
            self.command(conf), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise JanusServerError(f"janus exited with {self.proc.returncode}:\n{self.log()}")
            if port_is_open(self.port) and port_is_open(self.admin_port):
                return
            time.sleep(0.05)
        self.stop()
        raise JanusServerError(f"janus did not open port {self.port}:\n{self.log()}")

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    async def handles(self) -> dict[int, list[int]]:
        """Every Janus session and its handles, as the Admin API lists them."""
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(self.admin_url, protocols=("janus-admin-protocol",)) as ws,
        ):

            async def ask(request: dict[str, Any]) -> dict[str, Any]:
                await ws.send_json({**request, "transaction": "t", "admin_secret": ADMIN_SECRET})
                reply: dict[str, Any] = await ws.receive_json(timeout=5)
                assert reply["janus"] == "success", reply
                return reply

            sessions = (await ask({"janus": "list_sessions"}))["sessions"]
            return {
                sid: (await ask({"janus": "list_handles", "session_id": sid}))["handles"]
                for sid in sessions
            }

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


StartJanus = Callable[[], JanusServer]


@pytest.fixture
def janus_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartJanus]:
    """Factory: `janus = janus_factory()` starts a Janus; all are stopped at teardown and their
    logs shown when the test fails."""
    if shutil.which("janus") is None:
        pytest.fail(MISSING_MESSAGE, pytrace=False)
    started: list[JanusServer] = []

    def start() -> JanusServer:
        server = JanusServer(tmp_path / f"janus-{len(started)}")
        started.append(server)
        attach_log(request.node, f"janus :{server.port} log", server.log)
        try:
            server.start()
        except JanusServerError as exc:
            pytest.fail(str(exc), pytrace=False)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def janus_server(janus_factory: StartJanus) -> JanusServer:
    """A running Janus on 127.0.0.1 (VideoRoom over WebSockets)."""
    return janus_factory()
