"""Frames for V1 and V2 sessions, and waiting for a number of long-poll messages."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.longpoll.conftest import LongPollClient


def frame(vsn: str, join_ref: Any, ref: Any, topic: str, event: str, payload: Any) -> Any:
    """A client frame as the session's serializer expects it (V1 object or V2 array)."""
    if vsn.startswith("1"):
        obj = {"topic": topic, "event": event, "payload": payload, "ref": ref}
        if join_ref is not None:
            obj["join_ref"] = join_ref
        return obj
    return [join_ref, ref, topic, event, payload]


def fields(message: Any) -> tuple[Any, Any, str, str, Any]:
    """(join_ref, ref, topic, event, payload) of a server frame in either format."""
    if isinstance(message, dict):
        return (
            message.get("join_ref"),
            message["ref"],
            message["topic"],
            message["event"],
            message["payload"],
        )
    join_ref, ref, topic, event, payload = message
    return join_ref, ref, topic, event, payload


async def collect(client: LongPollClient, count: int, timeout: float = 5.0) -> list[Any]:
    """Poll until `count` messages came (more is a failure: the tests count exactly)."""
    deadline = time.monotonic() + timeout
    messages: list[Any] = []
    while len(messages) < count:
        assert time.monotonic() < deadline, f"only {len(messages)} of {count}: {messages}"
        reply = await client.get()
        assert reply.http_status == 200, reply.raw
        assert reply.status in (200, 204), reply.raw
        messages.extend(reply.messages)
    assert len(messages) == count, messages
    return messages


async def settle() -> None:
    """Let channel tasks run their pending steps."""
    for _ in range(5):
        await asyncio.sleep(0.01)
