"""Connect params decoded as Plug decodes a query string."""

from __future__ import annotations

import pytest

from gateway.transports.params import parse_query, parse_query_general


@pytest.mark.parametrize(
    ("query", "params"),
    [
        ("vsn=2.0.0&token=abc", {"vsn": "2.0.0", "token": "abc"}),
        ("", {}),
        ("&vsn=2.0.0&&", {"vsn": "2.0.0"}),
        ("a=1&a=2", {"a": "2"}),
        ("flag&=x&b=", {"flag": "", "b": ""}),
        ("a=b=c", {"a": "b=c"}),
        ("name=ann+lee&city=K%C3%B6ln", {"name": "ann lee", "city": "Köln"}),
        ("user%5Bid%5D=7", {"user": {"id": "7"}}),
        ("user[id]=1&user[name]=ann", {"user": {"id": "1", "name": "ann"}}),
        ("a[]=1&a[]=2", {"a": ["1", "2"]}),
        ("t=%2B1", {"t": "+1"}),
    ],
)
def test_queries_decode_as_plug_decodes_them(query: str, params: dict[str, object]) -> None:
    assert parse_query(query) == params
    assert parse_query_general(query) == params


@pytest.mark.parametrize(
    "query",
    ["vsn=2.0.0&token=ch-1-2-3", "a&b&c=", "x=1&x=2&y==", "=v&k=v", "&&&", "k=v&"],
)
def test_the_plain_query_shortcut_agrees_with_the_general_decoder(query: str) -> None:
    assert parse_query(query) == parse_query_general(query)
