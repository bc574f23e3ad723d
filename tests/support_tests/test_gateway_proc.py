"""The gateway fixture starts the real server process, waits for /healthz, restarts and kills it."""

from pathlib import Path

import aiohttp
import pytest

from tests.support.gateway_proc import GatewayFactory, GatewayProcess, GatewayStartError
from tests.support.ports import port_is_open


async def healthz(gw: GatewayProcess) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{gw.url}/healthz") as resp:
        return resp.status


async def test_starts_healthy_and_exposes_urls(gateway: GatewayFactory) -> None:
    gw = await gateway()
    assert gw.url == f"http://127.0.0.1:{gw.port}"
    assert gw.ws_url == f"ws://127.0.0.1:{gw.port}/socket"
    assert gw.returncode is None
    assert await healthz(gw) == 200


async def test_restart_keeps_the_port_and_kill_stops_it(gateway: GatewayFactory) -> None:
    gw = await gateway()
    first_pid = gw.proc.pid if gw.proc else None
    await gw.restart()
    assert gw.proc is not None and gw.proc.pid != first_pid
    assert await healthz(gw) == 200
    code = await gw.kill()
    assert code == -9
    assert not port_is_open(gw.port)


async def test_terminate_is_a_clean_exit(gateway: GatewayFactory) -> None:
    gw = await gateway()
    assert await gw.terminate() == 0
    assert not port_is_open(gw.port)
    assert "--- start:" in gw.output()


async def test_start_failure_shows_the_process_output(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "gw.log", args=["--no-such-option"], startup_timeout=10)
    with pytest.raises(GatewayStartError, match="exited with code") as info:
        await proc.start()
    assert "--no-such-option" in str(info.value)
    assert proc.returncode not in (None, 0)
