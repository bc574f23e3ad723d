"""Finding the node that owns a long-poll session, and handing it a GET or POST.

A token names its owner node. When a request lands elsewhere (a load balancer without sticky
sessions), the receiving node forwards it to the owner and relays the answer; an owner that
does not answer within `pubsub_timeout` (Phoenix's `pubsub_timeout_ms`, 2 s) counts as gone.
The local locator serves one node; the one that crosses nodes lives in `longpoll_forward.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.protocol.longpoll import Answer, Forwarded

Serve = Callable[[Forwarded], Awaitable[Answer]]


class SessionLocator(Protocol):
    """Carries GETs and POSTs to the node that owns a session."""

    async def start(self, serve: Serve) -> None:
        """Begin answering requests other nodes forward to this one, with `serve`."""

    async def stop(self) -> None:
        """Stop answering and release connections."""

    async def forward(self, node: str, request: Forwarded, wait_s: float) -> Answer | None:
        """The owner's answer, or None when the owner is unknown or did not answer in time.

        `wait_s` is how long the owner may take once it has the request (the poll window for
        a GET); the owner must first acknowledge it within the pubsub timeout.
        """


class LocalSessionLocator:
    """A single node: a session of any other node cannot be reached, so it is gone."""

    async def start(self, serve: Serve) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def forward(self, node: str, request: Forwarded, wait_s: float) -> Answer | None:
        return None
