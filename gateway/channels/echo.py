"""The built-in `echo:*` channel: every push is answered with its own payload.

Load testers and health probes use it to measure round trips. JSON payloads come back
re-encoded as Phoenix would (compact, keys sorted); binary payloads come back as a kind 1
binary reply. The event `broadcast` sends its payload to everyone on the topic instead.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.channels.base import Channel, Reply, ok
from gateway.protocol import jsonenc
from gateway.protocol.messages import Payload

BROADCAST = "broadcast"
_EMPTY_OK = ok()
_INVALID = Reply("error", {"reason": "invalid payload"})


class EchoChannel(Channel):
    __slots__ = ()

    def handle_in(self, event: str, payload: Payload, ref: Any) -> Reply:
        if isinstance(payload, bytes):
            if event == BROADCAST:
                self.broadcast(BROADCAST, payload)
                return _EMPTY_OK
            return Reply("ok", payload)
        try:
            body = msgspec.Raw(jsonenc.normalize(payload))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            # Numbers out of range, or nesting past what the decoder follows: an error reply,
            # and the channel goes on.
            return _INVALID
        if event == BROADCAST:
            self.broadcast(BROADCAST, body)
            return _EMPTY_OK
        return Reply("ok", body)
