"""Topic patterns to channel classes: `"room:*"` (prefix) or an exact topic; first match wins."""

from __future__ import annotations

from gateway.channels.base import Channel


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, bool, type[Channel]]] = []
        self._cache: dict[str, type[Channel] | None] = {}

    def route(self, pattern: str, channel: type[Channel]) -> None:
        """Declare `pattern` ("prefix*" or an exact topic); earlier routes win (as in
        Phoenix.Socket's `channel/3`, phoenix/lib/phoenix/socket.ex)."""
        if "*" in pattern[:-1]:
            raise ValueError("the splat may only end a pattern")
        prefix = pattern.endswith("*")
        self._routes.append((pattern[:-1] if prefix else pattern, prefix, channel))
        self._cache.clear()

    def match(self, topic: str) -> type[Channel] | None:
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found: type[Channel] | None = None
        for pattern, prefix, channel in self._routes:
            if (prefix and topic.startswith(pattern)) or topic == pattern:
                found = channel
                break
        if len(self._cache) < 10_000:
            self._cache[topic] = found
        return found
