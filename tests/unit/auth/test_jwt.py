"""JWT verification with real keys: HS256, RS256 and ES256, files on disk, JWKS kid selection."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth.jwt import JwtConfigError, JwtSettings, JwtVerifier, load_jwks
from gateway.auth.result import Rejected, Verified

NOW = 1_800_000_000.0
SECRET = "a-shared-secret-of-enough-length-for-hs256"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str, alg: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        text = pyjwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())
    else:
        text = pyjwt.algorithms.ECAlgorithm.to_jwk(key.public_key())
    jwk: dict[str, Any] = json.loads(text)
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "user-9", "exp": NOW + 60, **extra}


def _reason(result: object) -> str | None:
    return result.reason if isinstance(result, Rejected) else None


def test_hs256_valid() -> None:
    verifier = JwtVerifier(JwtSettings(secret=SECRET))
    token = pyjwt.encode(_claims(role="admin"), SECRET, algorithm="HS256")
    result = verifier.verify(token, now=NOW)
    assert isinstance(result, Verified)
    assert result.data["role"] == "admin"
    assert verifier.user_id(result.data) == "user-9"


def test_rs256_and_es256_with_pem_files(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    for key, alg in ((rsa_key, "RS256"), (ec_key, "ES256")):
        pem_file = tmp_path / f"{alg}.pem"
        pem_file.write_bytes(_pem(key))
        verifier = JwtVerifier.from_settings(JwtSettings(public_key_file=str(pem_file)))
        token = pyjwt.encode(_claims(), key, algorithm=alg)
        assert isinstance(verifier.verify(token, now=NOW), Verified)
        other = pyjwt.encode(_claims(), SECRET, algorithm="HS256")
        assert verifier.verify(other, now=NOW) == Rejected(
            "invalid", "no configured key verifies HS256"
        )


def test_tampered_and_wrongly_signed(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = JwtVerifier(JwtSettings(secret=SECRET, algorithms=("HS256", "RS256")))
    token = pyjwt.encode(_claims(), SECRET, algorithm="HS256")
    header, _, sig = token.split(".")
    forged_payload = pyjwt.utils.base64url_encode(json.dumps(_claims(sub="admin")).encode())
    assert _reason(verifier.verify(f"{header}.{forged_payload.decode()}.{sig}", now=NOW)) == (
        "invalid"
    )
    wrong = pyjwt.encode(_claims(), "another secret entirely, long enough", algorithm="HS256")
    assert verifier.verify(wrong, now=NOW) == Rejected("invalid", "JWT signature mismatch")
    for junk in ("", "a.b", "not a jwt", "x" * 9000, "é.é.é"):
        assert _reason(verifier.verify(junk, now=NOW)) == "invalid"
    assert verifier.verify(None, now=NOW) == Rejected("missing", "no token")


def test_algorithm_confusion_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    # An HS256 token whose "secret" is the server's public key PEM must not verify.
    pem = _pem(rsa_key)
    verifier = JwtVerifier(JwtSettings(algorithms=("HS256", "RS256")), public_key_pem=pem)
    forged = pyjwt.api_jws.PyJWS().encode(
        json.dumps(_claims()).encode(), b"k" * 32, algorithm="HS256"
    )
    header, payload, _ = forged.split(".")
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{pyjwt.utils.base64url_encode(mac).decode()}"
    assert verifier.verify(token, now=NOW) == Rejected(
        "invalid", "no configured key verifies HS256"
    )
    unsigned = pyjwt.encode(_claims(), "", algorithm="none")
    assert _reason(verifier.verify(unsigned, now=NOW)) == "invalid"


def test_disallowed_algorithm(ec_key: ec.EllipticCurvePrivateKey) -> None:
    verifier = JwtVerifier(JwtSettings(algorithms=("RS256",)), public_key_pem=_pem(ec_key))
    token = pyjwt.encode(_claims(), ec_key, algorithm="ES256")
    assert verifier.verify(token, now=NOW) == Rejected(
        "invalid", "JWT algorithm 'ES256' is not allowed"
    )


def test_exp_and_nbf_with_leeway() -> None:
    strict = JwtVerifier(JwtSettings(secret=SECRET))
    lenient = JwtVerifier(JwtSettings(secret=SECRET, leeway=30))
    expired = pyjwt.encode(_claims(exp=NOW - 10), SECRET, algorithm="HS256")
    assert strict.verify(expired, now=NOW) == Rejected("expired", "JWT has expired")
    assert isinstance(lenient.verify(expired, now=NOW), Verified)
    at_exp = pyjwt.encode(_claims(exp=NOW), SECRET, algorithm="HS256")
    assert _reason(strict.verify(at_exp, now=NOW)) == "expired"
    early = pyjwt.encode(_claims(nbf=NOW + 10), SECRET, algorithm="HS256")
    assert strict.verify(early, now=NOW) == Rejected("invalid", "JWT is not valid yet (nbf)")
    assert isinstance(lenient.verify(early, now=NOW), Verified)
    no_exp = pyjwt.encode({"sub": "u"}, SECRET, algorithm="HS256")
    assert isinstance(strict.verify(no_exp, now=NOW), Verified)
    bad_exp = pyjwt.encode({"sub": "u", "exp": "tomorrow"}, SECRET, algorithm="HS256")
    assert strict.verify(bad_exp, now=NOW) == Rejected("invalid", "JWT exp is not a number")


def test_issuer_and_audience() -> None:
    verifier = JwtVerifier(JwtSettings(secret=SECRET, issuer="https://idp", audience="gateway"))
    good = pyjwt.encode(_claims(iss="https://idp", aud="gateway"), SECRET, algorithm="HS256")
    assert isinstance(verifier.verify(good, now=NOW), Verified)
    listed = pyjwt.encode(_claims(iss="https://idp", aud=["x", "gateway"]), SECRET, "HS256")
    assert isinstance(verifier.verify(listed, now=NOW), Verified)
    wrong_iss = pyjwt.encode(_claims(iss="https://evil", aud="gateway"), SECRET, "HS256")
    assert verifier.verify(wrong_iss, now=NOW) == Rejected("invalid", "JWT issuer does not match")
    wrong_aud = pyjwt.encode(_claims(iss="https://idp", aud="other"), SECRET, "HS256")
    assert verifier.verify(wrong_aud, now=NOW) == Rejected("invalid", "JWT audience does not match")
    missing = pyjwt.encode(_claims(), SECRET, "HS256")
    assert _reason(verifier.verify(missing, now=NOW)) == "invalid"
    # Without a configured audience, a token that names one is refused (PyJWT's stance).
    plain = JwtVerifier(JwtSettings(secret=SECRET))
    assert _reason(plain.verify(wrong_aud, now=NOW)) == "invalid"


def test_user_claim() -> None:
    verifier = JwtVerifier(JwtSettings(secret=SECRET, user_claim="uid"))
    assert verifier.user_id({"uid": 17}) == "17"
    assert verifier.user_id({"uid": True}) is None
    assert verifier.user_id({"uid": ""}) is None
    token = pyjwt.encode({"uid": "u-1", "exp": NOW + 5}, SECRET, "HS256")
    assert isinstance(verifier.verify(token, now=NOW), Verified)
    no_uid = pyjwt.encode({"sub": "u-1", "exp": NOW + 5}, SECRET, "HS256")
    assert verifier.verify(no_uid, now=NOW) == Rejected("invalid", "JWT claim 'uid' is missing")


def test_jwks_kid_selection(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    second_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    document = {
        "keys": [
            _jwk(rsa_key, "rsa-1", "RS256"),
            _jwk(second_rsa, "rsa-2", "RS256"),
            _jwk(ec_key, "ec-1", "ES256"),
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB", "kid": "enc-only"},
        ]
    }
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(document))
    verifier = JwtVerifier.from_settings(JwtSettings(jwks_file=str(jwks_file)))
    for key, kid, alg in (
        (rsa_key, "rsa-1", "RS256"),
        (second_rsa, "rsa-2", "RS256"),
        (ec_key, "ec-1", "ES256"),
    ):
        token = pyjwt.encode(_claims(), key, algorithm=alg, headers={"kid": kid})
        assert isinstance(verifier.verify(token, now=NOW), Verified), kid
    swapped = pyjwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-2"})
    assert verifier.verify(swapped, now=NOW) == Rejected("invalid", "JWT signature mismatch")
    unknown = pyjwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "nope"})
    assert verifier.verify(unknown, now=NOW) == Rejected(
        "invalid", "no JWKS key with the token's kid"
    )
    # An ES256 token claiming an RSA key's kid finds no key of the right type.
    ec_as_rsa = pyjwt.encode(_claims(), ec_key, algorithm="ES256", headers={"kid": "rsa-1"})
    assert _reason(verifier.verify(ec_as_rsa, now=NOW)) == "invalid"
    no_kid = pyjwt.encode(_claims(), rsa_key, algorithm="RS256")
    assert _reason(verifier.verify(no_kid, now=NOW)) == "invalid"
    # With one candidate key of the token's type, a missing kid is unambiguous.
    ec_no_kid = pyjwt.encode(_claims(), ec_key, algorithm="ES256")
    assert isinstance(verifier.verify(ec_no_kid, now=NOW), Verified)


def test_jwks_pinned_alg_is_respected(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = JwtVerifier(
        JwtSettings(algorithms=("RS256", "PS256")), jwks={"keys": [_jwk(rsa_key, "k", "RS256")]}
    )
    pss = pyjwt.encode(_claims(), rsa_key, algorithm="PS256", headers={"kid": "k"})
    assert _reason(verifier.verify(pss, now=NOW)) == "invalid"


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(JwtConfigError):
        JwtVerifier(JwtSettings(secret=SECRET, algorithms=("none",)))
    with pytest.raises(JwtConfigError):
        JwtVerifier(JwtSettings(secret=SECRET, algorithms=()))
    with pytest.raises(JwtConfigError):
        JwtVerifier(JwtSettings(secret=SECRET, leeway=-1))
    with pytest.raises(JwtConfigError, match="PEM"):
        JwtVerifier(JwtSettings(), public_key_pem=b"-----BEGIN NOTHING-----")
    with pytest.raises(JwtConfigError, match="cannot read"):
        JwtVerifier.from_settings(JwtSettings(jwks_file=str(tmp_path / "absent.json")))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(JwtConfigError, match="JSON"):
        JwtVerifier.from_settings(JwtSettings(jwks_file=str(bad)))
    documents: list[dict[str, Any]] = [{}, {"keys": "x"}, {"keys": [1]}, {"keys": []}]
    for document in [*documents, {"keys": [{"kty": "XX"}]}]:
        with pytest.raises(JwtConfigError):
            load_jwks(document)
    assert JwtSettings(secret="s").has_keys
    assert not JwtSettings().has_keys


def test_weak_keys_are_configuration_errors() -> None:
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(JwtConfigError, match="1024-bit"):
        JwtVerifier(JwtSettings(), public_key_pem=_pem(small_rsa))
    with pytest.raises(JwtConfigError, match="1024-bit"):
        load_jwks({"keys": [_jwk(small_rsa, "weak", "RS256")]})
    with pytest.raises(JwtConfigError, match="at least 32 bytes"):
        JwtVerifier(JwtSettings(secret="short"))
    with pytest.raises(JwtConfigError, match="at least 64 bytes"):
        JwtVerifier(JwtSettings(secret=SECRET, algorithms=("HS256", "HS512")))
    weak_oct = {"kty": "oct", "k": pyjwt.utils.base64url_encode(b"k" * 8).decode()}
    with pytest.raises(JwtConfigError, match="shorter than 32"):
        load_jwks({"keys": [weak_oct]})


def test_jwks_oct_key_verifies_hs256() -> None:
    secret = b"s" * 32
    oct_key = {"kty": "oct", "kid": "h", "k": pyjwt.utils.base64url_encode(secret).decode()}
    verifier = JwtVerifier(JwtSettings(), jwks={"keys": [oct_key]})
    token = pyjwt.encode(_claims(), secret, algorithm="HS256", headers={"kid": "h"})
    assert isinstance(verifier.verify(token, now=NOW), Verified)
