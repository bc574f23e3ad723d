"""The `check_origin` policy of a socket, exactly as Phoenix applies it (docs/auth.md,
"Origin check"; phoenix/lib/phoenix/socket/transport.ex).

Policies: `off` (no check), `host` (origin host equals the configured host), a list of allowed
origins, or `conn` (origin scheme, host and port equal the request's own). A request without an
`Origin` header is always allowed; an origin without a host (`null`, `file://`, "") is refused
by every policy except `off`. Hosts are compared case-insensitively, as DNS names are.
"""

from __future__ import annotations

from typing import Final, Literal
from urllib.parse import urlsplit

import msgspec

# The default ports Elixir's URI.parse fills in for the schemes an Origin can carry.
DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class OriginConfigError(ValueError):
    """A check_origin setting that cannot be parsed (for example an entry without a host)."""


class ParsedOrigin(msgspec.Struct, frozen=True):
    """An origin or allow-list entry; `None` parts match anything when they come from an entry."""

    host: str
    scheme: str | None = None
    port: int | None = None


class OriginPolicy(msgspec.Struct, frozen=True):
    """A parsed check_origin setting; build it with `parse_origin_policy`."""

    mode: Literal["off", "host", "list", "conn"]
    host: str = "localhost"
    allowed: tuple[ParsedOrigin, ...] = ()


def parse_uri(text: str) -> ParsedOrigin | None:
    """Scheme, host and port as Elixir's URI.parse gives them, or None when there is no host."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if not host:
        return None
    scheme = parts.scheme.lower() or None
    if port is None and scheme is not None:
        port = DEFAULT_PORTS.get(scheme)
    return ParsedOrigin(host=host.lower(), scheme=scheme, port=port)


def parse_origin_policy(
    value: bool | str | list[str] | tuple[str, ...], *, host: str = "localhost"
) -> OriginPolicy:
    """Parse `true`, `false`, `conn` or a comma-separated list of origins (or a real list).

    `host` is the endpoint's configured host that `true` compares against.
    """
    if isinstance(value, bool):
        return OriginPolicy("host" if value else "off", host=host.lower())
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "false"):
            return parse_origin_policy(word == "true", host=host)
        if word in ("conn", ":conn"):
            return OriginPolicy("conn", host=host.lower())
        entries = [item.strip() for item in value.split(",") if item.strip()]
    else:
        entries = [item.strip() for item in value]
    if not entries:
        raise OriginConfigError("check_origin needs true, false, conn or at least one origin")
    allowed = []
    for entry in entries:
        parsed = parse_uri(entry)
        if parsed is None:
            raise OriginConfigError(
                f"invalid check_origin entry {entry!r}: expected an origin with a host, "
                'for example "https://example.com", "//another.com:888" or "//other.com"'
            )
        allowed.append(parsed)
    return OriginPolicy("list", host=host.lower(), allowed=tuple(allowed))


def origin_allowed(
    origin: str | None,
    policy: OriginPolicy,
    request_scheme: str,
    request_host: str,
    request_port: int,
) -> bool:
    """Whether a request carrying `origin` may connect; the request_* values describe the
    request itself (used by the `conn` policy only)."""
    if origin is None or policy.mode == "off":
        return True
    uri = parse_uri(origin)
    if uri is None:
        return False
    if policy.mode == "conn":
        return (
            uri.host == request_host.lower()
            and uri.scheme == request_scheme.lower()
            and uri.port == request_port
        )
    if policy.mode == "host":
        return uri.host == policy.host
    return any(_matches(uri, entry) for entry in policy.allowed)


def _matches(uri: ParsedOrigin, entry: ParsedOrigin) -> bool:
    if entry.scheme is not None and uri.scheme != entry.scheme:
        return False
    if entry.port is not None and uri.port != entry.port:
        return False
    if entry.host.startswith("*."):
        # `*.ex.com` covers `ex.com` itself and any subdomain, but not `prefix-ex.com`.
        domain = entry.host[2:]
        return uri.host == domain or uri.host.endswith("." + domain)
    return uri.host == entry.host
