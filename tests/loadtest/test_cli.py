"""The load tester's commands: `gateway-loadtest`, `python -m loadtest` and, through the gateway's
CLI, `python -m gateway loadtest`, with a one-line answer where a part is not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway import cli as gateway_cli
from loadtest import cli

BIN = Path(sys.executable).parent


def test_the_gateway_cli_dispatches_to_the_load_tester() -> None:
    args = gateway_cli.build_parser().parse_args(
        ["loadtest", "scenario", "echo", "--url", "ws://127.0.0.1:1/socket"]
    )
    assert args.handler is cli.run and args.name == "echo"


def test_without_the_load_tester_the_gateway_cli_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "loadtest.cli", None)  # as if not installed
    assert gateway_cli.main(["loadtest", "scenario", "echo", "--url", "ws://x/socket"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "load tester is not installed" in err
    # The `gateway-loadtest` command, installed with the server, answers the same.
    assert gateway_cli.loadtest_main(["--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "load tester is not installed" in err


@pytest.mark.parametrize(
    "command",
    [[str(BIN / "gateway-loadtest")], [sys.executable, "-m", "loadtest"]],
    ids=["console-script", "python-m"],
)
def test_the_load_tester_runs_on_its_own(command: list[str]) -> None:
    out = subprocess.run([*command, "--help"], capture_output=True, text=True, check=True).stdout
    assert "scenario" in out and "replay" in out


def test_a_missing_dependency_is_named_in_one_line() -> None:
    code = (
        "import sys; sys.modules['hdrh'] = None\n"
        "from loadtest.cli import main\n"
        "sys.exit(main(['scenario', 'echo', '--url', 'ws://127.0.0.1:1/socket']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == cli.EXIT_USAGE
    assert (
        done.stderr.count("\n") == 1 and "hdrh" in done.stderr and "loadtest extra" in done.stderr
    )
