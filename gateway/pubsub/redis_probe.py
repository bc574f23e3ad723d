"""The start-up check of the Redis a gateway is pointed at: one PING, one clear answer."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis
from redis.exceptions import RedisError


def redacted(url: str) -> str:
    """`url` without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def probe(url: str, timeout_s: float = 3.0) -> str | None:
    """None when the Redis at `url` answers PING, else why not (one line)."""
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
    except ValueError as exc:
        return f"invalid URL: {exc}"
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    finally:
        client.close()
    return None
