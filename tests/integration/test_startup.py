"""What a gateway says at start: where its demo is; and, pointed at a Redis it cannot reach, one
line before it exits, with or without workers (real processes; free ports nothing listens on)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.ports import free_port


@pytest.mark.parametrize("workers", [1, 2])
def test_unreachable_redis_at_start_is_one_clear_line(workers: int) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--redis-url", url,
         "--port", str(free_port()), "--workers", str(workers)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"gateway: cannot reach Redis at {url}: ")
    assert "refused" in lines[0].lower()
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_password_in_the_url_is_not_printed() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--redis-url", url, "--port", str(free_port())],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "hunter2" not in proc.stdout + proc.stderr
    assert ":***@127.0.0.1" in proc.stderr


def test_start_prints_the_demo_address() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == f"demo: http://127.0.0.1:{port}/demo"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
