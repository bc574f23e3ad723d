"""A real PostgreSQL for tests: its own `initdb` data folder, a free 127.0.0.1 port, a socket in a
temporary folder, started and stopped with `pg_ctl`. Never the server that may run on the host.

`initdb` and the server refuse to run as root, so as root they run as the `postgres` user (which
Debian's `postgresql` package creates) on a folder handed to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.ports import free_port
from tests.support.reporting import attach_log

BIN_DIR = Path("/usr/lib/postgresql/15/bin")
MISSING_MESSAGE = (
    f"{BIN_DIR}/initdb was not found. The PostgreSQL tests need a real server: `make test` "
    "installs it (scripts/setup-test-deps.sh, Debian package postgresql)."
)


class PostgresServerError(RuntimeError):
    """The server could not be initialised or started."""


def _binary(name: str) -> str:
    found = BIN_DIR / name
    if found.is_file():
        return str(found)
    on_path = shutil.which(name)
    if on_path is None:
        raise PostgresServerError(MISSING_MESSAGE)
    return on_path


class PostgresServer:
    """One PostgreSQL cluster in `workdir`, trust authentication, listening on 127.0.0.1 only."""

    def __init__(self, port: int | None = None) -> None:
        # A folder of its own under /tmp: pytest's are private to root, and a Unix socket
        # path must stay under ~100 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix="gwpg-"))
        self.port = port if port is not None else free_port()
        self.data = self.workdir / "data"
        self.socket_dir = self.workdir
        self.log_path = self.workdir / "postgres.log"
        self.user = "postgres"
        self._as_root = os.geteuid() == 0

    def _run(self, args: list[str], timeout: float = 60.0) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if self._as_root else args
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise PostgresServerError(
                f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n"
                + self.log()
            )

    def _hand_over(self, path: Path) -> None:
        if self._as_root:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        self._hand_over(self.workdir)
        self._run(
            [
                _binary("initdb"),
                "-D", str(self.data),
                "-U", self.user,
                "--auth=trust",
                "--no-sync",
                "-E", "UTF8",
                "--locale=C",
            ]
        )  # fmt: skip

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            [_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-o", options,
             "-w", "-t", "30", "start"]
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: clients are disconnected; `immediate`: as a crash)."""
        if not self.running:
            return
        self._run([_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (FileNotFoundError, PermissionError):
            return ""

    async def create_database(self) -> str:
        """A new empty database; its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.database_url(name)


def _started() -> PostgresServer:
    server = PostgresServer()
    try:
        server.init()
        server.start()
    except (PostgresServerError, subprocess.TimeoutExpired) as exc:
        server.destroy()
        pytest.fail(str(exc), pytrace=False)
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the session (initdb costs a second or two); tests take fresh databases."""
    server = _started()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """URL of a new, empty database on the session's PostgreSQL."""
    yield await postgres_server.create_database()


@pytest.fixture
def postgres_private(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, which it may stop and restart."""
    server = _started()
    attach_log(request.node, f"postgres :{server.port} log", server.log)
    try:
        yield server
    finally:
        server.destroy()
