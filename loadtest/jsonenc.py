"""JSON the way a Phoenix client's server (Jason) writes it, so payloads compare byte for byte.

Compact, raw UTF-8, `/` unescaped, map keys sorted, and control characters escaped as `\\u00XX`
with upper-case hex (docs/wire.md, "Frames"). The load tester keeps its own copy: it sees the
server only through the wire.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder()
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


def normalize(raw: bytes | msgspec.Raw) -> bytes:
    """Re-encode JSON the way Phoenix would after decoding it into a map (sorted, compact)."""
    return encode(_decoder.decode(raw))
