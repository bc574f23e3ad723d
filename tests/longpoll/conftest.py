"""An in-process gateway with the long-poll fixture channel, and a raw HTTP long-poll client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.app import Node, build_app, build_node
from gateway.config import load_settings
from gateway.transports.longpoll import LONGPOLL, LongPoll
from tests.longpoll.fixture_channel import TERMINATED, LongPollFixtureChannel
from tests.support.wire_server import serve_app

# Phoenix's long-poll tests run with window_ms 200; so do these unless a test says otherwise.
FAST = {"longpoll_window_ms": 200, "rate_limits": False}


class LongPollServer:
    def __init__(self, app: web.Application, node: Node, port: int) -> None:
        self.app = app
        self.node = node
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}/socket/longpoll"

    @property
    def longpoll(self) -> LongPoll:
        return self.app[LONGPOLL]


class Reply:
    """One long-poll HTTP answer: status, headers and the decoded JSON body (if any)."""

    def __init__(self, http_status: int, headers: Any, raw: bytes) -> None:
        self.http_status = http_status
        self.headers = headers
        self.raw = raw
        self.json: Any = json.loads(raw) if raw else None

    @property
    def status(self) -> int:
        return int(self.json["status"])

    @property
    def messages(self) -> list[Any]:
        """The `messages` strings, each decoded as the frame it carries."""
        return [json.loads(m) for m in self.json["messages"]]


class LongPollClient:
    """Speaks the long-poll wire by hand, as Phoenix's own transport tests do."""

    def __init__(self, http: aiohttp.ClientSession, endpoint: str, vsn: str | None = "2.0.0"):
        self.http = http
        self.endpoint = endpoint
        self.vsn = vsn
        self.token: str | None = None

    def query(self, extra: str = "", token: str | None = None) -> str:
        parts = [extra] if extra else []
        if self.vsn is not None:
            parts.append(f"vsn={self.vsn}")
        token = token if token is not None else self.token
        if token is not None:
            parts.append(f"token={token}")
        return self.endpoint + "?" + "&".join(parts)

    async def request(
        self,
        method: str,
        url: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        async with self.http.request(method, url, data=data, headers=headers or {}) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def get(self, extra: str = "", headers: dict[str, str] | None = None) -> Reply:
        return await self.request("GET", self.query(extra), headers=headers)

    async def open(self, extra: str = "", headers: dict[str, str] | None = None) -> Reply:
        reply = await self.get(extra, headers)
        assert reply.http_status == 200 and reply.status == 410, reply.raw
        self.token = reply.json["token"]
        return reply

    async def post(
        self, *frames: Any, ndjson: bool | None = None, content_type: str | None = None
    ) -> Reply:
        """POST frames (JSON values or bytes lines) as one batch.

        V2 sessions get ndjson, as phoenix.js sends; V1 sessions one JSON object per POST, as
        Phoenix's V1 tests do (a V1 object is not an ndjson line).
        """
        if ndjson is None:
            ndjson = self.vsn is None or not self.vsn.startswith("1")
        lines = [f if isinstance(f, bytes) else json.dumps(f).encode() for f in frames]
        body = b"\n".join(lines)
        ctype = (
            content_type
            if content_type is not None
            else ("application/x-ndjson" if ndjson else "application/json")
        )
        return await self.request("POST", self.query(), body, {"Content-Type": ctype})

    async def post_raw(self, body: bytes, content_type: str = "application/x-ndjson") -> Reply:
        return await self.request("POST", self.query(), body, {"Content-Type": content_type})


StartServer = Callable[..., Awaitable[LongPollServer]]


@pytest.fixture
async def lp_server() -> AsyncIterator[StartServer]:
    """Factory: `server = await lp_server(longpoll_window_ms=200, ...)` (Settings overrides)."""
    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> LongPollServer:
        settings = load_settings({"port": 0, **FAST, **overrides}, environ={})
        node = build_node(settings)
        node.router.route("lc:*", LongPollFixtureChannel)
        app = build_app(settings, node)
        runner, port = await serve_app(app)
        runners.append(runner)
        return LongPollServer(app, node, port)

    TERMINATED.clear()
    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server(lp_server: StartServer) -> LongPollServer:
    return await lp_server()


@pytest.fixture
def client(server: LongPollServer, http: aiohttp.ClientSession) -> LongPollClient:
    return LongPollClient(http, server.endpoint)
