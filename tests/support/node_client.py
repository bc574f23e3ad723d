"""Asyncio driver of tests/js/harness.mjs: the official phoenix client under Node, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.support.reporting import attach_log

JS_DIR = Path(__file__).resolve().parents[1] / "js"
HARNESS = JS_DIR / "harness.mjs"
PHOENIX_VERSIONS = ("1.8.16", "1.8.0")
SETUP_HINT = "`make test` installs it (scripts/setup-test-deps.sh)"

Event = dict[str, Any]
Predicate = Callable[[Event], bool]


class HarnessError(AssertionError):
    """The harness crashed, refused a command, or an expected event did not come."""


def check_node_setup() -> str:
    """Return the node binary, or raise HarnessError saying what is missing."""
    node = shutil.which("node")
    if node is None:
        raise HarnessError(f"node is not on PATH; the JS tests need Node 20+. {SETUP_HINT}")
    for package in ("phoenix", "phoenix180", "ws"):
        if not (JS_DIR / "node_modules" / package / "package.json").is_file():
            raise HarnessError(f"tests/js/node_modules/{package} is missing; {SETUP_HINT}")
    return node


class NodeClient:
    """One harness process: a phoenix ``Socket`` whose events arrive as dicts.

    ``expect`` takes the first buffered or future event matching a predicate and removes it
    from the buffer, so independent expectations may be awaited in any order. ``events``
    keeps every event ever received, in arrival order.
    """

    def __init__(
        self,
        url: str,
        *,
        phoenix: str = "1.8.16",
        transport: str = "websocket",
        params: dict[str, Any] | None = None,
        auth_token: str | None = None,
        fast_reconnect: bool = False,
        connect: bool = True,
        extra_args: Sequence[str] = (),
        ready_timeout: float = 10.0,
    ) -> None:
        if phoenix not in PHOENIX_VERSIONS:
            raise ValueError(f"phoenix must be one of {PHOENIX_VERSIONS}, not {phoenix!r}")
        if transport not in ("websocket", "longpoll"):
            raise ValueError(f"transport must be websocket or longpoll, not {transport!r}")
        self.url = url
        self.phoenix = phoenix
        self.transport = transport
        self.argv = [
            "--url", url, "--phoenix", phoenix, "--transport", transport,
            "--params", json.dumps(params or {}),
        ]  # fmt: skip
        if auth_token is not None:
            self.argv += ["--auth-token", auth_token]
        if fast_reconnect:
            self.argv.append("--fast-reconnect")
        if not connect:
            self.argv.append("--no-connect")
        self.argv += list(extra_args)
        self.ready_timeout = ready_timeout
        self.events: list[Event] = []
        self._pending: list[Event] = []
        self._changed = asyncio.Event()
        self._stderr: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._exited = False
        self._next_ref = 0

    # -- process lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        node = check_node_setup()
        self._proc = await asyncio.create_subprocess_exec(
            node, str(HARNESS), *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )  # fmt: skip
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]
        await self.expect(lambda ev: ev["ev"] == "ready", timeout=self.ready_timeout)

    async def close(self, timeout: float = 3.0) -> None:
        """Ask the harness to exit; kill it if it does not within ``timeout`` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.send({"op": "exit"})
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> NodeClient:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            while line := await self._proc.stdout.readline():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    event = {"ev": "unparsed_output", "line": line.decode(errors="replace")}
                self.events.append(event)
                self._pending.append(event)
                self._changed.set()
        finally:
            await self._proc.wait()
            self._exited = True
            self._changed.set()

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while line := await self._proc.stderr.readline():
            self._stderr.append(line.decode(errors="replace"))

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    def transcript(self, last: int = 40) -> str:
        """The last events and the harness stderr, for failure messages and reports."""
        lines = [json.dumps(ev) for ev in self.events[-last:]]
        return "\n".join(
            [f"--- last {len(lines)} events ---", *lines, "--- stderr ---", self.stderr]
        )

    # -- commands and events ------------------------------------------------------------------

    async def send(self, command: dict[str, Any]) -> None:
        """Write one command line to the harness."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None or self._exited:
            raise HarnessError(
                f"harness is not running (exit code {self.returncode})\n{self.transcript()}"
            )
        proc.stdin.write(json.dumps(command).encode() + b"\n")
        await proc.stdin.drain()

    async def expect(self, predicate: Predicate, timeout: float = 5.0) -> Event:
        """Return (and consume) the first buffered or future event for which ``predicate`` holds.

        Raises HarnessError on timeout, when the harness exits, or when it reports a
        ``harness_error`` (a command it could not carry out).
        """
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self._pending):
                if event.get("ev") == "harness_error":
                    del self._pending[index]
                    raise HarnessError(f"harness refused a command: {event}\n{self.transcript()}")
                if predicate(event):
                    del self._pending[index]
                    return event
            if self._exited:
                raise HarnessError(
                    f"harness exited with code {self.returncode} before the expected event"
                    f"\n{self.transcript()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError(f"no matching event within {timeout}s\n{self.transcript()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def expect_ev(self, ev: str, timeout: float = 5.0, **fields: Any) -> Event:
        """``expect`` an event named ``ev`` whose given fields equal ``fields``."""
        return await self.expect(
            lambda e: e.get("ev") == ev and all(e.get(k) == v for k, v in fields.items()),
            timeout,
        )

    def _new_ref(self) -> int:
        self._next_ref += 1
        return 1_000_000 + self._next_ref

    def pending(self) -> list[Event]:
        """Events received but not consumed by ``expect`` yet."""
        return list(self._pending)

    # -- shorthands for the harness ops ------------------------------------------------------

    async def join(
        self, id: str, topic: str, params: dict[str, Any] | None = None, timeout: float = 5.0
    ) -> Event:
        """Join ``topic`` as channel ``id`` and return its first join_reply (any status)."""
        await self.send({"op": "join", "id": id, "topic": topic, "params": params or {}})
        return await self.expect_ev("join_reply", timeout, id=id)

    async def push(
        self, id: str, event: str, payload: Any = None, ref: int | None = None,
        timeout: float = 5.0,
    ) -> Event:  # fmt: skip
        """Push ``event`` on channel ``id`` and return its push_reply (any status)."""
        ref = ref if ref is not None else self._new_ref()
        command = {"op": "push", "id": id, "event": event, "payload": payload or {}, "ref": ref}
        await self.send(command)
        return await self.expect_ev("push_reply", timeout, id=id, ref=ref)

    async def push_binary(
        self, id: str, event: str, data: bytes, ref: int | None = None, timeout: float = 5.0
    ) -> Event:
        """Push ``data`` as a binary payload on channel ``id`` and return its push_reply."""
        ref = ref if ref is not None else self._new_ref()
        command = {"op": "push_binary", "id": id, "event": event, "bytes_hex": data.hex()}
        await self.send({**command, "ref": ref})
        return await self.expect_ev("push_reply", timeout, id=id, ref=ref)

    async def leave(self, id: str, timeout: float = 5.0) -> Event:
        """Leave channel ``id`` and return its leave_reply."""
        await self.send({"op": "leave", "id": id})
        return await self.expect_ev("leave_reply", timeout, id=id)

    async def presence(self, id: str, timeout: float = 5.0) -> list[Any]:
        """The phoenix.js ``Presence.list()`` of channel ``id`` as ``[{key, metas}]``."""
        await self.send({"op": "presence", "id": id})
        event = await self.expect_ev("presence", timeout, id=id)
        result: list[Any] = event["list"]
        return result

    async def state(self, timeout: float = 5.0) -> Event:
        """The socket's connection state and each channel's state."""
        await self.send({"op": "state"})
        return await self.expect_ev("state", timeout)


NodeClientFactory = Callable[..., Awaitable[NodeClient]]


@pytest.fixture
async def node_client(request: pytest.FixtureRequest) -> AsyncIterator[NodeClientFactory]:
    """Factory: ``c = await node_client(gw.ws_url, phoenix="1.8.0", transport="longpoll")``.

    Takes NodeClient's keyword arguments; every client is closed at teardown and its events
    and stderr are shown when the test fails.
    """
    try:
        check_node_setup()
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    clients: list[NodeClient] = []

    async def start(url: str, **kwargs: Any) -> NodeClient:
        client = NodeClient(url, **kwargs)
        clients.append(client)
        attach_log(request.node, f"node client #{len(clients)} ({url})", client.transcript)
        await client.start()
        return client

    try:
        yield start
    finally:
        for client in clients:
            await client.close()
