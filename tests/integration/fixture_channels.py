"""Test channels that behave like the fixture channels of Phoenix's own integration tests."""

from __future__ import annotations

from typing import Any

from gateway.channels.base import Channel, Reply, Stop, decode_payload, error, ok
from gateway.channels.router import Router
from gateway.protocol.messages import Payload


class FixtureChannel(Channel):
    """Phoenix's RoomChannel fixture: user_entered + joined after join, intercepted new_msg."""

    intercepts = frozenset({"new_msg"})

    async def join(self, payload: Payload) -> Reply:
        params = decode_payload(payload)
        self._user = params.get("user") if isinstance(params, dict) else None
        if isinstance(params, dict) and params.get("reject"):
            return error({"reason": "unauthorized"})
        return ok()

    async def after_join(self) -> None:
        self.broadcast("user_entered", {"user": self._user})
        self.push("joined", {"status": "connected", "user_id": None})

    async def handle_in(self, event: str, payload: Payload, ref: Any) -> Reply | Stop | None:
        if event == "new_msg":
            self.broadcast("new_msg", decode_payload(payload))
            return ok()
        if event == "boom":
            raise RuntimeError("boom")
        if event == "binary_event" and isinstance(payload, bytes):
            self.push("binary_event", b"\x00\x01")
            return Reply("ok", payload + b"\x03\x04")
        if event == "stop":
            return Stop("normal", ok({"bye": True}))
        if event == "slow":
            self.push("flood", {"blob": "x" * 65536})
            return None
        return None

    async def handle_out(self, event: str, payload: Any) -> None:
        body = decode_payload(payload) if not isinstance(payload, dict) else payload
        self.push(event, {**body, "transport": ":websocket"})

    async def terminate(self, reason: str) -> None:
        self.push("you_left", {"message": "bye!"})


class CustomChannel(Channel):
    """Phoenix's custom channel fixture: join outcomes chosen by the topic."""

    async def join(self, payload: Payload) -> Reply:
        if self.topic.endswith(":ignore"):
            return error({"action": "ignore"})
        if self.topic.endswith(":raise"):
            raise RuntimeError("join raised")
        return ok({"action": "ok"})

    async def handle_in(self, event: str, payload: Payload, ref: Any) -> Reply | Stop | None:
        if event == "close":
            return Stop("shutdown")
        return None


def add_fixture_routes(router: Router) -> None:
    router.route("fixture:*", FixtureChannel)
    router.route("custom:*", CustomChannel)
