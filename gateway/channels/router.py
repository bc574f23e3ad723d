"""Topic patterns to channel classes: `"room:*"` (prefix) or an exact topic; first match wins.

A route may carry options, passed to each channel it builds as keyword arguments: the parts
that channel needs (`route("room:*", RoomChannel, rooms=rooms)`), wired by the composition
root, so a channel never looks them up.
"""

from __future__ import annotations

from typing import Any

from gateway.channels.base import Channel, ChannelFactory
from gateway.channels.context import ChannelContext


class Route:
    """A channel class and the options each of its channels is built with."""

    __slots__ = ("channel", "intercepts", "options")

    def __init__(self, channel: type[Channel], options: dict[str, Any]) -> None:
        self.channel = channel
        self.intercepts = channel.intercepts
        self.options = options

    def __call__(self, process: ChannelContext) -> Channel:
        return self.channel(process, **self.options)  # type: ignore[call-arg]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, bool, ChannelFactory]] = []
        self._cache: dict[str, ChannelFactory | None] = {}

    def route(self, pattern: str, channel: type[Channel], **options: Any) -> None:
        """Declare `pattern` ("prefix*" or an exact topic); earlier routes win (as in
        Phoenix.Socket's `channel/3`, phoenix/lib/phoenix/socket.ex)."""
        if "*" in pattern[:-1]:
            raise ValueError("the splat may only end a pattern")
        prefix = pattern.endswith("*")
        factory: ChannelFactory = Route(channel, options) if options else channel
        self._routes.append((pattern[:-1] if prefix else pattern, prefix, factory))
        self._cache.clear()

    def match(self, topic: str) -> ChannelFactory | None:
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found: ChannelFactory | None = None
        for pattern, prefix, channel in self._routes:
            if (prefix and topic.startswith(pattern)) or topic == pattern:
                found = channel
                break
        if len(self._cache) < 10_000:
            self._cache[topic] = found
        return found
