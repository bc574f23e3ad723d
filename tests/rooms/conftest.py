"""An in-process gateway on a real port and a raw-frame room client, for the room tests."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiohttp import web

from gateway.app import Node, build_app, build_node
from gateway.config import load_settings
from gateway.signaling.rooms import Rooms
from tests.support.raw_ws import RawSocket, connect
from tests.support.wire_server import serve_app


class RoomServer:
    def __init__(self, node: Node, port: int) -> None:
        self.node = node
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/socket"
        self.http = f"http://127.0.0.1:{port}"

    @property
    def rooms(self) -> Rooms:
        return self.node.rooms


class Member:
    """One socket joined (or joining) one room, reading raw V2 frames."""

    def __init__(self, sock: RawSocket, topic: str) -> None:
        self.sock = sock
        self.topic = topic
        self.join_ref: str | None = None
        self._refs = itertools.count(1)
        self.backlog: list[list[Any]] = []

    async def join(self, params: dict[str, Any] | None = None) -> list[Any]:
        """Send phx_join; return the reply frame."""
        ref = str(next(self._refs))
        self.join_ref = ref
        await self.sock.send_v2(ref, ref, self.topic, "phx_join", params or {})
        return await self.frame(lambda f: f[3] == "phx_reply" and f[1] == ref)

    async def push(self, event: str, payload: Any) -> dict[str, Any]:
        """Push `event`; return the reply's `{status, response}`."""
        ref = str(next(self._refs))
        await self.sock.send_v2(self.join_ref, ref, self.topic, event, payload)
        frame = await self.frame(lambda f: f[3] == "phx_reply" and f[1] == ref)
        reply: dict[str, Any] = frame[4]
        return reply

    async def frame(
        self, match: Callable[[list[Any]], bool] = lambda f: True, timeout: float = 3.0
    ) -> list[Any]:
        """The first frame (from the backlog or the wire) that `match`es; others are kept."""
        for index, frame in enumerate(self.backlog):
            if match(frame):
                return self.backlog.pop(index)
        while True:
            frame = await self.sock.recv_json(timeout)
            if match(frame):
                return frame
            self.backlog.append(frame)

    async def event(self, event: str, timeout: float = 3.0) -> list[Any]:
        return await self.frame(lambda f: f[3] == event, timeout)

    async def nothing(self, event: str, wait: float = 0.2) -> None:
        """Assert no `event` frame arrives within `wait` seconds."""
        assert all(f[3] != event for f in self.backlog), self.backlog
        try:
            frame = await self.frame(lambda f: f[3] == event, wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {event}: {frame}")


StartServer = Callable[..., Awaitable[RoomServer]]
Connect = Callable[..., Awaitable[Member]]


@pytest.fixture
async def room_server() -> AsyncIterator[StartServer]:
    """Factory: `srv = await room_server(room_max_members=2)` (settings overrides)."""
    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> RoomServer:
        base = {"port": 0, "rate_limits": False, "trust_token_as_user_id": True}
        settings = load_settings({**base, **overrides}, environ={})
        node = build_node(settings)
        runner, port = await serve_app(build_app(settings, node))
        runners.append(runner)
        return RoomServer(node, port)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def member() -> AsyncIterator[Connect]:
    """Factory: `m = await member(srv, topic, user="ann")` opens a socket as that user."""
    async with AsyncExitStack() as stack:

        async def open_member(server: RoomServer, topic: str, user: str | None = None) -> Member:
            params = {"token": user} if user is not None else {}
            sock = await stack.enter_async_context(connect(server.url, params=params))
            return Member(sock, topic)

        yield open_member


@pytest.fixture
def topic() -> str:
    return f"room:{uuid.uuid4()}"
