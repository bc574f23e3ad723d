"""structlog setup: JSON lines in production, a readable console in development, secrets scrubbed.

Both structlog loggers and the standard library's (aiohttp, asyncio, redis) go through the same
processors, so every line has the same shape and no line can carry a token.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TextIO, cast

import msgspec
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

LogFormat = Literal["json", "console"]

# Compared lower-cased. `token` and `authToken` are what Phoenix clients put in connect params.
SECRET_KEYS: Final = frozenset(
    {
        "token",
        "authtoken",
        "auth_token",
        "access_token",
        "password",
        "secret",
        "authorization",
    }
)
REDACTED: Final = "[REDACTED]"
_KEY_ALTERNATION: Final = "token|authToken|auth_token|access_token|password|secret"
# `?token=abc&vsn=2.0.0` in a logged path or URL (aiohttp's access log, a long-poll request).
_QUERY_SECRET: Final = re.compile(rf"(?i)(?<=[?&;])({_KEY_ALTERNATION})=[^&;#\s\"']*")
# `'token': 'abc'` or `"authToken":"abc"` inside the repr of a params dict or a JSON text.
_QUOTED_SECRET: Final = re.compile(
    rf"(?i)([\"'])({_KEY_ALTERNATION})\1(\s*[:=]\s*)([\"'])(?:(?!\4).)*\4"
)
# aiohttp quotes the start of a header line it refused as too long; that line may be the
# `X-Phoenix-AuthToken` or `Sec-WebSocket-Protocol` header, so the quote goes whatever it holds.
_TOO_LONG_LINE: Final = re.compile(r"(when reading: )b?(['\"]).*?\2(\.\.\.)?")
# The token phoenix.js puts in `Sec-WebSocket-Protocol`.
_BEARER_PROTOCOL: Final = re.compile(r"(base64url\.bearer\.phoenix\.)[A-Za-z0-9_\-=]*")
# Nested values deeper than this are left alone; log values are never legitimately that deep.
_MAX_DEPTH: Final = 6


def _scrub_text(text: str) -> str:
    # The cheap membership tests keep the regexes off the common path of clean strings.
    if "=" not in text and ":" not in text:
        return text
    text = _QUERY_SECRET.sub(rf"\1={REDACTED}", text)
    if "when reading: " in text:
        text = _TOO_LONG_LINE.sub(rf"\1{REDACTED}", text)
    if "bearer.phoenix." in text:
        text = _BEARER_PROTOCOL.sub(rf"\1{REDACTED}", text)
    return _QUOTED_SECRET.sub(rf"\1\2\1\3\4{REDACTED}\4", text)


def _scrub_value(value: object, depth: int) -> object:
    if isinstance(value, str):
        return _scrub_text(value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            k: _scrub_value(v, depth + 1)
            for k, v in value.items()
            if not (isinstance(k, str) and k.lower() in SECRET_KEYS)
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub_value(v, depth + 1) for v in value)
    return value


def scrub_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Drop keys named like a secret at any depth and redact secrets inside logged strings."""
    return {
        key: _scrub_value(value, 1)
        for key, value in event_dict.items()
        if key.lower() not in SECRET_KEYS
    }


def _json_fallback(value: object) -> object:
    # Log values of any type must render; an exception in a log call would hide the real error.
    return repr(value)


_JSON_ENCODER: Final = msgspec.json.Encoder(enc_hook=_json_fallback)


# Readers scan these first, so they lead every JSON line.
_LEADING_KEYS: Final = ("timestamp", "level", "logger", "event")


def _dumps(event_dict: EventDict, **_kw: Any) -> str:
    ordered = {key: event_dict[key] for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return _JSON_ENCODER.encode(ordered).decode()


class _NamedWriteLogger(structlog.WriteLogger):
    # A `name` lets structlog.stdlib.add_logger_name label native lines like stdlib ones.
    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self._file, str(args[0]) if args else "")


def _shared_processors() -> list[Processor]:
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # Turn exc_info into text before scrubbing, so the scrubber sees the traceback too.
        structlog.processors.format_exc_info,
        scrub_secrets,
    ]
    return processors


def _renderer(fmt: LogFormat, stream: TextIO) -> Processor:
    if fmt == "json":
        return structlog.processors.JSONRenderer(serializer=_dumps)
    # plain_traceback: rich's pretty tracebacks would print local variables, tokens included.
    return structlog.dev.ConsoleRenderer(
        colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
    )


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(fmt: LogFormat, level: str, *, stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library's root logger; call once at startup.

    `fmt` is "json" (one object per line, for production) or "console" (for development);
    `level` is a standard level name such as "info". Lines go to `stream` (stdout by default).
    """
    if fmt not in ("json", "console"):
        raise ValueError(f"unknown log format {fmt!r}")
    level_no = _level_number(level)
    out = stream if stream is not None else sys.stdout
    shared = _shared_processors()
    renderer = _renderer(fmt, out)
    structlog.configure(
        processors=[*shared, renderer],
        # Calls below the level are no-op methods, so a disabled debug line costs one call.
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=_NamedWriteLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_no)


def get_logger(name: str) -> FilteringBoundLogger:
    """A logger whose lines carry `logger=name`; safe to create at import, before configuring."""
    # The name travels as a logger-factory argument: binding it here would build the logger
    # now, with whatever configuration exists at import time.
    return cast(FilteringBoundLogger, structlog.get_logger(name))


class _Window:
    __slots__ = ("count", "seen", "skipped", "started")

    def __init__(self, started: float) -> None:
        self.seen = 0
        self.started = started
        self.count = 0
        self.skipped = 0


class Sampler:
    """Decides which hot-path log lines are written: 1 in `every`, at most `per_second` per event.

    Check before building the line (`if sampler.allow("frame_dropped"): log.info(...)`), so a
    suppressed line costs one dict lookup. `take` also says how many lines were suppressed since
    the last one written, to be logged as `skipped=` so rates stay readable. Meant for one event
    loop; it takes no lock.
    """

    def __init__(
        self,
        *,
        every: int = 1,
        per_second: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_events: int = 1024,
    ) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        if per_second is not None and per_second < 1:
            raise ValueError("per_second must be at least 1")
        self._every = every
        self._per_second = per_second
        self._clock = clock
        self._max_events = max_events
        self._windows: dict[str, _Window] = {}

    def take(self, event: str) -> int | None:
        """None if this line is to be suppressed, else the number suppressed since the last one."""
        now = self._clock()
        window = self._windows.get(event)
        if window is None:
            if len(self._windows) >= self._max_events:
                # Event names come from code, so this only bounds a misuse (a dynamic name).
                del self._windows[next(iter(self._windows))]
            window = self._windows[event] = _Window(now)
        window.seen += 1
        if (window.seen - 1) % self._every:
            window.skipped += 1
            return None
        if self._per_second is not None:
            if now - window.started >= 1.0:
                window.started = now
                window.count = 0
            if window.count >= self._per_second:
                window.skipped += 1
                return None
            window.count += 1
        skipped, window.skipped = window.skipped, 0
        return skipped

    def allow(self, event: str) -> bool:
        """True if a line for `event` should be written now."""
        return self.take(event) is not None
