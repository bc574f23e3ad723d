"""The optional per-room authorization hook (`--room-authorizer module:function`).

Apps that decide who may enter which room name a function; it is called on every room join
with a `RoomJoin` and returns True to admit, False to refuse (`{"reason":"unauthorized"}`). It
may be a coroutine function, so it can ask the app's own API or database.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from gateway.errors import ConfigError


class RoomJoin(msgspec.Struct, frozen=True):
    """What the hook sees about a join."""

    user_id: str
    room_id: str
    authenticated: bool
    claims: dict[str, Any]
    params: dict[str, Any]  # the socket's connect params


Authorizer = Callable[[RoomJoin], Awaitable[bool]]


def load_authorizer(spec: str) -> Authorizer | None:
    """`package.module:function` -> an async callable; empty -> None."""
    if not spec:
        return None
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"room_authorizer must look like package.module:function, got {spec!r}")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"room_authorizer {spec!r}: {exc}") from None
    if not callable(target):
        raise ConfigError(f"room_authorizer {spec!r} is not callable")

    async def authorize(join: RoomJoin) -> bool:
        result = target(join)
        if inspect.isawaitable(result):
            result = await result
        return result is True

    return authorize
