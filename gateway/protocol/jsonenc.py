"""JSON encoding that matches what Phoenix (Jason) writes, byte for byte.

Compact, raw UTF-8, `/` unescaped, map keys sorted (Phoenix maps of up to 32 keys come out
sorted), and control characters escaped as `\\u00XX` with upper-case hex (docs/wire.md, "Frames").
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder(order="sorted")
# The escape checks below use `bytes.find`: CPython's `in` on bytes first tries its operand as
# an integer and formats a TypeError it then discards, several times the cost of the search.
# A \u00xx escape not itself preceded by an escaped backslash.
_LOWER_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u00([0-9a-f]{2})")


def _upper(match: re.Match[bytes]) -> bytes:
    return match.group(1) + b"\\u00" + match.group(2).upper()


def encode(value: Any) -> bytes:
    """Encode a value as Phoenix would; `msgspec.Raw` passes through untouched."""
    if type(value) is msgspec.Raw:
        return bytes(value)
    out = _encoder.encode(value)
    if out.find(b"\\u00") >= 0:
        out = _LOWER_ESCAPE.sub(_upper, out)
    return out


def encode_str(value: str) -> bytes:
    """Encode a string; the common case (no escapes needed) skips the regex."""
    out = _encoder.encode(value)
    if out.find(b"\\u00") >= 0:
        out = _LOWER_ESCAPE.sub(_upper, out)
    return out


_decoder = msgspec.json.Decoder()


def decode(data: bytes | msgspec.Raw) -> Any:
    """Decode JSON into plain Python values."""
    return _decoder.decode(data)


def normalize(raw: bytes | msgspec.Raw) -> bytes:
    """Re-encode JSON the way Phoenix would after decoding it into a map (sorted, compact)."""
    out = _encoder.encode(_decoder.decode(raw))  # `encode`'s body: echo runs this per push
    if out.find(b"\\u00") >= 0:
        out = _LOWER_ESCAPE.sub(_upper, out)
    return out
