"""Phoenix.Token verification against the section 7.5 vectors and every refusal path."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

import pytest

from gateway.auth import etf
from gateway.auth.etf import Atom
from gateway.auth.phoenix_token import (
    KeyOptions,
    PhoenixTokenVerifier,
    derive_key,
    sign,
    verify,
)
from gateway.auth.result import Rejected, Verified, VerifyResult

SECRET = "abcdefgh" * 8
SALT = "user socket"
SIGNED_AT_MS = 1_700_000_000_000
DAY_MS = 86_400_000

VECTORS = [
    (42, "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.Px7HbQy1EbxFxR9Nw7Yu9lo3m8mKLfdITBiZqF-seNQ"),
    (
        b"user-1",
        "SFMyNTY.g2gDbQAAAAZ1c2VyLTFuBgAAaOXPiwFiAAFRgA.LCx-JsbZoJLd3_u1GkkmxMRphLm3IytMKQIIzqu5bzE",
    ),
    (
        {b"id": 7},
        "SFMyNTY.g2gDdAAAAAFtAAAAAmlkYQduBgAAaOXPiwFiAAFRgA.DlqL57WT1TeTG5HfwhqxNc5_lEoFHKVIMGbpjGSVxgU",
    ),
]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forge(payload: bytes, *, header: str = "SFMyNTY", secret: str = SECRET) -> str:
    """A correctly signed token around an arbitrary payload, for shapes `sign` never makes."""
    signing_input = f"{header}.{_b64(payload)}"
    mac = hmac.new(derive_key(secret, SALT), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _reason(result: VerifyResult) -> str | None:
    return result.reason if isinstance(result, Rejected) else None


def test_derived_key_matches_vector() -> None:
    assert derive_key(SECRET, SALT).hex() == (
        "d3f12b5b79f2122342c5c52cb5d451bb588e5c5af0a7c73cf6a90cc45b397d80"
    )


@pytest.mark.parametrize(("data", "token"), VECTORS)
def test_vectors_sign_and_verify_exactly(data: etf.Term, token: str) -> None:
    assert sign(SECRET, SALT, data, signed_at_ms=SIGNED_AT_MS) == token
    assert verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS + 1000) == Verified(data)
    # Signed in 2023 with max_age 86400: expired by the verifier's option or the embedded one.
    now = SIGNED_AT_MS + DAY_MS + 1
    assert verify(SECRET, SALT, token, now_ms=now) == Rejected(
        "expired", "token is older than max_age"
    )
    assert verify(SECRET, SALT, token, now_ms=now, max_age="infinity") == Verified(data)


def test_expiry_boundary_is_inclusive() -> None:
    token = VECTORS[0][1]
    assert isinstance(verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS + DAY_MS), Verified)
    assert isinstance(verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS + DAY_MS + 1), Rejected)


def test_missing_token() -> None:
    assert verify(SECRET, SALT, None, now_ms=0) == Rejected("missing", "no token")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # MAC changed
        lambda t: t.replace("g2gDYSp", "g2gDYSq"),  # payload changed
        lambda t: "SFMzODQ" + t[7:],  # header swapped to HS384
        lambda t: "eyJhbGciOiJIUzI1NiJ9" + t[7:],  # unknown header
        lambda t: t + ".extra",
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t.replace("-", "+"),  # standard alphabet is not base64url
        lambda t: t[:20] + "é" + t[21:],
        lambda t: "",
        lambda t: "x" * 10_000,
        lambda t: t + "A",  # a segment whose length cannot be base64
    ],
)
def test_tampered_tokens_are_invalid(mangle: Callable[[str], str]) -> None:
    token = mangle(VECTORS[0][1])
    result = verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS)
    assert isinstance(result, Rejected)
    assert result.reason == "invalid"
    assert not token or token not in result.detail


def test_padded_segments_are_accepted() -> None:
    header, payload, mac = VECTORS[1][1].split(".")
    padded_mac = mac + "=" * (-len(mac) % 4)
    assert padded_mac != mac
    # The MAC covers the payload text as written, so only the MAC segment can gain padding.
    token = f"{header}.{payload}.{padded_mac}"
    assert verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS) == Verified(b"user-1")


def test_wrong_salt_or_secret_is_invalid() -> None:
    token = VECTORS[0][1]
    assert _reason(verify(SECRET, "other salt", token, now_ms=SIGNED_AT_MS)) == "invalid"
    assert _reason(verify("z" * 64, SALT, token, now_ms=SIGNED_AT_MS)) == "invalid"


def test_future_dated_token_is_invalid_unless_tolerated() -> None:
    token = sign(SECRET, SALT, 1, signed_at_ms=SIGNED_AT_MS + 500)
    assert verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS) == Rejected(
        "invalid", "token is signed in the future"
    )
    tolerant = PhoenixTokenVerifier(SECRET, SALT, future_tolerance_ms=1000)
    assert tolerant.verify(token, now_ms=SIGNED_AT_MS) == Verified(1)
    # :infinity is checked first in plug_crypto, so a future :infinity token passes.
    forever = sign(SECRET, SALT, 1, signed_at_ms=SIGNED_AT_MS + 500, max_age="infinity")
    assert verify(SECRET, SALT, forever, now_ms=SIGNED_AT_MS) == Verified(1)


def test_max_age_option_overrides_embedded() -> None:
    token = sign(SECRET, SALT, 1, signed_at_ms=SIGNED_AT_MS, max_age=10)
    now = SIGNED_AT_MS + 60_000
    assert _reason(verify(SECRET, SALT, token, now_ms=now)) == "expired"
    assert verify(SECRET, SALT, token, now_ms=now, max_age=120) == Verified(1)
    assert verify(SECRET, SALT, token, now_ms=now, max_age=float("inf")) == Verified(1)


def test_non_positive_max_age_is_expired() -> None:
    token = sign(SECRET, SALT, 1, signed_at_ms=SIGNED_AT_MS)
    for max_age in (0, -1, -0.5):
        result = verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS, max_age=max_age)
        assert result == Rejected("expired", "max_age is not positive")
    zero = sign(SECRET, SALT, 1, signed_at_ms=SIGNED_AT_MS, max_age=0)
    assert _reason(verify(SECRET, SALT, zero, now_ms=SIGNED_AT_MS)) == "expired"


def test_fractional_max_age() -> None:
    token = sign(SECRET, SALT, 1, signed_at_ms=SIGNED_AT_MS, max_age=0.1)
    payload = etf.decode(base64.urlsafe_b64decode(token.split(".")[1] + "==="))
    assert payload == (1, SIGNED_AT_MS, 0.1)
    assert verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS + 100) == Verified(1)
    assert _reason(verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS + 101)) == "expired"


@pytest.mark.parametrize(
    "data",
    [
        123456789012345678901234567890,
        -7,
        {b"user_id": 5, Atom("role"): Atom("admin")},
        [1, b"two", [3]],
        [],
        Atom("guest"),
        True,
        None,
        (b"a", 1),
        2.5,
    ],
)
def test_non_binary_payloads(data: etf.Term) -> None:
    token = sign(SECRET, SALT, data, signed_at_ms=SIGNED_AT_MS)
    assert verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS) == Verified(data)


def test_compressed_payload() -> None:
    data: etf.Term = {b"user_id": b"u" * 500, b"perms": [b"read"] * 50}
    token = sign(SECRET, SALT, data, signed_at_ms=SIGNED_AT_MS, compressed=True)
    assert base64.urlsafe_b64decode(token.split(".")[1] + "===")[:2] == bytes([131, 80])
    assert verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS) == Verified(data)


@pytest.mark.parametrize("digest", ["sha384", "sha512"])
def test_other_mac_digests_are_accepted(digest: str) -> None:
    token = sign(SECRET, SALT, b"x", signed_at_ms=SIGNED_AT_MS, digest=digest)  # type: ignore[arg-type]
    assert token.startswith({"sha384": "SFMzODQ.", "sha512": "SFM1MTI."}[digest])
    assert verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS) == Verified(b"x")


def test_custom_key_derivation_must_match() -> None:
    options = KeyOptions(iterations=10, length=64, digest="sha512")
    token = sign(SECRET, SALT, 9, signed_at_ms=SIGNED_AT_MS, key=options)
    assert verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS, key=options) == Verified(9)
    assert _reason(verify(SECRET, SALT, token, now_ms=SIGNED_AT_MS)) == "invalid"
    assert len(derive_key(SECRET, SALT, options)) == 64


def test_key_options_are_validated() -> None:
    with pytest.raises(ValueError):
        KeyOptions(iterations=0)
    with pytest.raises(ValueError):
        KeyOptions(length=0)
    with pytest.raises(ValueError):
        KeyOptions(digest="md5")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PhoenixTokenVerifier("", SALT)
    with pytest.raises(ValueError):
        PhoenixTokenVerifier(SECRET, SALT, max_age=float("nan"))


def test_legacy_payload_forms() -> None:
    two_tuple = etf.encode((b"old", SIGNED_AT_MS))
    assert verify(SECRET, SALT, _forge(two_tuple), now_ms=SIGNED_AT_MS + DAY_MS) == Verified(b"old")
    late = SIGNED_AT_MS + DAY_MS + 1
    assert _reason(verify(SECRET, SALT, _forge(two_tuple), now_ms=late)) == "expired"
    legacy_map = etf.encode({Atom("data"): b"older", Atom("signed"): SIGNED_AT_MS})
    assert verify(SECRET, SALT, _forge(legacy_map), now_ms=SIGNED_AT_MS) == Verified(b"older")


@pytest.mark.parametrize(
    "payload",
    [
        etf.encode(42),
        etf.encode((1, 2, 3, 4)),
        etf.encode({Atom("data"): 1}),
        etf.encode((1, b"not a time", 60)),
        etf.encode((1, True, 60)),
        etf.encode((1, SIGNED_AT_MS, b"60")),
        etf.encode((1, SIGNED_AT_MS, Atom("forever"))),
        bytes([131, 104, 3, 97, 1, 103]),  # a pid inside the tuple
        bytes([131, 112, 0, 0, 0, 0]),  # a function
        b"\x00garbage",
    ],
)
def test_signed_but_unsupported_payloads_are_invalid(payload: bytes) -> None:
    result = verify(SECRET, SALT, _forge(payload), now_ms=SIGNED_AT_MS)
    assert isinstance(result, Rejected)
    assert result.reason == "invalid"


def test_verifier_reuses_one_derived_key() -> None:
    verifier = PhoenixTokenVerifier(SECRET, SALT, max_age=86_400)
    before = derive_key.cache_info().hits
    PhoenixTokenVerifier(SECRET, SALT, max_age=86_400)
    assert derive_key.cache_info().hits == before + 1
    assert verifier.verify(VECTORS[2][1], now_ms=SIGNED_AT_MS) == Verified({b"id": 7})
