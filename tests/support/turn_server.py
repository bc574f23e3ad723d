"""A real coturn (`turnserver`) on loopback for tests, and a minimal TURN client to ask it.

coturn runs with `use-auth-secret`, as in docs/operations.md: it accepts the gateway's
time-limited credentials (gateway/ice.py) and nothing else. Everything stays on
127.0.0.1: it listens there, relays from there, and may relay to loopback peers only because
the tests' peers are the two browser pages on this machine.

`allocate` speaks just enough STUN (RFC 8489) and TURN (RFC 8656) to ask for a relay with
long-term credentials and report coturn's answer: the relayed address, or the error code.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.reporting import attach_log

MISSING_MESSAGE = (
    "turnserver was not found on PATH. The TURN tests need a real coturn: `make test` installs "
    "it (scripts/setup-test-deps.sh, Debian package coturn)."
)
REALM = "gateway.test"
SECRET = "coturn-test-secret"

_MAGIC = 0x2112A442
_BINDING = 0x0001
_ALLOCATE = 0x0003
_SUCCESS = 0x0100
_ERROR = 0x0110
_USERNAME = 0x0006
_MESSAGE_INTEGRITY = 0x0008
_ERROR_CODE = 0x0009
_REALM = 0x0014
_NONCE = 0x0015
_REQUESTED_TRANSPORT = 0x0019
_XOR_RELAYED_ADDRESS = 0x0016
_UDP = bytes([17, 0, 0, 0])


class TurnServerError(RuntimeError):
    """coturn could not be started or did not answer a STUN Binding request."""


class TurnServer:
    """One turnserver process on 127.0.0.1 with `use-auth-secret` and the given secrets."""

    def __init__(self, workdir: Path, secrets: Sequence[str] = (SECRET,)) -> None:
        found = shutil.which("turnserver")
        if found is None:
            raise TurnServerError(MISSING_MESSAGE)
        self.binary = found
        self.secrets = list(secrets)
        self.port = _free_udp_and_tcp_port()
        # Relay ports: a random window of the dynamic range, so parallel servers rarely meet
        # (coturn skips ports in use anyway).
        self.min_port = random.randrange(49152, 65000, 500)
        self.max_port = self.min_port + 499
        self.workdir = workdir
        self.log_path = workdir / "turnserver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The `turn:` URL a browser uses (UDP to coturn, relays on loopback)."""
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def command(self) -> list[str]:
        return [
            self.binary,
            "-n",  # no configuration file: every setting is here
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={self.port}",
            f"--min-port={self.min_port}",
            f"--max-port={self.max_port}",
            "--use-auth-secret",
            *(f"--static-auth-secret={secret}" for secret in self.secrets),
            f"--realm={REALM}",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            f"--log-file={self.log_path}",
            "--simple-log",  # the log file keeps its name (no date or pid added)
            "--verbose",  # every request's outcome (401s included), for the failure report
            f"--pidfile={self.workdir / 'turnserver.pid'}",
            f"--userdb={self.workdir / 'turndb'}",  # not /var/lib/turn: nothing outside the test
        ]

    def start(self, timeout: float = 10.0) -> None:
        """Start coturn and return once it answers a STUN Binding request."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TurnServerError(
                    f"turnserver exited with {self.proc.returncode}:\n{self.log()}"
                )
            if binding(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise TurnServerError(f"turnserver did not answer on port {self.port}:\n{self.log()}")

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

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _free_udp_and_tcp_port() -> int:
    """coturn listens on both UDP and TCP at its port: find one free for both."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise TurnServerError("no port free for both UDP and TCP on 127.0.0.1")


# --- a minimal STUN/TURN client -----------------------------------------------------------


def _attr(kind: int, value: bytes) -> bytes:
    padding = b"\0" * (-len(value) % 4)
    return struct.pack("!HH", kind, len(value)) + value + padding


def _message(method: int, tid: bytes, attrs: bytes, integrity_key: bytes | None = None) -> bytes:
    if integrity_key is None:
        return struct.pack("!HHI", method, len(attrs), _MAGIC) + tid + attrs
    # MESSAGE-INTEGRITY covers the message with a length that already counts it (24 bytes).
    head = struct.pack("!HHI", method, len(attrs) + 24, _MAGIC) + tid
    mac = hmac.new(integrity_key, head + attrs, hashlib.sha1).digest()
    return head + attrs + _attr(_MESSAGE_INTEGRITY, mac)


def _parse(data: bytes) -> tuple[int, dict[int, bytes]]:
    kind, length, _ = struct.unpack("!HHI", data[:8])
    attrs: dict[int, bytes] = {}
    pos = 20
    while pos + 4 <= 20 + length:
        atype, alen = struct.unpack("!HH", data[pos : pos + 4])
        attrs.setdefault(atype, data[pos + 4 : pos + 4 + alen])
        pos += 4 + alen + (-alen % 4)
    return kind, attrs


def _ask(port: int, message: bytes, timeout: float) -> tuple[int, dict[int, bytes]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(message, ("127.0.0.1", port))
        data, _ = sock.recvfrom(4096)
    return _parse(data)


def binding(port: int, timeout: float = 0.3) -> bool:
    """Whether a STUN server answers a Binding request on 127.0.0.1:port (UDP)."""
    try:
        kind, _ = _ask(port, _message(_BINDING, os.urandom(12), b""), timeout)
    except OSError:
        return False
    return kind == _BINDING | _SUCCESS


def allocate(port: int, username: str, password: str, timeout: float = 2.0) -> int | str:
    """Ask coturn for a UDP relay with these long-term credentials.

    Returns the relayed address (`ip:port`) on success, else the STUN error code (401 for
    credentials coturn refuses). Each call is a new client socket, so a new allocation.
    """
    transport = _attr(_REQUESTED_TRANSPORT, _UDP)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        # The first request has no credentials: the 401 names the realm and a nonce.
        sock.send(_message(_ALLOCATE, os.urandom(12), transport))
        kind, attrs = _parse(sock.recv(4096))
        if kind != _ALLOCATE | _ERROR or _error_code(attrs) != 401:
            raise AssertionError(f"unexpected answer to an unauthenticated Allocate: {kind:#x}")
        realm, nonce = attrs[_REALM], attrs[_NONCE]
        key = hashlib.md5(f"{username}:{realm.decode()}:{password}".encode()).digest()
        signed = (
            _attr(_USERNAME, username.encode())
            + _attr(_REALM, realm)
            + _attr(_NONCE, nonce)
            + transport
        )
        sock.send(_message(_ALLOCATE, os.urandom(12), signed, integrity_key=key))
        kind, attrs = _parse(sock.recv(4096))
    if kind == _ALLOCATE | _SUCCESS:
        return _xor_address(attrs[_XOR_RELAYED_ADDRESS])
    return _error_code(attrs)


def _error_code(attrs: dict[int, bytes]) -> int:
    value = attrs[_ERROR_CODE]
    return (value[2] & 0x7) * 100 + value[3]


def _xor_address(value: bytes) -> str:
    port = struct.unpack("!H", value[2:4])[0] ^ (_MAGIC >> 16)
    address = struct.unpack("!I", value[4:8])[0] ^ _MAGIC
    return f"{socket.inet_ntoa(struct.pack('!I', address))}:{port}"


StartTurn = Callable[..., TurnServer]


@pytest.fixture
def turn_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartTurn]:
    """Factory: `turn = turn_factory(secrets=["new", "old"])` starts a coturn; all are stopped
    at teardown and their logs shown when the test fails."""
    if shutil.which("turnserver") is None:
        pytest.fail(MISSING_MESSAGE, pytrace=False)
    started: list[TurnServer] = []

    def start(secrets: Sequence[str] = (SECRET,)) -> TurnServer:
        server = TurnServer(tmp_path / f"coturn-{len(started)}", secrets)
        started.append(server)
        attach_log(request.node, f"turnserver :{server.port} log", server.log)
        try:
            server.start()
        except TurnServerError as exc:
            pytest.fail(str(exc), pytrace=False)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def turn_server(turn_factory: StartTurn) -> TurnServer:
    """A running coturn on 127.0.0.1 whose `static-auth-secret` is `SECRET`."""
    return turn_factory()
