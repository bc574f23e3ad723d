"""Builds the connect-time checks (identity, origin) from the gateway's Settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from yarl import URL

from gateway.auth.authenticator import (
    Authenticator,
    AuthSettings,
    parse_algorithms,
    parse_max_age,
)
from gateway.auth.origin import OriginConfigError, origin_allowed, parse_origin_policy
from gateway.auth.phoenix_token import Digest
from gateway.config import AuthConfig, ListenConfig
from gateway.errors import ConfigError


def auth_settings(s: AuthConfig) -> AuthSettings:
    if s.phoenix_key_digest not in ("sha256", "sha384", "sha512"):
        raise ConfigError("phoenix_key_digest is sha256, sha384 or sha512")
    return AuthSettings(
        allow_anonymous=s.allow_anonymous,
        trust_token_as_user_id=s.trust_token_as_user_id,
        phoenix_secret_key_base=s.phoenix_secret_key_base or None,
        phoenix_token_salt=s.phoenix_token_salt,
        phoenix_token_max_age=parse_max_age(s.phoenix_token_max_age),
        phoenix_key_iterations=s.phoenix_key_iterations,
        phoenix_key_length=s.phoenix_key_length,
        phoenix_key_digest=cast(Digest, s.phoenix_key_digest),
        jwt_algorithms=parse_algorithms(s.jwt_algorithms),
        jwt_secret=s.jwt_secret or None,
        jwt_public_key_file=s.jwt_public_key_file or None,
        jwt_jwks_file=s.jwt_jwks_file or None,
        jwt_issuer=s.jwt_issuer or None,
        jwt_audience=s.jwt_audience or None,
        jwt_user_claim=s.jwt_user_claim,
        jwt_leeway=s.jwt_leeway,
    )


def build_authenticator(s: AuthConfig) -> Authenticator:
    return Authenticator(auth_settings(s))


# (Origin header, the request's scheme, its Host header) -> whether the socket may connect.
OriginCheck = Callable[[str | None, str, str], bool]


def build_origin_check(s: ListenConfig) -> OriginCheck | None:
    """None when every origin is allowed, else a check of a request's Origin header."""
    try:
        policy = parse_origin_policy(s.check_origin, host=s.url_host)
    except OriginConfigError as exc:
        raise ConfigError(str(exc)) from None
    if policy.mode == "off":
        return None

    def check(origin: str | None, scheme: str, authority: str) -> bool:
        if origin is None:
            return True
        try:
            url = URL.build(scheme=scheme, authority=authority)
        except ValueError:
            return False
        port = url.port or (443 if scheme == "https" else 80)
        return origin_allowed(origin, policy, scheme, url.host or "", port)

    return check
