"""Which media server a room uses, and how its mode is decided. Pure: no I/O.

Rooms are placed by a stable hash of the room id (SHA-256, not Python's per-process `hash`),
so every gateway node, worker and restart picks the same Janus for the same room, with no
shared state. Rendezvous hashing: adding or removing a server moves only the rooms it gains or
held, not every room as `hash % n` would.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal

from gateway.errors import ConfigError

Media = Literal["mesh", "sfu"]
MEDIA_MODES: Final = ("mesh", "sfu")
_URL: Final = re.compile(r"wss?://[^\s,/?#]+(?:/[^\s,?#]*)?")


def check_sfu_url(url: str) -> str:
    """`url` if it is a ws:// or wss:// URL (Janus's WebSocket API), else ConfigError."""
    if _URL.fullmatch(url) is None:
        raise ConfigError(
            f"sfu_url {url!r} is not a ws:// or wss:// URL of a Janus WebSocket API "
            "(ws://host:8188/)"
        )
    return url


def place(room_id: str, urls: tuple[str, ...]) -> str:
    """The server of `urls` that `room_id` lives on (the same on every node)."""
    if not urls:
        raise ValueError("no SFU configured")
    return max(urls, key=lambda url: hashlib.sha256(f"{url}\n{room_id}".encode()).digest())
