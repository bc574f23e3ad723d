"""JWT verification (HS*, RS*, PS*, ES*, EdDSA) with keys from config or a JWKS file on disk.

PyJWT checks the signature, `iss` and `aud`; `exp` and `nbf` are checked here against the clock
the caller passes in, with PyJWT's semantics (`exp <= now - leeway` is expired, `nbf > now +
leeway` is not yet valid), so tests control time. Each algorithm family only ever sees keys of
its own type: an HMAC token is never checked against a public key, which rules out the classic
algorithm-confusion forgery.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import jwt as pyjwt
import msgspec
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.auth.result import Rejected, Verified, VerifyResult

SUPPORTED_ALGORITHMS: Final = frozenset(
    {
        "HS256",
        "HS384",
        "HS512",
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
    }
)
MAX_TOKEN_CHARS: Final = 8_192
MAX_JWKS_BYTES: Final = 1_000_000
_HMAC_MIN_BYTES: Final = {"HS256": 32, "HS384": 48, "HS512": 64}
_RSA_MIN_BITS: Final = 2048  # NIST SP 800-131A, and PyJWT's own threshold
_EC_CURVES: Final = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}


class JwtConfigError(ValueError):
    """The JWT settings cannot work: unknown algorithm, unreadable or malformed key material."""


class JwtSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How JWTs are checked. Configure a secret (HS*), a PEM public key, a JWKS file, or several."""

    algorithms: tuple[str, ...] = ("HS256", "RS256", "ES256")
    secret: str | None = None
    public_key_file: str | None = None
    jwks_file: str | None = None
    issuer: str | None = None
    audience: str | None = None
    user_claim: str = "sub"
    leeway: float = 0.0

    @property
    def has_keys(self) -> bool:
        return bool(self.secret or self.public_key_file or self.jwks_file)


PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


class _Key(msgspec.Struct, frozen=True):
    """One verification key: its kid and pinned alg when a JWKS gave them."""

    key: Any
    kid: str | None = None
    alg: str | None = None


def _fits(alg: str, key: Any) -> bool:
    """Whether `key` is of the type (and curve) that algorithm `alg` verifies with."""
    if alg.startswith("HS"):
        return isinstance(key, bytes) and len(key) >= _HMAC_MIN_BYTES[alg]
    if alg.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= _RSA_MIN_BITS
    if alg.startswith("ES"):
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _EC_CURVES[alg]
    return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)


def load_pem_key(pem: bytes) -> PublicKey:
    """Parse a PEM public key (RSA, EC or Ed25519/Ed448)."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise JwtConfigError(f"not a PEM public key: {exc}") from None
    if not isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        raise JwtConfigError(f"unsupported public key type {type(key).__name__}")
    _check_strength(key, "the public key")
    return key


def _check_strength(key: Any, what: str) -> None:
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _RSA_MIN_BITS:
        raise JwtConfigError(
            f"{what} is a {key.key_size}-bit RSA key; {_RSA_MIN_BITS} is the minimum"
        )
    if isinstance(key, bytes) and len(key) < _HMAC_MIN_BYTES["HS256"]:
        raise JwtConfigError(f"{what} is an HMAC key shorter than 32 bytes")


def load_jwks(document: dict[str, Any]) -> list[_Key]:
    """Parse a JWKS document (`{"keys": [...]}`); encryption-only keys are left out."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwtConfigError('a JWKS document must be an object with a "keys" list')
    keys: list[_Key] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise JwtConfigError(f"JWKS key #{index} is not an object")
        if entry.get("use", "sig") != "sig":
            continue
        try:
            jwk = pyjwt.PyJWK(entry)
        except pyjwt.PyJWTError as exc:
            raise JwtConfigError(f"JWKS key #{index} is unusable: {exc}") from None
        _check_strength(jwk.key, f"JWKS key #{index}")
        kid = entry.get("kid")
        alg = entry.get("alg")
        keys.append(
            _Key(
                key=jwk.key,
                kid=kid if isinstance(kid, str) else None,
                alg=alg if isinstance(alg, str) else None,
            )
        )
    if not keys:
        raise JwtConfigError("the JWKS document has no signing keys")
    return keys


class JwtVerifier:
    """Verifies JWTs against the configured keys; `verify` returns the claims or a refusal."""

    def __init__(
        self,
        settings: JwtSettings,
        *,
        public_key_pem: bytes | None = None,
        jwks: dict[str, Any] | None = None,
    ) -> None:
        unknown = [a for a in settings.algorithms if a not in SUPPORTED_ALGORITHMS]
        if unknown or not settings.algorithms:
            raise JwtConfigError(f"unsupported JWT algorithms {unknown or 'none given'}")
        shortest = max((_HMAC_MIN_BYTES.get(a, 0) for a in settings.algorithms), default=0)
        if settings.secret and len(settings.secret.encode("utf-8")) < shortest:
            # RFC 7518 section 3.2: an HMAC key must be at least as long as the hash output.
            raise JwtConfigError(f"the JWT secret must be at least {shortest} bytes long")
        if settings.leeway < 0:
            raise JwtConfigError("JWT leeway must not be negative")
        self._settings = settings
        self._hmac = settings.secret.encode("utf-8") if settings.secret else None
        self._public = load_pem_key(public_key_pem) if public_key_pem else None
        self._jwks = load_jwks(jwks) if jwks is not None else []

    @classmethod
    def from_settings(cls, settings: JwtSettings) -> JwtVerifier:
        """Build a verifier, reading the PEM and JWKS files named in the settings once."""
        pem = _read(settings.public_key_file, "public key") if settings.public_key_file else None
        jwks = None
        if settings.jwks_file:
            try:
                jwks = json.loads(_read(settings.jwks_file, "JWKS"))
            except ValueError as exc:
                raise JwtConfigError(f"JWKS file is not JSON: {exc}") from None
        return cls(settings, public_key_pem=pem, jwks=jwks)

    def verify(self, token: str | None, *, now: float) -> VerifyResult:
        """Check `token` at Unix time `now` (seconds); never raises for bad input."""
        if token is None:
            return Rejected("missing", "no token")
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            return Rejected("invalid", "token is not a short ASCII string")
        try:
            header = pyjwt.get_unverified_header(token)
        except pyjwt.PyJWTError:
            return Rejected("invalid", "malformed JWT")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._settings.algorithms:
            return Rejected("invalid", f"JWT algorithm {str(alg)[:16]!r} is not allowed")
        key = self._select_key(alg, header.get("kid"))
        if isinstance(key, Rejected):
            return key
        try:
            claims = pyjwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except pyjwt.InvalidAudienceError:
            return Rejected("invalid", "JWT audience does not match")
        except pyjwt.InvalidIssuerError:
            return Rejected("invalid", "JWT issuer does not match")
        except pyjwt.InvalidSignatureError:
            return Rejected("invalid", "JWT signature mismatch")
        except pyjwt.PyJWTError as exc:
            return Rejected("invalid", f"JWT refused: {type(exc).__name__}")
        return self._check_times(claims, now)

    def user_id(self, claims: dict[str, Any]) -> str | None:
        """The user id from the configured claim: a non-empty string, or an integer as text."""
        value = claims.get(self._settings.user_claim)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str) and value:
            return value
        return None

    def _select_key(self, alg: str, kid: object) -> Any:
        if alg.startswith("HS") and self._hmac is not None:
            return self._hmac
        candidates = [k for k in self._jwks if k.alg in (None, alg) and _fits(alg, k.key)]
        if kid is not None:
            chosen = [k for k in candidates if k.kid == kid]
        else:
            # Without a kid only an unambiguous set can be used; guessing would hide mistakes.
            chosen = candidates if len(candidates) == 1 else []
        if chosen:
            return chosen[0].key
        if self._public is not None and _fits(alg, self._public):
            return self._public
        if kid is None and len(candidates) > 1:
            return Rejected("invalid", "token has no kid and several JWKS keys could verify it")
        if kid is not None and self._jwks:
            return Rejected("invalid", "no JWKS key with the token's kid")
        return Rejected("invalid", f"no configured key verifies {alg}")

    def _check_times(self, claims: dict[str, Any], now: float) -> VerifyResult:
        leeway = self._settings.leeway
        for name in ("exp", "nbf"):
            value = claims.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                return Rejected("invalid", f"JWT {name} is not a number")
        exp = claims.get("exp")
        if exp is not None and exp <= now - leeway:
            return Rejected("expired", "JWT has expired")
        nbf = claims.get("nbf")
        if nbf is not None and nbf > now + leeway:
            return Rejected("invalid", "JWT is not valid yet (nbf)")
        if self.user_id(claims) is None:
            return Rejected("invalid", f"JWT claim {self._settings.user_claim!r} is missing")
        return Verified(claims)


def _read(path: str, what: str) -> bytes:
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_JWKS_BYTES + 1)
    except OSError as exc:
        raise JwtConfigError(f"cannot read the {what} file {path!r}: {exc.strerror}") from None
    if len(data) > MAX_JWKS_BYTES:
        raise JwtConfigError(f"the {what} file {path!r} is larger than {MAX_JWKS_BYTES} bytes")
    return data
