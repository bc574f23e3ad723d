"""The ICE servers a room member's `RTCPeerConnection` uses: STUN as configured, TURN with
short-lived credentials.

TURN credentials follow the "TURN REST API" scheme that coturn's `use-auth-secret` verifies
(also Twilio's and most WebRTC services'): the username is `<expiry unix seconds>:<user_id>`
and the credential is `base64(HMAC-SHA1(secret, username))`. coturn recomputes the HMAC with
each of its `static-auth-secret`s and refuses a username whose expiry has passed, so the
gateway and coturn share a secret and nothing else: no user database, no call between them.

The list is shaped as `RTCIceServer`s, so `new RTCPeerConnection({iceServers: list})` takes it
as is. Pure: no I/O, no clock of its own (the caller passes `now`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

import msgspec

from gateway.errors import ConfigError

# RFC 7064 (stun:) and RFC 7065 (turn:, turns:): host, optional port, and for TURN an optional
# transport. No `//`: browsers reject `stun://host`.
_URL: Final = re.compile(
    r"(?P<scheme>stun|turn|turns):"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?"
)
# STUN's USERNAME attribute holds fewer than 513 bytes (RFC 8489 section 14.3).
_MAX_USERNAME_BYTES: Final = 512


class IceServer(msgspec.Struct, omit_defaults=True):
    """One `RTCIceServer`: `username` and `credential` only on TURN entries."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


def check_url(url: str) -> str:
    """`url` if it is a well-formed stun:, turn: or turns: URL, else ConfigError."""
    match = _URL.fullmatch(url)
    if match is None:
        raise ConfigError(
            f"{url!r} is not a stun:, turn: or turns: URL (host[:port], TURN may add "
            "?transport=udp or ?transport=tcp)"
        )
    if match["scheme"] == "stun" and match["transport"] is not None:
        raise ConfigError(f"{url!r}: ?transport= belongs to turn: and turns: URLs only")
    port = match["port"]
    if port is not None and not 0 < int(port) < 65536:
        raise ConfigError(f"{url!r}: port out of range")
    return url


def split_list(text: str) -> tuple[str, ...]:
    """A comma list, items stripped; empty text is an empty list, an empty item an error."""
    if not text.strip():
        return ()
    items = tuple(item.strip() for item in text.split(","))
    if not all(items):
        raise ConfigError(f"empty item in the list {text!r}")
    return items


def turn_credential(secret: str, username: str) -> str:
    """What coturn's use-auth-secret expects for `username`: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_username(user_id: str, expires_at: int) -> str:
    """`<expiry>:<user_id>`; a user id too long for STUN's USERNAME goes as its SHA-256 (hex),
    which still names one user in coturn's logs and quotas."""
    username = f"{expires_at}:{user_id}"
    if len(username.encode()) > _MAX_USERNAME_BYTES:
        username = f"{expires_at}:{hashlib.sha256(user_id.encode()).hexdigest()}"
    return username


class IcePolicy(msgspec.Struct, frozen=True):
    """Which ICE servers a member gets, and TURN credentials valid for `ttl_s` seconds.

    Of `secrets`, the first signs; the others are accepted so the same list can feed coturn's
    `static-auth-secret` lines during a rotation (see docs/operations.md).
    """

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    ttl_s: int = 3600
    turn_for_anonymous: bool = False

    @classmethod
    def parse(
        cls,
        stun_urls: str = "",
        turn_urls: str = "",
        turn_secret: str = "",
        ttl_s: int = 3600,
        turn_for_anonymous: bool = False,
    ) -> IcePolicy:
        """From the settings' text; ConfigError names what does not fit."""
        stun = split_list(stun_urls)
        turn = split_list(turn_urls)
        for url in stun:
            if not check_url(url).startswith("stun:"):
                raise ConfigError(f"stun_urls: {url!r} is a TURN URL; list it in turn_urls")
        for url in turn:
            if check_url(url).startswith("stun:"):
                raise ConfigError(f"turn_urls: {url!r} is a STUN URL; list it in stun_urls")
        secrets = split_list(turn_secret)
        if turn and not secrets:
            raise ConfigError("turn_urls need turn_secret (coturn's static-auth-secret)")
        if secrets and not turn:
            raise ConfigError("turn_secret is set but turn_urls is empty")
        if ttl_s < 1:
            raise ConfigError("turn_ttl_s must be at least 1")
        return cls(stun, turn, secrets, ttl_s, turn_for_anonymous)

    @property
    def configured(self) -> bool:
        """Whether any ICE server is configured; without one the join reply stays as it was."""
        return bool(self.stun_urls or self.turn_urls)

    def gives_turn(self, authenticated: bool) -> bool:
        """Relays cost bandwidth: anonymous users get TURN only when the policy says so."""
        return bool(self.turn_urls) and (authenticated or self.turn_for_anonymous)

    def servers(self, user_id: str, authenticated: bool, now: float) -> list[IceServer]:
        """The `iceServers` for `user_id` at wall-clock time `now` (Unix seconds)."""
        out: list[IceServer] = []
        if self.stun_urls:
            out.append(IceServer(list(self.stun_urls)))
        if self.gives_turn(authenticated):
            username = turn_username(user_id, int(now) + self.ttl_s)
            credential = turn_credential(self.secrets[0], username)
            out.append(IceServer(list(self.turn_urls), username, credential))
        return out
