"""The redis fixture runs a real redis-server that answers, stores, dies and restarts."""

from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support.ports import port_is_open
from tests.support.redis_server import RedisServer, RedisServerError


async def test_fixture_serves_ping_set_get(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = aioredis.from_url(redis_url)
    try:
        assert await client.ping() is True
        await client.set("k", "v")
        assert await client.get("k") == b"v"
        info = await client.config_get("save")
        assert info["save"] == ""
        assert (await client.config_get("appendonly"))["appendonly"] == "no"
    finally:
        await client.aclose()


async def test_kill_then_restart_keeps_the_port(redis_server: RedisServer) -> None:
    port = redis_server.port
    client = aioredis.from_url(redis_server.url)
    try:
        await client.set("k", "v")
        redis_server.kill()
        assert not redis_server.running
        assert not port_is_open(port)
        with pytest.raises(RedisConnectionError):
            await client.ping()

        redis_server.restart()
        assert redis_server.port == port
        assert redis_server.ping()
        assert await client.ping() is True
        assert await client.get("k") is None  # no persistence: a restart starts empty
    finally:
        await client.aclose()


def test_graceful_restart_on_same_port(redis_server: RedisServer) -> None:
    port = redis_server.port
    redis_server.restart()
    assert redis_server.running
    assert redis_server.port == port
    assert redis_server.ping()
    redis_server.stop()
    assert not redis_server.ping()


def test_missing_binary_names_make_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RedisServerError, match="make test"):
        RedisServer(tmp_path)


def test_a_taken_port_is_never_mistaken_for_ours(redis_server: RedisServer, tmp_path: Path) -> None:
    second = RedisServer(tmp_path / "second", port=redis_server.port)
    with pytest.raises(RedisServerError, match=r"another redis-server|exited"):
        second.start(timeout=5)
    assert not second.running
    assert redis_server.proc is not None
    assert redis_server.answering_pid() == redis_server.proc.pid
