"""What a connection uses of its node; built by the composition root (`app.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.channels.router import Router
from gateway.pubsub.core import PubSub
from gateway.runtime.admission import Admission
from gateway.runtime.hub import Hub


@dataclass(frozen=True, slots=True)
class ConnectionParts:
    hub: Hub
    router: Router
    admission: Admission
    pubsub: PubSub
    max_channels: int
