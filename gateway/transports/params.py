"""Connect params from a query string, decoded as Plug does (docs/wire.md, "Endpoints and
handshake").

The last duplicate wins; `user[id]=1` nests into `{"user": {"id": "1"}}`; every value is a
string; empty pairs (`?&vsn=2.0.0`, a trailing `&`) are skipped.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

_KEY_PARTS = re.compile(r"\[([^\[\]]*)\]")


def parse_query(query: str) -> dict[str, Any]:
    if query.find("%") < 0 and query.find("+") < 0 and query.find("[") < 0:
        # Nothing to decode and nothing to nest (`?vsn=2.0.0&token=...`, nearly every connect).
        params: dict[str, Any] = {}
        for pair in query.split("&"):
            key, _, value = pair.partition("=")
            if key:
                params[key] = value
        return params
    return parse_query_general(query)


def parse_query_general(query: str) -> dict[str, Any]:
    """`parse_query` for any query: percent-decoding, `+` as space, nested keys."""
    params: dict[str, Any] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        key, value = unquote_plus(key), unquote_plus(value)
        if not key:
            continue
        _assign(params, key, value)
    return params


def _assign(params: dict[str, Any], key: str, value: str) -> None:
    bracket = key.find("[")
    if bracket <= 0 or not key.endswith("]"):
        params[key] = value
        return
    head = key[:bracket]
    parts = _KEY_PARTS.findall(key[bracket:])
    target = params
    path = [head, *parts]
    for i, part in enumerate(path[:-1]):
        nxt = target.get(part)
        if path[i + 1] == "":
            # `a[]=1&a[]=2` builds a list
            if not isinstance(nxt, list):
                nxt = target[part] = []
            nxt.append(value)
            return
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[path[-1]] = value
