"""Settings: environment and flags, validation, and the generated reference staying current."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from gateway.cli import build_parser, settings_from_args
from gateway.config import (
    Settings,
    field_types,
    groups,
    load_settings,
    option_values,
    render_reference,
)
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_environment_then_flags() -> None:
    env = {"GATEWAY_PORT": "4100", "GATEWAY_ECHO": "false", "GATEWAY_RATE_CHAT": "2.5"}
    s = load_settings({"host": "0.0.0.0"}, environ=env)
    assert (s.listen.port, s.listen.echo, s.rates.rate_chat, s.listen.host) == (
        4100,
        False,
        2.5,
        "0.0.0.0",
    )


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "4100")
    args = build_parser().parse_args(["serve", "--port", "4200", "--no-demo"])
    s = settings_from_args(args)
    assert (s.listen.port, s.listen.demo) == (4200, False)


def test_bad_values_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        load_settings(environ={"GATEWAY_PORT": "many"})
    with pytest.raises(ConfigError):
        load_settings(environ={"GATEWAY_ECHO": "maybe"})
    with pytest.raises(ConfigError):
        load_settings({"workers": 2}, environ={})
    with pytest.raises(ConfigError):
        load_settings({"no_such_option": 1}, environ={})


def test_every_option_is_documented_and_the_reference_is_current() -> None:
    assert Settings().listen.port == 4000
    reference = render_reference()
    assert (ROOT / "docs" / "configuration.md").read_text() == reference, (
        "docs/configuration.md is stale: run `python -m gateway config-reference > docs/configuration.md`"
    )
    for line in reference.splitlines():
        assert not line.endswith("|  |"), f"option without help: {line}"


def test_options_are_grouped_under_unique_names() -> None:
    # An option is named by its field alone, so two groups must never share a field name.
    fields = [f.name for struct in groups().values() for f in msgspec.structs.fields(struct)]
    assert len(fields) == len(set(fields)) == len(field_types())
    s = load_settings(
        {"redis_url": "redis://r:6379", "workers": "2", "room_max_members": 7}, environ={}
    )
    assert (s.redis.redis_url, s.process.workers, s.rooms.room_max_members) == (
        "redis://r:6379",
        2,
        7,
    )
    assert option_values(s)["room_max_members"] == 7
