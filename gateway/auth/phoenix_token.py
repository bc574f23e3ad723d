"""Verify (and sign) tokens made by `Phoenix.Token.sign/4`, byte for byte as plug_crypto does.

Format and rules: docs/auth.md, "Phoenix.Token", and plug_crypto's
lib/plug/crypto/message_verifier.ex. A token is
`<b64url(header)>.<b64url(ETF payload)>.<b64url(HMAC)>`, the key is PBKDF2 of the endpoint's
`secret_key_base` and a salt, and the payload is `{data, signed_at_ms, max_age_s}`.

Decision on future-dated tokens: like plug_crypto after 2.1.1, a token whose `signed_at` is later
than the verifier's clock is `invalid`. Hosts that mint and verify tokens must keep their clocks
in sync (NTP); `future_tolerance_ms` allows a small, explicit skew when they cannot.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from functools import lru_cache
from typing import Final, Literal, TypeAlias

import msgspec

from gateway.auth import etf
from gateway.auth.etf import Atom, EtfError, EtfLimits
from gateway.auth.result import Rejected, Verified, VerifyResult

Digest: TypeAlias = Literal["sha256", "sha384", "sha512"]
MaxAge: TypeAlias = "float | Literal['infinity']"

DEFAULT_MAX_AGE_S: Final = 86_400
MAX_TOKEN_CHARS: Final = 8_192  # a token is read before it is trusted: keep the work bounded

# The first segment names the MAC digest: base64 of "HS256", "HS384", "HS512"
# (plug_crypto, lib/plug/crypto/message_verifier.ex).
_HEADER_TO_DIGEST: Final[dict[str, Digest]] = {
    "SFMyNTY": "sha256",
    "SFMzODQ": "sha384",
    "SFM1MTI": "sha512",
}
_DIGEST_TO_HEADER: Final = {digest: header for header, digest in _HEADER_TO_DIGEST.items()}
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_PAYLOAD_LIMITS: Final = EtfLimits(max_input_bytes=MAX_TOKEN_CHARS)
_INFINITY: Final = Atom("infinity")


class KeyOptions(msgspec.Struct, frozen=True):
    """PBKDF2 parameters; they must equal the minting app's `key_iterations/length/digest`."""

    iterations: int = 1000
    length: int = 32
    digest: Digest = "sha256"

    def __post_init__(self) -> None:
        if not 1 <= self.iterations <= 10_000_000:
            raise ValueError("key iterations must be between 1 and 10,000,000")
        if not 1 <= self.length <= 1024:
            raise ValueError("key length must be between 1 and 1024 bytes")
        if self.digest not in _DIGEST_TO_HEADER:
            raise ValueError(f"unknown key digest {self.digest!r}")


DEFAULT_KEY: Final = KeyOptions()


@lru_cache(maxsize=64)
def derive_key(secret_key_base: str, salt: str, options: KeyOptions = DEFAULT_KEY) -> bytes:
    """PBKDF2-HMAC key for one (secret, salt, options); cached because it is deliberately slow."""
    return hashlib.pbkdf2_hmac(
        options.digest,
        secret_key_base.encode("utf-8"),
        salt.encode("utf-8"),
        options.iterations,
        options.length,
    )


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    if not _B64URL.fullmatch(text):
        return None
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        return None


def sign(
    secret_key_base: str,
    salt: str,
    data: etf.Term,
    *,
    signed_at_ms: int,
    max_age: MaxAge = DEFAULT_MAX_AGE_S,
    key: KeyOptions = DEFAULT_KEY,
    digest: Digest = "sha256",
    compressed: bool = False,
) -> str:
    """Mint a token as `Phoenix.Token.sign/4` does (it always uses HS256, the default here)."""
    embedded: etf.Term = _INFINITY if max_age == "infinity" else max_age
    payload = etf.encode((data, signed_at_ms, embedded), compressed=compressed)
    signing_input = f"{_DIGEST_TO_HEADER[digest]}.{_b64url_encode(payload)}"
    mac = hmac.new(derive_key(secret_key_base, salt, key), signing_input.encode(), digest)
    return f"{signing_input}.{_b64url_encode(mac.digest())}"


class PhoenixTokenVerifier:
    """Checks tokens for one secret and salt; `max_age=None` trusts the age embedded in each."""

    def __init__(
        self,
        secret_key_base: str,
        salt: str,
        *,
        max_age: MaxAge | None = None,
        key: KeyOptions = DEFAULT_KEY,
        future_tolerance_ms: int = 0,
    ) -> None:
        if not secret_key_base:
            raise ValueError("secret_key_base must not be empty")
        if isinstance(max_age, float) and math.isnan(max_age):
            raise ValueError("max_age must be a number of seconds or 'infinity'")
        self._key = derive_key(secret_key_base, salt, key)
        self._max_age = max_age
        self._future_tolerance_ms = future_tolerance_ms

    def verify(self, token: str | None, *, now_ms: int) -> VerifyResult:
        """Verify `token` at time `now_ms` (Unix milliseconds); never raises for bad input."""
        if token is None:
            return Rejected("missing", "no token")
        payload = self._open(token)
        if isinstance(payload, Rejected):
            return payload
        try:
            term = etf.decode(payload, _PAYLOAD_LIMITS)
        except EtfError as exc:
            # Only a holder of the secret can get here, so this is a misconfigured minter.
            return Rejected("invalid", f"signed payload is not a supported term: {exc}")
        return self._check(term, now_ms)

    def _open(self, token: str) -> bytes | Rejected:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            return Rejected("invalid", "token is not a short ASCII string")
        parts = token.split(".")
        if len(parts) != 3:
            return Rejected("invalid", "token does not have three segments")
        header, encoded_payload, encoded_mac = parts
        digest = _HEADER_TO_DIGEST.get(header)
        if digest is None:
            return Rejected("invalid", "unknown token header")
        payload = _b64url_decode(encoded_payload)
        mac = _b64url_decode(encoded_mac)
        if payload is None or mac is None:
            return Rejected("invalid", "token segment is not base64url")
        # The MAC covers the segments exactly as they appear in the token (as in
        # plug_crypto's message_verifier.ex).
        expected = hmac.new(self._key, f"{header}.{encoded_payload}".encode(), digest).digest()
        if not hmac.compare_digest(expected, mac):
            return Rejected("invalid", "signature mismatch (wrong secret or salt, or tampered)")
        return payload

    def _check(self, term: etf.Term, now_ms: int) -> VerifyResult:
        embedded: etf.Term
        if isinstance(term, tuple) and len(term) == 3:
            data, signed, embedded = term
        elif isinstance(term, tuple) and len(term) == 2:
            data, signed = term  # plug_crypto 1.1 tokens carry no max_age
            embedded = DEFAULT_MAX_AGE_S
        elif isinstance(term, dict) and set(term) == {Atom("data"), Atom("signed")}:
            data, signed = term[Atom("data")], term[Atom("signed")]  # Phoenix's original form
            embedded = DEFAULT_MAX_AGE_S
        else:
            return Rejected("invalid", "payload is not {data, signed_at, max_age}")
        if not isinstance(signed, int) or isinstance(signed, bool):
            return Rejected("invalid", "signed_at is not an integer")
        max_age = self._max_age if self._max_age is not None else embedded
        reason = self._age_problem(signed, max_age, now_ms)
        if reason is not None:
            return reason
        return Verified(data)

    def _age_problem(self, signed: int, max_age: etf.Term, now_ms: int) -> Rejected | None:
        if max_age == "infinity":
            return None
        if not isinstance(max_age, int | float) or isinstance(max_age, bool):
            return Rejected("invalid", "max_age is neither a number nor :infinity")
        if max_age <= 0:
            return Rejected("expired", "max_age is not positive")
        if signed > now_ms + self._future_tolerance_ms:
            return Rejected("invalid", "token is signed in the future")
        if math.isinf(max_age):
            return None
        # plug_crypto truncates max_age * 1000 toward zero, so fractional seconds work (0.1 s).
        if signed + math.trunc(max_age * 1000) < now_ms:
            return Rejected("expired", "token is older than max_age")
        return None


def verify(
    secret_key_base: str,
    salt: str,
    token: str | None,
    *,
    now_ms: int,
    max_age: MaxAge | None = None,
    key: KeyOptions = DEFAULT_KEY,
) -> VerifyResult:
    """One-shot form of `PhoenixTokenVerifier(...).verify(token, now_ms=...)`."""
    return PhoenixTokenVerifier(secret_key_base, salt, max_age=max_age, key=key).verify(
        token, now_ms=now_ms
    )
