"""Inbound messages and outbound frames, the values every layer passes around.

A payload is `msgspec.Raw` (JSON, kept unparsed until a handler needs it) or `bytes` (a binary
payload of a V2 binary frame). Refs are kept as the JSON values the client sent so replies echo
them with the same type (docs/wire.md, "Frames").
"""

from __future__ import annotations

from typing import Any

import msgspec

Payload = msgspec.Raw | bytes

HEARTBEAT = "heartbeat"
PHOENIX_TOPIC = "phoenix"
PHX_JOIN = "phx_join"
PHX_LEAVE = "phx_leave"
PHX_REPLY = "phx_reply"
PHX_CLOSE = "phx_close"
PHX_ERROR = "phx_error"
PRESENCE_STATE = "presence_state"
PRESENCE_DIFF = "presence_diff"


class Message(msgspec.Struct, gc=False):
    """One decoded client frame."""

    join_ref: Any
    ref: Any
    topic: str
    event: str
    payload: Payload

    @property
    def binary(self) -> bool:
        return isinstance(self.payload, bytes)


class Frame(msgspec.Struct, gc=False, eq=False):
    """One encoded server frame: the bytes of a text (UTF-8 JSON) or binary message.

    The WebSocket framing of `data` is cached on first use, so a broadcast written to many
    sockets is framed once (Phoenix's fastlane, phoenix/lib/phoenix/channel/server.ex). A Struct:
    made for every frame sent, and a Struct is made in C.
    """

    data: bytes
    text: bool = True
    ws: bytes | None = None

    def __repr__(self) -> str:
        kind = "text" if self.text else "binary"
        return f"Frame({kind}, {self.data!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and other.data == self.data and other.text == self.text

    def __hash__(self) -> int:
        return hash((self.data, self.text))
