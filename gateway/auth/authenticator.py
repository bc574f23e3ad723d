"""The connect-time policy: turn a socket's token (or its absence) into an identity or a refusal.

A token comes from the transport (`auth_token`: phoenix.js `authToken` over
`Sec-WebSocket-Protocol`, or long-poll's `X-Phoenix-AuthToken`) or else from the `token` connect
param. Phoenix.Tokens (recognised by their `SFMyNTY.`-style header) go to the Phoenix.Token
verifier and anything else to JWT; with only one of them configured, it sees every token.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import msgspec

from gateway.auth import etf
from gateway.auth.etf import Atom
from gateway.auth.jwt import JwtConfigError, JwtSettings, JwtVerifier
from gateway.auth.phoenix_token import Digest, KeyOptions, PhoenixTokenVerifier
from gateway.auth.result import Reason, Rejected
from gateway.errors import ConfigError

MAX_USER_ID_CHARS: Final = 256
_PHOENIX_HEADERS: Final = ("SFMyNTY.", "SFMzODQ.", "SFM1MTI.")
_USER_ID_KEYS: Final = ("user_id", "id", "sub")

Method = Literal["phoenix_token", "jwt", "trusted_token", "anonymous"]


class AuthSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Auth configuration; empty strings count as unset, like absent environment variables."""

    allow_anonymous: bool = True
    trust_token_as_user_id: bool = False
    phoenix_secret_key_base: str | None = None
    phoenix_token_salt: str = "user socket"
    # Seconds; None trusts the max_age embedded in each token (Phoenix.Token's own default).
    phoenix_token_max_age: float | None = 86_400
    phoenix_key_iterations: int = 1000
    phoenix_key_length: int = 32
    phoenix_key_digest: Digest = "sha256"
    jwt_algorithms: tuple[str, ...] = ("HS256", "RS256", "ES256")
    jwt_secret: str | None = None
    jwt_public_key_file: str | None = None
    jwt_jwks_file: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_user_claim: str = "sub"
    jwt_leeway: float = 0.0

    def jwt_settings(self) -> JwtSettings:
        return JwtSettings(
            algorithms=self.jwt_algorithms,
            secret=self.jwt_secret or None,
            public_key_file=self.jwt_public_key_file or None,
            jwks_file=self.jwt_jwks_file or None,
            issuer=self.jwt_issuer or None,
            audience=self.jwt_audience or None,
            user_claim=self.jwt_user_claim,
            leeway=self.jwt_leeway,
        )


class Identity(msgspec.Struct, frozen=True):
    """Who a connection is. `claims` holds the verified token's contents as JSON-like values."""

    user_id: str
    authenticated: bool
    method: Method
    claims: dict[str, Any] = {}


class Refusal(msgspec.Struct, frozen=True):
    """Why a connection is refused; `detail` is safe to log and never contains the token."""

    reason: Reason
    detail: str


def random_uuid() -> str:
    """A random (version 4) UUID string, as `str(uuid.uuid4())` spells it: the same 122 random
    bits without building a `UUID` (a connect of an anonymous socket makes one)."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


class Authenticator:
    """Applies `AuthSettings` to each connect; `clock` returns Unix seconds (wall time)."""

    def __init__(
        self,
        settings: AuthSettings,
        clock: Callable[[], float] = time.time,
        new_user_id: Callable[[], str] = random_uuid,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._new_user_id = new_user_id
        self._phoenix: PhoenixTokenVerifier | None = None
        self._jwt: JwtVerifier | None = None
        try:
            if settings.phoenix_secret_key_base:
                key = KeyOptions(
                    iterations=settings.phoenix_key_iterations,
                    length=settings.phoenix_key_length,
                    digest=settings.phoenix_key_digest,
                )
                self._phoenix = PhoenixTokenVerifier(
                    settings.phoenix_secret_key_base,
                    settings.phoenix_token_salt,
                    max_age=settings.phoenix_token_max_age,
                    key=key,
                )
            jwt_settings = settings.jwt_settings()
            if jwt_settings.has_keys:
                self._jwt = JwtVerifier.from_settings(jwt_settings)
        except (JwtConfigError, ValueError) as exc:
            raise ConfigError(f"auth settings: {exc}") from exc
        if not (settings.allow_anonymous or settings.trust_token_as_user_id or self.verifies):
            raise ConfigError(
                "anonymous connections are disabled but no Phoenix.Token secret, JWT key or "
                "trust_token_as_user_id is configured: every connection would be refused"
            )

    @property
    def verifies(self) -> bool:
        """Whether any token verifier is configured."""
        return self._phoenix is not None or self._jwt is not None

    def authenticate(self, params: Mapping[str, Any], auth_token: str | None) -> Identity | Refusal:
        """Decide a connect from its params and the transport's auth token, if any."""
        token: object = auth_token if auth_token else params.get("token")
        if token is None or token == "":
            if self.settings.allow_anonymous:
                return self._anonymous()
            return Refusal("missing", "no token in authToken, X-Phoenix-AuthToken or params")
        if not isinstance(token, str):
            return Refusal("invalid", "the token param is not a string")
        if self.settings.trust_token_as_user_id:
            if len(token) > MAX_USER_ID_CHARS:
                return Refusal("invalid", "token too long to be taken as a user id")
            return Identity(token, True, "trusted_token")
        if self._phoenix is not None and (self._jwt is None or token.startswith(_PHOENIX_HEADERS)):
            return self._with_phoenix(self._phoenix, token)
        if self._jwt is not None:
            return self._with_jwt(self._jwt, token)
        # Nothing can check the token, so it proves nothing; the connection stays anonymous.
        return self._anonymous()

    def _anonymous(self) -> Identity:
        return Identity(self._new_user_id(), False, "anonymous")

    def _with_phoenix(self, verifier: PhoenixTokenVerifier, token: str) -> Identity | Refusal:
        result = verifier.verify(token, now_ms=math.floor(self._clock() * 1000))
        if isinstance(result, Rejected):
            return Refusal(result.reason, f"phoenix token: {result.detail}")
        user_id = user_id_from_term(result.data)
        if user_id is None:
            return Refusal("invalid", "phoenix token: its data carries no usable user id")
        data = to_json_like(result.data)
        claims = data if isinstance(data, dict) else {"data": data}
        return Identity(user_id, True, "phoenix_token", claims)

    def _with_jwt(self, verifier: JwtVerifier, token: str) -> Identity | Refusal:
        result = verifier.verify(token, now=self._clock())
        if isinstance(result, Rejected):
            return Refusal(result.reason, f"jwt: {result.detail}")
        claims: dict[str, Any] = result.data
        user_id = verifier.user_id(claims)
        if user_id is None or len(user_id) > MAX_USER_ID_CHARS:
            return Refusal("invalid", "jwt: no usable user id claim")
        return Identity(user_id, True, "jwt", claims)


def parse_max_age(text: str) -> float | None:
    """`GATEWAY_PHOENIX_TOKEN_MAX_AGE`: seconds, `infinity`, or `embedded` (None)."""
    word = text.strip().lower()
    if word == "embedded":
        return None
    if word in ("infinity", "inf"):
        return math.inf
    try:
        value = float(word)
    except ValueError:
        raise ConfigError(f"max age {text!r} is not seconds, 'infinity' or 'embedded'") from None
    if math.isnan(value):
        raise ConfigError("max age must not be NaN")
    return value


def parse_algorithms(text: str) -> tuple[str, ...]:
    """`GATEWAY_JWT_ALGORITHMS`: a comma list such as `HS256,RS256`."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def user_id_from_term(data: etf.Term) -> str | None:
    """A user id from Phoenix.Token data: an integer, a UTF-8 binary, or a map holding one
    under `user_id`, `id` or `sub` (as string or atom keys, first found wins)."""
    if isinstance(data, dict):
        for name in _USER_ID_KEYS:
            for key in (name.encode(), Atom(name)):
                if key in data:
                    return _scalar_user_id(data[key])
        return None
    return _scalar_user_id(data)


def _scalar_user_id(value: etf.Term) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    else:
        return None
    return text if 0 < len(text) <= MAX_USER_ID_CHARS else None


def to_json_like(term: etf.Term) -> Any:
    """Token data as JSON-ready values: binaries become text, atoms strings, tuples lists."""
    if isinstance(term, bytes):
        return term.decode("utf-8", errors="replace")
    if isinstance(term, Atom):
        return str(term)
    if isinstance(term, tuple | list):
        return [to_json_like(item) for item in term]
    if isinstance(term, dict):
        return {_key_text(key): to_json_like(value) for key, value in term.items()}
    return term


def _key_text(key: etf.Term) -> str:
    if key is None or isinstance(key, bool):
        return "nil" if key is None else ("true" if key else "false")
    value = to_json_like(key)
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()
