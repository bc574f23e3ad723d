"""Logging setup: formats, levels, the stdlib bridge and the secret scrubber."""

from __future__ import annotations

import io
import json
import logging

import pytest

from gateway.observability.logging import configure_logging, get_logger, scrub_secrets


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_json_lines_carry_timestamp_level_logger_and_event_first() -> None:
    buf = io.StringIO()
    log = get_logger("gateway.test")  # created before configuring, as module-level loggers are
    configure_logging("json", "info", stream=buf)
    log.info("socket_connected", transport="websocket", serializer="v2")
    (line,) = _lines(buf)
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert line["event"] == "socket_connected"
    assert line["level"] == "info"
    assert line["logger"] == "gateway.test"
    assert line["transport"] == "websocket"
    assert str(line["timestamp"]).endswith("Z")


def test_level_filters_lines() -> None:
    buf = io.StringIO()
    configure_logging("json", "warning", stream=buf)
    log = get_logger("gateway.test")
    log.info("not_written")
    log.warning("written")
    assert [line["event"] for line in _lines(buf)] == ["written"]


def test_stdlib_loggers_share_the_format_and_the_scrubber() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", stream=buf)
    logging.getLogger("aiohttp.access").info(
        '127.0.0.1 "GET /socket/websocket?vsn=2.0.0&token=SFMyNTY.abc HTTP/1.1" 101'
    )
    (line,) = _lines(buf)
    assert line["logger"] == "aiohttp.access"
    assert "SFMyNTY" not in json.dumps(line)
    assert "token=[REDACTED]" in str(line["event"])


def test_exceptions_are_rendered_and_scrubbed() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", stream=buf)
    try:
        raise ValueError("bad params {'authToken': 'hunter2'}")
    except ValueError:
        get_logger("gateway.test").exception("channel_crashed")
    (line,) = _lines(buf)
    assert "ValueError" in str(line["exception"])
    assert "hunter2" not in buf.getvalue()


def test_console_format_is_readable_and_scrubbed() -> None:
    buf = io.StringIO()
    configure_logging("console", "debug", stream=buf)
    get_logger("gateway.dev").debug("channel_joined", topic="room:1", token="s3cr3t")
    out = buf.getvalue()
    assert "channel_joined" in out
    assert "topic=room:1" in out
    assert "s3cr3t" not in out
    assert not out.lstrip().startswith("{")


def test_unknown_format_and_level_are_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        configure_logging("xml", "info")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level"):
        configure_logging("json", "loud")


def test_values_of_any_type_render() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", stream=buf)
    get_logger("gateway.test").info("odd", value=object(), ids={3})
    (line,) = _lines(buf)
    assert str(line["value"]).startswith("<object")
    assert line["ids"] == [3]


# --- the scrubber on its own ------------------------------------------------------------------


def _scrub(**event: object) -> dict[str, object]:
    return scrub_secrets(None, "info", dict(event))


@pytest.mark.parametrize("key", ["token", "authToken", "password", "secret", "TOKEN"])
def test_top_level_secret_keys_are_dropped(key: str) -> None:
    assert _scrub(event="x", **{key: "value"}) == {"event": "x"}


def test_connect_params_lose_their_secrets_but_keep_the_rest() -> None:
    scrubbed = _scrub(
        event="socket_connected",
        params={"token": "t", "authToken": "a", "user_id": "u1", "vsn": "2.0.0"},
    )
    assert scrubbed["params"] == {"user_id": "u1", "vsn": "2.0.0"}


def test_nested_containers_are_scrubbed() -> None:
    scrubbed = _scrub(
        event="e",
        batch=[{"password": "p", "ok": 1}, ("keep", {"secret": "s"})],
    )
    assert scrubbed["batch"] == [{"ok": 1}, ("keep", {})]


def test_query_string_secrets_are_redacted() -> None:
    scrubbed = _scrub(event="e", url="/socket/longpoll?vsn=2.0.0&authToken=abc.def&x=1")
    assert scrubbed["url"] == "/socket/longpoll?vsn=2.0.0&authToken=[REDACTED]&x=1"


def test_quoted_secrets_in_text_are_redacted() -> None:
    scrubbed = _scrub(event="e", raw='{"topic":"room:1","token":"abc","x":1}')
    assert scrubbed["raw"] == '{"topic":"room:1","token":"[REDACTED]","x":1}'


def test_clean_values_pass_through_unchanged() -> None:
    event = {"event": "channel_joined", "topic": "room:1", "count": 3, "ratio": 0.5}
    assert scrub_secrets(None, "info", dict(event)) == event
