"""The ETF codec: token shapes, refusals, bounds, and fuzzing that only sees values or EtfError."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth import etf
from gateway.auth.etf import Atom, EtfError, EtfLimits, decode, encode

# Payloads as `Phoenix.Token.sign` encodes them (docs/auth.md, "Phoenix.Token").
VECTORS = [
    ("836803612a6e06000068e5cf8b016200015180", (42, 1_700_000_000_000, 86400)),
    (
        "8368036d00000006757365722d316e06000068e5cf8b016200015180",
        (b"user-1", 1_700_000_000_000, 86400),
    ),
    (
        "83680374000000016d00000002696461076e06000068e5cf8b016200015180",
        ({b"id": 7}, 1_700_000_000_000, 86400),
    ),
]


@pytest.mark.parametrize(("hexdata", "term"), VECTORS)
def test_token_payload_vectors_decode_and_reencode(hexdata: str, term: etf.Term) -> None:
    assert decode(bytes.fromhex(hexdata)) == term
    assert encode(term).hex() == hexdata


def test_scalars() -> None:
    assert decode(bytes([131, 97, 255])) == 255
    assert decode(bytes([131, 98]) + struct.pack(">i", -5)) == -5
    assert decode(bytes([131, 110, 2, 1, 0x00, 0x01])) == -256
    assert decode(bytes([131, 111, 0, 0, 0, 1, 0, 7])) == 7
    assert decode(bytes([131, 70]) + struct.pack(">d", 0.5)) == 0.5
    assert decode(bytes([131, 106])) == []
    assert decode(bytes([131, 107, 0, 3, 1, 2, 3])) == [1, 2, 3]


def test_atoms_map_to_python_values() -> None:
    assert decode(bytes([131, 119, 4]) + b"true") is True
    assert decode(bytes([131, 119, 5]) + b"false") is False
    assert decode(bytes([131, 119, 3]) + b"nil") is None
    infinity = decode(bytes([131, 118, 0, 8]) + b"infinity")
    assert isinstance(infinity, Atom)
    assert infinity == "infinity"
    assert decode(bytes([131, 100, 0, 2]) + b"ok") == Atom("ok")  # legacy latin-1 atom
    assert decode(bytes([131, 115, 1]) + b"\xe9") == Atom("é")
    assert repr(Atom("ok")) == "Atom('ok')"


def test_containers_roundtrip() -> None:
    term: etf.Term = {
        Atom("data"): (1, [b"a", 2.5, None], {b"k": Atom("v")}),
        Atom("signed"): 2**40,
    }
    assert decode(encode(term)) == term
    big: list[etf.Term] = list(range(300))
    assert decode(encode(big)) == big
    long_tuple = tuple(range(300))
    assert decode(encode(long_tuple)) == long_tuple
    assert decode(encode(-(2**2000), compressed=False), EtfLimits(max_big_bytes=300)) == -(2**2000)


def test_map_keys_are_written_in_erlang_term_order() -> None:
    # "aa" sorts before "b" in Erlang; atoms sort before binaries; numbers before atoms.
    encoded = encode({b"b": 1, b"aa": 2, Atom("z"): 3, 5: 4})
    assert decode(encoded) == {5: 4, Atom("z"): 3, b"aa": 2, b"b": 1}
    body = encoded[6:]
    assert body.index(b"aa") < body.index(b"b\x61")


def test_str_encodes_as_binary() -> None:
    assert decode(encode("héllo")) == "héllo".encode()


def test_compressed_roundtrip_and_bounds() -> None:
    term = (b"x" * 1000, 1, 2)
    packed = encode(term, compressed=True)
    assert packed[:2] == bytes([131, 80])
    assert decode(packed) == term
    with pytest.raises(EtfError, match="exceeds"):
        decode(packed, EtfLimits(max_decompressed_bytes=100))


def test_compressed_size_must_match() -> None:
    inner = bytes([97, 1])
    lying = bytes([131, 80]) + struct.pack(">I", 5) + zlib.compress(inner)
    with pytest.raises(EtfError, match="size"):
        decode(lying)
    with pytest.raises(EtfError, match="zlib"):
        decode(bytes([131, 80, 0, 0, 0, 2]) + b"not zlib")


def test_zip_bomb_is_cut_short() -> None:
    bomb = bytes([131, 80]) + struct.pack(">I", 10) + zlib.compress(b"\x00" * 10_000_000)
    with pytest.raises(EtfError):
        decode(bomb)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes([131, 112, 0, 0, 0, 0]), "function"),
        (bytes([131, 113]), "function export"),
        (bytes([131, 117]), "function"),
        (bytes([131, 88]), "pid"),
        (bytes([131, 103]), "pid"),
        (bytes([131, 90]), "reference"),
        (bytes([131, 114]), "reference"),
        (bytes([131, 102]), "port"),
        (bytes([131, 89]), "port"),
        (bytes([131, 121]), "local"),
        (bytes([131, 77]), "bit binary"),
        (bytes([131, 99]), "old float"),
        (bytes([131, 1]), "unknown tag"),
        (bytes([130, 97, 1]), "version"),
        (b"", "empty"),
        (bytes([131]), "truncated"),
        (bytes([131, 109, 0, 0, 0, 9, 1]), "exceeds the remaining"),
        (bytes([131, 108, 0, 0, 0, 1, 97, 1, 97, 2]), "improper"),
        (bytes([131, 97, 1, 0]), "trailing"),
        (bytes([131, 110, 1, 2, 1]), "sign"),
        (bytes([131, 70]) + struct.pack(">d", float("inf")), "non-finite"),
        (bytes([131, 118, 0, 1, 0xFF]), "UTF-8"),
        (bytes([131, 104, 1, 80]), "compressed tag"),
    ],
)
def test_refusals(data: bytes, message: str) -> None:
    with pytest.raises(EtfError, match=message):
        decode(data)


def test_map_key_clashes_and_unhashable_keys() -> None:
    # 1 and true are different Erlang keys but equal Python ones.
    clash = bytes([131, 116, 0, 0, 0, 2, 97, 1, 97, 0, 119, 4]) + b"true" + bytes([97, 0])
    with pytest.raises(EtfError, match="duplicate"):
        decode(clash)
    list_key = bytes([131, 116, 0, 0, 0, 1, 107, 0, 1, 5, 97, 0])
    with pytest.raises(EtfError, match="unhashable"):
        decode(list_key)


def test_depth_and_size_bounds() -> None:
    nested: etf.Term = 1
    for _ in range(40):
        nested = (nested,)
    with pytest.raises(EtfError, match="nesting"):
        decode(encode(nested))
    assert decode(encode(nested), EtfLimits(max_depth=64)) == nested
    with pytest.raises(EtfError, match="input of"):
        decode(encode(b"x" * 100), EtfLimits(max_input_bytes=50))
    with pytest.raises(EtfError, match="big integer"):
        decode(encode(2**1000))
    with pytest.raises(EtfError, match="bytes"):
        decode("not bytes")  # type: ignore[arg-type]


def test_encode_refuses_foreign_types() -> None:
    with pytest.raises(EtfError):
        encode(object())  # type: ignore[arg-type]


terms: st.SearchStrategy[etf.Term] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.binary(max_size=20)
    | st.text(max_size=8).map(Atom).filter(lambda a: a not in ("true", "false", "nil")),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.binary(max_size=6) | st.integers(0, 2**40), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(terms, st.booleans())
def test_roundtrip_property(term: etf.Term, compressed: bool) -> None:
    assert decode(encode(term, compressed=compressed)) == term


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_any_bytes_give_a_value_or_etf_error(data: bytes) -> None:
    for candidate in (data, bytes([131]) + data, bytes([131, 80]) + data):
        assert _decodes_cleanly(candidate)


@settings(max_examples=500, deadline=None)
@given(terms, st.data())
def test_fuzz_mutated_valid_terms(term: etf.Term, data: st.DataObject) -> None:
    encoded = bytearray(encode(term))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    assert _decodes_cleanly(bytes(encoded[:cut]))


def _is_term(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float | bytes | Atom):
        return True
    if isinstance(value, tuple | list):
        return all(_is_term(item) for item in value)
    if isinstance(value, dict):
        return all(_is_term(k) and _is_term(v) for k, v in value.items())
    return False


def _decodes_cleanly(data: bytes) -> bool:
    """True when decoding yields a well-formed term or EtfError; anything else propagates."""
    try:
        return _is_term(decode(data))
    except EtfError:
        return True
