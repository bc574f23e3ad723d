"""What the transports use of their node; built by the composition root (`app.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.auth.authenticator import Authenticator
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
    origin_check: Callable[[web.Request], bool] | None  # None: every origin is allowed
    trusted_proxies: tuple[Network, ...]
    outbound: OutboundBudget
    idle: IdleReaper
    recorder: Recorder | None
