"""A strict, bounded codec for the Erlang external term format carried by Phoenix.Token payloads.

Only the tags a token payload needs are understood (docs/auth.md, "Phoenix.Token"). Executable or
node-bound terms (funs, pids, references, ports) and every other tag are refused with `EtfError`,
never another exception, so a hostile payload can only ever produce a clean refusal. Depth, sizes
and the decompressed length are bounded before any allocation proportional to them.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Final, TypeAlias, cast

import msgspec

VERSION: Final = 131

# Tags understood by the decoder.
COMPRESSED: Final = 80
NEW_FLOAT: Final = 70
SMALL_INTEGER: Final = 97
INTEGER: Final = 98
ATOM: Final = 100
SMALL_TUPLE: Final = 104
LARGE_TUPLE: Final = 105
NIL: Final = 106
STRING: Final = 107
LIST: Final = 108
BINARY: Final = 109
SMALL_BIG: Final = 110
LARGE_BIG: Final = 111
SMALL_ATOM: Final = 115
MAP: Final = 116
ATOM_UTF8: Final = 118
SMALL_ATOM_UTF8: Final = 119

# Tags refused by name, so the error says what was found rather than just a number.
_REFUSED: Final = {
    68: "distribution header",
    77: "bit binary",
    82: "atom cache reference",
    88: "pid",
    89: "port",
    90: "reference",
    99: "old float",
    101: "reference",
    102: "port",
    103: "pid",
    112: "function",
    113: "function export",
    114: "reference",
    117: "function",
    120: "port",
    121: "local term",
}


class EtfError(ValueError):
    """The bytes are not a term this decoder accepts (malformed, too large, or a refused type)."""


class Atom(str):
    """An Erlang atom other than `true`, `false` and `nil`, kept apart from binaries."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


Term: TypeAlias = (
    "int | float | bool | bytes | str | Atom | tuple[Term, ...] | list[Term] | dict[Term, Term]"
    " | None"
)


class EtfLimits(msgspec.Struct, frozen=True):
    """Bounds applied while decoding; the defaults are generous for tokens and tight for abuse."""

    max_input_bytes: int = 65_536
    max_decompressed_bytes: int = 65_536
    max_depth: int = 32
    max_big_bytes: int = 64  # a 512-bit integer; timestamps need 6 bytes


DEFAULT_LIMITS: Final = EtfLimits()

_SPECIAL_ATOMS: Final[dict[str, bool | None]] = {"true": True, "false": False, "nil": None}


def decode(data: bytes, limits: EtfLimits = DEFAULT_LIMITS) -> Term:
    """Decode one complete term (version byte first); trailing bytes are an error."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EtfError("input must be bytes")
    view = bytes(data)
    if len(view) > limits.max_input_bytes:
        raise EtfError(f"input of {len(view)} bytes exceeds {limits.max_input_bytes}")
    if not view:
        raise EtfError("empty input")
    if view[0] != VERSION:
        raise EtfError(f"unknown format version {view[0]}")
    if len(view) >= 2 and view[1] == COMPRESSED:
        view = _inflate(view, limits)
        start = 0
    else:
        start = 1
    reader = _Reader(view, start, limits)
    term = reader.term(0)
    if reader.pos != len(view):
        raise EtfError(f"{len(view) - reader.pos} trailing bytes after the term")
    return term


def _inflate(view: bytes, limits: EtfLimits) -> bytes:
    if len(view) < 6:
        raise EtfError("truncated compressed header")
    (size,) = struct.unpack_from(">I", view, 2)
    if size > limits.max_decompressed_bytes:
        raise EtfError(f"compressed term of {size} bytes exceeds {limits.max_decompressed_bytes}")
    inflater = zlib.decompressobj()
    try:
        # max_length stops a zip bomb after one byte past the declared size.
        out = inflater.decompress(view[6:], size + 1)
    except zlib.error as exc:
        raise EtfError(f"bad zlib data: {exc}") from None
    if len(out) != size or not inflater.eof or inflater.unused_data:
        raise EtfError("compressed size does not match its contents")
    return out


class _Reader:
    """A cursor over the buffer; every read checks the remaining length first."""

    __slots__ = ("buf", "limits", "pos")

    def __init__(self, buf: bytes, pos: int, limits: EtfLimits) -> None:
        self.buf = buf
        self.pos = pos
        self.limits = limits

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise EtfError("truncated term")
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        if self.pos >= len(self.buf):
            raise EtfError("truncated term")
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def count(self, n: int, min_bytes_each: int) -> int:
        # Every element takes at least `min_bytes_each` bytes, so a count the rest of the buffer
        # cannot hold is refused before anything is allocated for it.
        if n * min_bytes_each > len(self.buf) - self.pos:
            raise EtfError(f"length {n} exceeds the remaining input")
        return n

    def term(self, depth: int) -> Term:
        if depth > self.limits.max_depth:
            raise EtfError(f"nesting deeper than {self.limits.max_depth}")
        tag = self.u8()
        if tag == SMALL_INTEGER:
            return self.u8()
        if tag == INTEGER:
            return int.from_bytes(self.take(4), "big", signed=True)
        if tag in (SMALL_BIG, LARGE_BIG):
            return self.big(self.u8() if tag == SMALL_BIG else self.u32())
        if tag == BINARY:
            return self.take(self.count(self.u32(), 1))
        if tag in (ATOM_UTF8, ATOM, SMALL_ATOM_UTF8, SMALL_ATOM):
            small = tag in (SMALL_ATOM_UTF8, SMALL_ATOM)
            raw = self.take(self.u8() if small else self.u16())
            return self.atom(raw, utf8=tag in (ATOM_UTF8, SMALL_ATOM_UTF8))
        if tag in (SMALL_TUPLE, LARGE_TUPLE):
            arity = self.count(self.u8() if tag == SMALL_TUPLE else self.u32(), 1)
            return tuple(self.term(depth + 1) for _ in range(arity))
        if tag == NIL:
            return []
        if tag == STRING:
            # A list of small integers packed as bytes (how Erlang sends charlists).
            return list(self.take(self.u16()))
        if tag == LIST:
            length = self.count(self.u32(), 1)
            items = [self.term(depth + 1) for _ in range(length)]
            if self.u8() != NIL:
                raise EtfError("improper lists are not supported")
            return items
        if tag == MAP:
            return self.map(self.count(self.u32(), 2), depth)
        if tag == NEW_FLOAT:
            (value,) = struct.unpack(">d", self.take(8))
            if not math.isfinite(value):
                raise EtfError("non-finite float")
            return float(value)
        if tag == COMPRESSED:
            raise EtfError("compressed tag inside a term")
        name = _REFUSED.get(tag)
        if name is not None:
            raise EtfError(f"refused term type: {name} (tag {tag})")
        raise EtfError(f"unknown tag {tag}")

    def big(self, n: int) -> int:
        if n > self.limits.max_big_bytes:
            raise EtfError(f"big integer of {n} bytes exceeds {self.limits.max_big_bytes}")
        sign = self.u8()
        if sign > 1:
            raise EtfError(f"bad big integer sign {sign}")
        magnitude = int.from_bytes(self.take(n), "little")
        return -magnitude if sign else magnitude

    def atom(self, raw: bytes, *, utf8: bool) -> bool | Atom | None:
        try:
            text = raw.decode("utf-8") if utf8 else raw.decode("latin-1")
        except UnicodeDecodeError:
            raise EtfError("atom is not valid UTF-8") from None
        if text in _SPECIAL_ATOMS:
            return _SPECIAL_ATOMS[text]
        return Atom(text)

    def map(self, arity: int, depth: int) -> dict[Term, Term]:
        out: dict[Term, Term] = {}
        for _ in range(arity):
            key = self.term(depth + 1)
            value = self.term(depth + 1)
            try:
                if key in out:
                    # Python equates 1, 1.0 and True, which Erlang keeps apart; refuse the clash.
                    raise EtfError("duplicate map key")
                out[key] = value
            except TypeError:
                raise EtfError("map key of an unhashable type (list or map)") from None
        return out


# ---------------------------------------------------------------------------------------------
# Encoding, the same shapes `:erlang.term_to_binary/1` produces for them.


def encode(term: Term, *, compressed: bool = False) -> bytes:
    """Encode a term as `term_to_binary` would; `str` and `bytes` both become binaries."""
    out = bytearray()
    _encode_into(out, term, 0)
    if compressed:
        packed = zlib.compress(bytes(out), 6)
        return bytes([VERSION, COMPRESSED]) + struct.pack(">I", len(out)) + packed
    return bytes([VERSION]) + bytes(out)


def _encode_atom(out: bytearray, name: str) -> None:
    raw = name.encode("utf-8")
    if len(raw) < 256:
        out += bytes([SMALL_ATOM_UTF8, len(raw)]) + raw
    else:
        out += bytes([ATOM_UTF8]) + struct.pack(">H", len(raw)) + raw


def _encode_int(out: bytearray, value: int) -> None:
    if 0 <= value <= 255:
        out += bytes([SMALL_INTEGER, value])
    elif -(2**31) <= value < 2**31:
        out += bytes([INTEGER]) + struct.pack(">i", value)
    else:
        magnitude = abs(value)
        digits = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
        sign = 1 if value < 0 else 0
        if len(digits) < 256:
            out += bytes([SMALL_BIG, len(digits), sign]) + digits
        else:
            out += bytes([LARGE_BIG]) + struct.pack(">I", len(digits)) + bytes([sign]) + digits


def _encode_into(out: bytearray, term: Term, depth: int) -> None:
    if depth > 256:
        raise EtfError("term nested too deeply to encode")
    if term is True or term is False or term is None:
        _encode_atom(out, "nil" if term is None else ("true" if term else "false"))
    elif isinstance(term, Atom):
        _encode_atom(out, str(term))
    elif isinstance(term, int):
        _encode_int(out, term)
    elif isinstance(term, float):
        out += bytes([NEW_FLOAT]) + struct.pack(">d", term)
    elif isinstance(term, str | bytes):
        raw = term.encode("utf-8") if isinstance(term, str) else term
        out += bytes([BINARY]) + struct.pack(">I", len(raw)) + raw
    elif isinstance(term, tuple):
        if len(term) < 256:
            out += bytes([SMALL_TUPLE, len(term)])
        else:
            out += bytes([LARGE_TUPLE]) + struct.pack(">I", len(term))
        for item in term:
            _encode_into(out, item, depth + 1)
    elif isinstance(term, list):
        _encode_list(out, term, depth)
    elif isinstance(term, dict):
        out += bytes([MAP]) + struct.pack(">I", len(term))
        # Small Erlang maps are written in Erlang term order of their keys.
        for key in sorted(term, key=_order_key):
            _encode_into(out, key, depth + 1)
            _encode_into(out, term[key], depth + 1)
    else:
        raise EtfError(f"cannot encode a {type(term).__name__}")


def _encode_list(out: bytearray, items: list[Term], depth: int) -> None:
    if not items:
        out.append(NIL)
        return
    is_bytes = all(type(i) is int and 0 <= i <= 255 for i in items)
    if is_bytes and len(items) < 65_536:
        out += bytes([STRING]) + struct.pack(">H", len(items)) + bytes(cast(list[int], items))
        return
    out += bytes([LIST]) + struct.pack(">I", len(items))
    for item in items:
        _encode_into(out, item, depth + 1)
    out.append(NIL)


def _order_key(term: Term) -> tuple[int, object]:
    """Erlang's term order (number < atom < tuple < map < nil < list < binary) as a sort key."""
    if term is True or term is False or term is None:
        return (1, "nil" if term is None else ("true" if term else "false"))
    if isinstance(term, Atom):
        return (1, str(term))
    if isinstance(term, int | float):
        return (0, term)
    if isinstance(term, str | bytes):
        return (10, term.encode("utf-8") if isinstance(term, str) else term)
    if isinstance(term, tuple):
        return (6, (len(term), tuple(_order_key(item) for item in term)))
    if isinstance(term, dict):
        return (7, encode(term))
    if isinstance(term, list):
        return (9 if term else 8, tuple(_order_key(item) for item in term))
    raise EtfError(f"cannot encode a {type(term).__name__}")
