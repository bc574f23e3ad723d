"""What the transports use of their node; built by the composition root (`app.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.authenticator import Authenticator
from gateway.auth.setup import OriginCheck
from gateway.config import ConnectionsConfig, LongPollConfig
from gateway.recording import Recorder
from gateway.runtime.parts import ConnectionParts
from gateway.transports.idle import IdleReaper
from gateway.transports.outbound_budget import OutboundBudget
from gateway.transports.peer import Network


@dataclass(frozen=True, slots=True)
class TransportParts:
    connection: ConnectionParts  # handed to each `Connection`
    node: str
    limits: ConnectionsConfig
    longpoll: LongPollConfig
    authenticator: Authenticator
    # (Origin header, request scheme, Host header) -> allowed; None: every origin is allowed
    origin_check: OriginCheck | None
    trusted_proxies: tuple[Network, ...]
    outbound: OutboundBudget
    idle: IdleReaper
    recorder: Recorder | None
