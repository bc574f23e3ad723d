"""A test channel with the behaviours of the fixture channel of Phoenix's long-poll tests."""

from __future__ import annotations

from typing import Any

from gateway.channels.base import Channel, Reply, Stop, decode_payload, ok
from gateway.protocol.messages import Payload

# (topic, reason) of every channel that ended, in order: the tests read how channels stopped.
TERMINATED: list[tuple[str, str]] = []


class LongPollFixtureChannel(Channel):
    """On join: broadcast `user_entered`, push `joined`. `new_msg` is broadcast, intercepted and
    re-pushed with `transport`; `boom` crashes; a binary `bin` broadcasts `bin_ack`; `ping`
    answers with a later `pong` push; `params` replies with the connect params."""

    intercepts = frozenset({"new_msg", "bin_ack"})

    async def join(self, payload: Payload) -> Reply:
        params = decode_payload(payload)
        self._user = params.get("user") if isinstance(params, dict) else None
        return ok()

    async def after_join(self) -> None:
        self.broadcast("user_entered", {"user": self._user})
        self.push("joined", {"status": "connected", "user_id": None})

    async def handle_in(self, event: str, payload: Payload, ref: Any) -> Reply | Stop | None:
        if event == "new_msg":
            self.broadcast("new_msg", decode_payload(payload))
            return None
        if event == "boom":
            raise RuntimeError("boom")
        if event == "bin" and isinstance(payload, bytes):
            self.broadcast("bin_ack", {"size": len(payload)})
            return None
        if event == "ping":
            self.send_info("pong")
            return None
        if event == "params":
            return ok(self.socket.params)
        return None

    async def handle_info(self, message: Any) -> None:
        self.push(str(message), {})

    async def handle_out(self, event: str, payload: Any) -> None:
        body = payload if isinstance(payload, dict) else decode_payload(payload)
        self.push(event, {**body, "transport": ":" + self.socket.transport})

    async def terminate(self, reason: str) -> None:
        TERMINATED.append((self.topic, reason))
