"""The gateway as a real subprocess for tests: start, wait for /healthz, stop, kill, restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.ports import free_port
from tests.support.reporting import attach_log

REPO_ROOT = Path(__file__).resolve().parents[2]


class GatewayStartError(RuntimeError):
    """The gateway process exited or did not become healthy in time."""


class GatewayProcess:
    """One ``python -m gateway serve`` process on 127.0.0.1, its output captured to a file.

    Use as ``async with GatewayProcess(log_path, args=[...], env={...}) as gw:`` or through the
    ``gateway`` fixture. ``env`` entries override the inherited environment; a value of ``None``
    removes the variable.
    """

    def __init__(
        self,
        log_path: Path,
        args: Sequence[str] = (),
        env: Mapping[str, str | None] | None = None,
        port: int | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        self.log_path = log_path
        self.args = list(args)
        self.env_overrides = dict(env or {})
        self.port = port if port is not None else free_port()
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """Socket endpoint as given to phoenix.js (it appends ``/websocket`` itself)."""
        return f"ws://127.0.0.1:{self.port}/socket"

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "gateway", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            *self.args,
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        for key, value in self.env_overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far (all runs)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def start(self) -> None:
        """Start the process and return once ``GET /healthz`` answers 200."""
        if self.proc is not None and self.proc.poll() is None:
            raise GatewayStartError(f"gateway already running on port {self.port}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- start: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=REPO_ROOT,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await self._wait_healthy()

    async def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise GatewayStartError(
                    f"gateway exited with code {code} before becoming healthy on port "
                    f"{self.port}\n--- gateway output ---\n{self.output()}"
                )
            status, last_error = await asyncio.to_thread(self._probe_health)
            if status == 200:
                return
            await asyncio.sleep(0.05)
        await self.kill()
        raise GatewayStartError(
            f"gateway did not answer 200 on {self.url}/healthz within {self.startup_timeout}s "
            f"(last: {last_error})\n--- gateway output ---\n{self.output()}"
        )

    def _probe_health(self) -> tuple[int | None, str]:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1.0) as resp:
                return resp.status, f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            return exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return None, repr(exc)

    def send_signal(self, sig: int) -> None:
        """Deliver ``sig`` without waiting (for example SIGTERM to observe a drain)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    async def wait(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit and return its exit code."""
        if self.proc is None:
            raise GatewayStartError("gateway was never started")
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway on port {self.port} still running after {timeout}s")
            await asyncio.sleep(0.02)
        return code

    async def terminate(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; return the exit code."""
        if self.proc is None:
            return None
        self.send_signal(signal.SIGTERM)
        try:
            return await self.wait(grace)
        except TimeoutError:
            return await self.kill()

    async def kill(self) -> int | None:
        """SIGKILL the process (a crash, as clients see it); return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        return await self.wait()

    async def restart(self, grace: float = 5.0) -> None:
        """Terminate the process and start a new one on the same port with the same settings."""
        await self.terminate(grace)
        await self.start()

    async def __aenter__(self) -> GatewayProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.terminate()


GatewayFactory = Callable[..., Awaitable[GatewayProcess]]


@pytest.fixture
async def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Factory: ``gw = await gateway("--flag", env={"GATEWAY_X": "1"})`` starts a gateway.

    Every gateway started is terminated at teardown; their output is shown when the test fails.
    """
    started: list[GatewayProcess] = []

    async def start(
        *args: str,
        env: Mapping[str, str | None] | None = None,
        port: int | None = None,
        startup_timeout: float = 15.0,
    ) -> GatewayProcess:
        log_path = tmp_path / f"gateway-{len(started)}.log"
        proc = GatewayProcess(log_path, args, env, port=port, startup_timeout=startup_timeout)
        started.append(proc)
        attach_log(request.node, f"gateway :{proc.port} output", proc.output)
        try:
            await proc.start()
        except GatewayStartError as exc:
            pytest.fail(str(exc), pytrace=False)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            await proc.terminate()
