"""A real redis-server on a free port for tests: start, PING-wait, kill, restart on its port."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.reporting import attach_log

MISSING_MESSAGE = (
    "redis-server was not found on PATH. The Redis tests need a real server: `make test` "
    "installs it (scripts/setup-test-deps.sh, Debian package redis-server)."
)


class RedisServerError(RuntimeError):
    """The redis-server process could not be started or did not answer PING."""


class RedisServer:
    """One redis-server process bound to 127.0.0.1 on a fixed port, with no persistence."""

    def __init__(self, workdir: Path, port: int | None = None, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise RedisServerError(MISSING_MESSAGE)
        self.binary = found
        self.port = port if port is not None else free_port()
        self.workdir = workdir
        self.log_path = workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and return once it answers PING."""
        if self.running:
            raise RedisServerError(f"redis-server already running on port {self.port}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with {self.proc.returncode} on port {self.port}:\n"
                    + self.log()
                )
            pid = self.answering_pid()
            if pid == self.proc.pid:
                return
            if pid is not None:
                self.kill()
                raise RedisServerError(
                    f"port {self.port} is answered by another redis-server (pid {pid})"
                )
            time.sleep(0.02)
        self.kill()
        raise RedisServerError(
            f"redis-server did not answer PING on port {self.port} within {timeout}s:\n"
            + self.log()
        )

    def ping(self, timeout: float = 0.5) -> bool:
        """Send PING over a raw connection and tell whether PONG came back."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def answering_pid(self, timeout: float = 0.5) -> int | None:
        """The ``process_id`` of the redis-server answering on the port, or None if none does.

        Checked at start so that a port taken by someone else is never mistaken for ours.
        """
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(b"INFO server\r\n")
                data = b""
                while b"\r\n" not in data or len(data) < _bulk_end(data):
                    chunk = sock.recv(65536)
                    if not chunk:
                        return None
                    data += chunk
        except OSError:
            return None
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("process_id:"):
                return int(line.partition(":")[2])
        return None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server gracefully (SIGTERM), then SIGKILL after ``timeout`` seconds."""
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

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would; connections see a reset."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, timeout: float = 10.0) -> None:
        """Stop the server if it runs and start a fresh, empty one on the same port."""
        self.stop()
        self.start(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _bulk_end(data: bytes) -> int:
    """Length of a complete RESP bulk-string reply whose header is at the start of ``data``."""
    header, _, _ = data.partition(b"\r\n")
    if not header.startswith(b"$"):
        return len(data)  # an error or other one-line reply is complete as it is
    return len(header) + 2 + int(header[1:]) + 2


@pytest.fixture
def redis_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server for this test; the handle can kill and restart it."""
    if shutil.which("redis-server") is None:
        pytest.fail(MISSING_MESSAGE, pytrace=False)
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
    except RedisServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    attach_log(request.node, f"redis-server :{server.port} log", server.log)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL (``redis://127.0.0.1:PORT/0``) of a running redis-server for this test."""
    return redis_server.url
