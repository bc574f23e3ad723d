"""An in-process gateway with the fixture channels (tests/integration/fixture_channels.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from gateway.app import Node, build_app, build_node
from gateway.config import load_settings
from gateway.transports.tcp_guard import GuardedSite, TcpGuard
from tests.integration.fixture_channels import add_fixture_routes


class WireServer:
    def __init__(self, runner: web.AppRunner, node: Node, port: int) -> None:
        self.runner = runner
        self.node = node
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/socket"
        self.http = f"http://127.0.0.1:{port}"

    @property
    def guard(self) -> TcpGuard:
        """The TCP caps of the site's listener."""
        site = next(iter(self.runner.sites))
        assert isinstance(site, GuardedSite)
        return site.guard


StartServer = Callable[..., Awaitable[WireServer]]


async def serve_app(app: web.Application) -> tuple[web.AppRunner, int]:
    """Run `app` on a free loopback port, on the site `gateway serve` runs (whose listener
    serves WebSocket upgrades itself); the caller cleans the runner up."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, tcp_keepalive=False)
    await runner.setup()
    site = GuardedSite(runner, TcpGuard(10_000, 10_000, 10.0), "127.0.0.1", 0)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


@pytest.fixture
async def wire_server() -> AsyncIterator[StartServer]:
    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> WireServer:
        settings = load_settings({"port": 0, **overrides}, environ={})
        node = build_node(settings)
        add_fixture_routes(node.router)
        runner, port = await serve_app(build_app(settings, node))
        runners.append(runner)
        return WireServer(runner, node, port)

    yield start
    for runner in runners:
        await runner.cleanup()
