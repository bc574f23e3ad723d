"""Admission of connects, joins and pushes: the rate limits, and closing a flooding client."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from gateway.config import RatesConfig
from gateway.errors import CLOSE_POLICY, RATE_LIMITED
from gateway.observability.labels import EventClass
from gateway.protocol.messages import Message
from gateway.protocol.ratelimit import BucketSpec, FloodTracker, RateLimiter
from gateway.runtime.client import Client

log = structlog.get_logger("gateway.limits")

RATE_LIMITED_REPLY = {"reason": RATE_LIMITED}


def limiter_specs(s: RatesConfig) -> dict[str, BucketSpec]:
    specs = {
        "signaling": BucketSpec(s.rate_signaling, s.burst_signaling),
        "chat": BucketSpec(s.rate_chat, s.burst_chat),
        "join": BucketSpec(s.rate_join, s.burst_join),
        "connect": BucketSpec(s.rate_connect, s.burst_connect),
        "other": BucketSpec(s.rate_other, s.burst_other),
    }
    if s.rate_echo > 0:
        specs["echo"] = BucketSpec(s.rate_echo, s.burst_echo)
    return specs


class Admission:
    """The node's token buckets (per user, connection or address) and flood trackers."""

    def __init__(self, rates: RatesConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.limiter = RateLimiter(limiter_specs(rates), clock, max_keys=rates.rate_limit_max_keys)
        self.limits_on = rates.rate_limits
        self._floods: dict[str, FloodTracker] = {}

    def admit_push(self, conn: Client, klass: EventClass) -> dict[str, str] | None:
        """None to let a push of class `klass` (`labels.classify_event`) through, or the error
        response of a refusal. Classes without a bucket (control, echo unless configured) pass."""
        if not self.limits_on or self.limiter.allow(conn.info.user_id, klass):
            return None
        return self.refused(conn, klass)

    def admit_join(self, conn: Client, msg: Message) -> dict[str, str] | None:
        if not self.limits_on or self.limiter.allow(conn.id, "join"):
            return None
        return self.refused(conn, "join")

    def admit_connect(self, peer: str) -> bool:
        return not self.limits_on or self.limiter.allow(peer, "connect")

    def refused(self, conn: Client, klass: str) -> dict[str, str]:
        """The error response of a refused push or join; a flood of them closes the socket."""
        tracker = self._floods.get(conn.id)
        if tracker is None:
            tracker = self._floods[conn.id] = FloodTracker()
        if tracker.refused(self.clock()):
            log.warning(
                "push_rate_limited",
                action="connection closed (flood)",
                conn_id=conn.id,
                user_id=conn.info.user_id,
                event_class=klass,
                refusals=tracker.refusals,
            )
            conn.close(CLOSE_POLICY, "rate limit exceeded")
        return RATE_LIMITED_REPLY

    def forget(self, conn: Client) -> None:
        self._floods.pop(conn.id, None)
        self.limiter.forget(conn.id)
