"""The node's shared parts, handed to every connection and channel (built by `app.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from gateway.auth.setup import build_authenticator, build_origin_check
from gateway.channels.router import Router
from gateway.config import RatesConfig, Settings
from gateway.errors import CLOSE_POLICY, RATE_LIMITED, ConfigError
from gateway.observability.labels import EventClass
from gateway.protocol.messages import Message
from gateway.protocol.ratelimit import BucketSpec, FloodTracker, RateLimiter
from gateway.pubsub.core import PubSub
from gateway.recording import Recorder
from gateway.runtime.hub import Hub
from gateway.transports.idle import IdleReaper
from gateway.transports.outbound_budget import OutboundBudget
from gateway.transports.peer import parse_networks

if TYPE_CHECKING:
    from gateway.runtime.connection import Connection

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


class Services:
    """Settings, pub/sub, routing, connections and limits of one node."""

    def __init__(
        self,
        settings: Settings,
        pubsub: PubSub,
        router: Router,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.pubsub = pubsub
        self.router = router
        self.clock = clock
        self.hub = Hub()
        connections = settings.connections
        self.outbound = OutboundBudget(connections.outbound_budget_bytes)
        self.idle = IdleReaper(connections.idle_timeout_ms / 1000)
        self.limiter = RateLimiter(
            limiter_specs(settings.rates), clock, max_keys=settings.rates.rate_limit_max_keys
        )
        self.limits_on = settings.rates.rate_limits
        self._floods: dict[str, FloodTracker] = {}
        try:
            self.trusted_proxies = parse_networks(connections.trusted_proxies)
        except ValueError as exc:
            raise ConfigError(f"trusted_proxies: {exc}") from None
        self.authenticator = build_authenticator(settings.auth)
        self.origin_check = build_origin_check(settings.listen)
        self.recorder: Recorder | None = (
            Recorder(settings.recording.record_dir, settings.recording.record_sample_rate)
            if settings.recording.record_dir
            else None
        )
        # Filled by the composition root when those features are on.
        self.extras: dict[str, Any] = {}

    # -- admission of pushes and joins ------------------------------------------------------
    def admit_push(self, conn: Connection, klass: EventClass) -> dict[str, str] | None:
        """None to let a push of class `klass` (`labels.classify_event`) through, or the error
        response of a refusal. Classes without a bucket (control, echo unless configured) pass."""
        if not self.limits_on or self.limiter.allow(conn.info.user_id, klass):
            return None
        return self._refused(conn, klass)

    def admit_join(self, conn: Connection, msg: Message) -> dict[str, str] | None:
        if not self.limits_on or self.limiter.allow(conn.id, "join"):
            return None
        return self._refused(conn, "join")

    def admit_connect(self, peer: str) -> bool:
        return not self.limits_on or self.limiter.allow(peer, "connect")

    def _refused(self, conn: Connection, klass: str) -> dict[str, str]:
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

    def forget(self, conn: Connection) -> None:
        self._floods.pop(conn.id, None)
        self.limiter.forget(conn.id)
