"""The connect-time policy: token sources, verifier choice, anonymous ids and refusals."""

from __future__ import annotations

import itertools
import math
import uuid
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.auth.authenticator import (
    Authenticator,
    AuthSettings,
    Identity,
    Refusal,
    parse_algorithms,
    parse_max_age,
    random_uuid,
    to_json_like,
    user_id_from_term,
)
from gateway.auth.etf import Atom
from gateway.auth.phoenix_token import sign
from gateway.errors import ConfigError

SECRET_KEY_BASE = "abcdefgh" * 8
SALT = "user socket"
JWT_SECRET = "j" * 32
NOW = 1_700_000_000.0
NOW_MS = 1_700_000_000_000


def clock() -> float:
    return NOW


def phoenix_token(data: object, *, signed_at_ms: int = NOW_MS, salt: str = SALT) -> str:
    return sign(SECRET_KEY_BASE, salt, data, signed_at_ms=signed_at_ms)  # type: ignore[arg-type]


def both() -> Authenticator:
    settings = AuthSettings(phoenix_secret_key_base=SECRET_KEY_BASE, jwt_secret=JWT_SECRET)
    return Authenticator(settings, clock)


def test_anonymous_by_default_with_injected_ids() -> None:
    counter = itertools.count(1)
    auth = Authenticator(AuthSettings(), clock, new_user_id=lambda: f"anon-{next(counter)}")
    assert auth.authenticate({}, None) == Identity("anon-1", False, "anonymous")
    assert auth.authenticate({"token": ""}, "") == Identity("anon-2", False, "anonymous")
    assert not auth.verifies


def test_default_anonymous_ids_are_uuid4() -> None:
    identity = Authenticator(AuthSettings(), clock).authenticate({"vsn": "2.0.0"}, None)
    assert isinstance(identity, Identity)
    assert uuid.UUID(identity.user_id).version == 4


def test_random_uuids_are_spelled_as_uuid4s_and_use_every_variant() -> None:
    made = [random_uuid() for _ in range(2000)]
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
    assert len(set(made)) == len(made)
    assert {text[19] for text in made} == set("89ab")
    # Every other hex digit is random: each takes all 16 values over 2,000 ids.
    for i, c in enumerate(made[0]):
        if c != "-" and i not in (14, 19):
            assert len({text[i] for text in made}) == 16, i


def test_missing_token_refused_when_anonymous_is_off() -> None:
    auth = Authenticator(
        AuthSettings(allow_anonymous=False, phoenix_secret_key_base=SECRET_KEY_BASE), clock
    )
    result = auth.authenticate({"vsn": "2.0.0"}, None)
    assert isinstance(result, Refusal)
    assert result.reason == "missing"


def test_phoenix_token_from_params_and_from_auth_token() -> None:
    auth = Authenticator(AuthSettings(phoenix_secret_key_base=SECRET_KEY_BASE), clock)
    token = phoenix_token(b"user-1")
    expected = Identity("user-1", True, "phoenix_token", {"data": "user-1"})
    assert auth.authenticate({"token": token}, None) == expected
    assert auth.authenticate({}, token) == expected
    # The transport's token wins over the connect param.
    assert auth.authenticate({"token": phoenix_token(b"other")}, token) == expected


def test_section_7_5_vector_with_clock() -> None:
    auth = Authenticator(AuthSettings(phoenix_secret_key_base=SECRET_KEY_BASE), clock)
    vector = "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.Px7HbQy1EbxFxR9Nw7Yu9lo3m8mKLfdITBiZqF-seNQ"
    assert auth.authenticate({"token": vector}, None) == Identity(
        "42", True, "phoenix_token", {"data": 42}
    )
    later = Authenticator(
        AuthSettings(phoenix_secret_key_base=SECRET_KEY_BASE), lambda: NOW + 86_400.002
    )
    refusal = later.authenticate({"token": vector}, None)
    assert isinstance(refusal, Refusal)
    assert refusal.reason == "expired"
    assert vector not in refusal.detail


@pytest.mark.parametrize(
    ("data", "user_id"),
    [
        (7, "7"),
        (b"u-1", "u-1"),
        ({b"user_id": 5}, "5"),
        ({Atom("user_id"): b"a"}, "a"),
        ({b"id": b"i", b"sub": b"s"}, "i"),
        ({b"sub": b"s"}, "s"),
        ({b"user_id": b"first", b"id": b"second"}, "first"),
    ],
)
def test_user_id_from_phoenix_data(data: object, user_id: str) -> None:
    assert user_id_from_term(data) == user_id  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [True, None, Atom("admin"), b"", b"\xff", [1], (1,), 1.5, {b"name": b"x"}, b"x" * 300],
)
def test_phoenix_data_without_a_user_id_is_invalid(data: object) -> None:
    auth = Authenticator(AuthSettings(phoenix_secret_key_base=SECRET_KEY_BASE), clock)
    result = auth.authenticate({"token": phoenix_token(data)}, None)
    assert result == Refusal("invalid", "phoenix token: its data carries no usable user id")


def test_map_data_becomes_claims() -> None:
    auth = Authenticator(AuthSettings(phoenix_secret_key_base=SECRET_KEY_BASE), clock)
    token = phoenix_token({b"user_id": 9, Atom("roles"): [Atom("admin")], b"t": (1, b"x")})
    assert auth.authenticate({"token": token}, None) == Identity(
        "9", True, "phoenix_token", {"user_id": 9, "roles": ["admin"], "t": [1, "x"]}
    )


def test_bad_tokens_are_refused_not_downgraded() -> None:
    auth = Authenticator(AuthSettings(phoenix_secret_key_base=SECRET_KEY_BASE), clock)
    wrong_salt = phoenix_token(b"u", salt="other")
    future = phoenix_token(b"u", signed_at_ms=NOW_MS + 5000)
    for token, reason in (
        (wrong_salt, "invalid"),
        (future, "invalid"),
        ("garbage", "invalid"),
        (phoenix_token(b"u", signed_at_ms=NOW_MS - 86_401_000), "expired"),
    ):
        result = auth.authenticate({"token": token}, None)
        assert isinstance(result, Refusal), token
        assert result.reason == reason
        assert token not in result.detail
    assert auth.authenticate({"token": {"nested": "x"}}, None) == Refusal(
        "invalid", "the token param is not a string"
    )


def test_max_age_setting_and_embedded_age() -> None:
    old = phoenix_token(b"u", signed_at_ms=NOW_MS - 3_600_000)
    short = Authenticator(
        AuthSettings(phoenix_secret_key_base=SECRET_KEY_BASE, phoenix_token_max_age=60), clock
    )
    assert isinstance(short.authenticate({"token": old}, None), Refusal)
    embedded = Authenticator(
        AuthSettings(phoenix_secret_key_base=SECRET_KEY_BASE, phoenix_token_max_age=None), clock
    )
    assert isinstance(embedded.authenticate({"token": old}, None), Identity)


def test_custom_key_derivation_settings() -> None:
    settings = AuthSettings(
        phoenix_secret_key_base=SECRET_KEY_BASE,
        phoenix_key_iterations=5,
        phoenix_key_length=64,
        phoenix_key_digest="sha512",
    )
    auth = Authenticator(settings, clock)
    assert isinstance(auth.authenticate({"token": phoenix_token(b"u")}, None), Refusal)


def test_jwt_only() -> None:
    auth = Authenticator(AuthSettings(jwt_secret=JWT_SECRET), clock)
    token = pyjwt.encode({"sub": "jane", "exp": NOW + 60}, JWT_SECRET, algorithm="HS256")
    identity = auth.authenticate({"token": token}, None)
    assert identity == Identity("jane", True, "jwt", {"sub": "jane", "exp": NOW + 60})
    expired = pyjwt.encode({"sub": "jane", "exp": NOW - 1}, JWT_SECRET, algorithm="HS256")
    assert auth.authenticate({}, expired) == Refusal("expired", "jwt: JWT has expired")
    # A Phoenix.Token cannot be checked without its secret: refused as an invalid JWT.
    result = auth.authenticate({"token": phoenix_token(b"u")}, None)
    assert isinstance(result, Refusal)
    assert result.reason == "invalid"


def test_both_verifiers_dispatch_on_token_shape() -> None:
    auth = both()
    assert auth.authenticate({"token": phoenix_token(b"p")}, None) == Identity(
        "p", True, "phoenix_token", {"data": "p"}
    )
    jwt_token = pyjwt.encode({"sub": "j"}, JWT_SECRET, algorithm="HS256")
    assert auth.authenticate({"token": jwt_token}, None) == Identity("j", True, "jwt", {"sub": "j"})


def test_jwt_user_claim_and_public_key_file(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "pub.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    settings = AuthSettings(
        jwt_public_key_file=str(pem),
        jwt_user_claim="uid",
        jwt_issuer="idp",
        jwt_audience="gw",
        jwt_leeway=5,
    )
    auth = Authenticator(settings, clock)
    claims = {"uid": 77, "iss": "idp", "aud": "gw", "exp": NOW - 3}
    token = pyjwt.encode(claims, key, algorithm="ES256")
    assert auth.authenticate({"token": token}, None) == Identity("77", True, "jwt", claims)
    no_uid = pyjwt.encode({"iss": "idp", "aud": "gw"}, key, algorithm="ES256")
    assert auth.authenticate({"token": no_uid}, None) == Refusal(
        "invalid", "jwt: JWT claim 'uid' is missing"
    )


def test_trust_token_as_user_id() -> None:
    auth = Authenticator(AuthSettings(trust_token_as_user_id=True), clock)
    assert auth.authenticate({"token": "alice"}, None) == Identity("alice", True, "trusted_token")
    assert auth.authenticate({}, "bob") == Identity("bob", True, "trusted_token")
    assert auth.authenticate({"token": "x" * 300}, None) == Refusal(
        "invalid", "token too long to be taken as a user id"
    )
    assert auth.authenticate({}, None).authenticated is False  # type: ignore[union-attr]


def test_token_without_any_verifier_stays_anonymous() -> None:
    auth = Authenticator(AuthSettings(), clock, new_user_id=lambda: "anon")
    assert auth.authenticate({"token": "app-specific"}, None) == Identity(
        "anon", False, "anonymous"
    )


def test_empty_strings_count_as_unset() -> None:
    auth = Authenticator(
        AuthSettings(phoenix_secret_key_base="", jwt_secret="", jwt_jwks_file=""), clock
    )
    assert not auth.verifies


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="every connection would be refused"):
        Authenticator(AuthSettings(allow_anonymous=False), clock)
    with pytest.raises(ConfigError, match="JWKS"):
        Authenticator(AuthSettings(jwt_jwks_file=str(tmp_path / "missing.json")), clock)
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Authenticator(AuthSettings(jwt_secret="short"), clock)
    with pytest.raises(ConfigError, match="iterations"):
        Authenticator(
            AuthSettings(phoenix_secret_key_base=SECRET_KEY_BASE, phoenix_key_iterations=0), clock
        )


def test_to_json_like() -> None:
    assert to_json_like({None: 1, True: 2, (1, 2): b"\xff", Atom("a"): [b"b"]}) == {
        "nil": 1,
        "true": 2,
        "[1,2]": "\ufffd",
        "a": ["b"],
    }


def test_environment_value_parsers() -> None:
    assert parse_max_age("embedded") is None
    assert parse_max_age(" Infinity ") == math.inf
    assert parse_max_age("0.5") == 0.5
    for bad in ("soon", "nan"):
        with pytest.raises(ConfigError):
            parse_max_age(bad)
    assert parse_algorithms(" HS256, RS256 ,,") == ("HS256", "RS256")
    forever = Authenticator(
        AuthSettings(phoenix_secret_key_base=SECRET_KEY_BASE, phoenix_token_max_age=math.inf),
        lambda: NOW + 10**9,
    )
    assert isinstance(forever.authenticate({"token": phoenix_token(b"u")}, None), Identity)
