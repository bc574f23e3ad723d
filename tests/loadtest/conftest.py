"""Fixtures for the load tester's tests: the Phoenix-speaking test server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.loadtest.phoenix_server import PhoenixTestServer

ServerFactory = Callable[..., Awaitable[PhoenixTestServer]]


@pytest.fixture
async def phoenix_server() -> AsyncIterator[ServerFactory]:
    """Factory: `srv = await phoenix_server(delay=0.05)`; every server is stopped afterwards."""
    started: list[PhoenixTestServer] = []

    async def start(**kwargs: object) -> PhoenixTestServer:
        srv = PhoenixTestServer(**kwargs)  # type: ignore[arg-type]
        await srv.start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        await srv.stop()
