"""check_origin, one test per example in docs/auth.md ("Origin check") and Phoenix's
`Phoenix.Socket.Transport.check_origin` documentation."""

from __future__ import annotations

import pytest

from gateway.auth.origin import (
    OriginConfigError,
    OriginPolicy,
    ParsedOrigin,
    origin_allowed,
    parse_origin_policy,
    parse_uri,
)


def allowed(origin: str | None, policy: OriginPolicy) -> bool:
    return origin_allowed(origin, policy, "http", "example.com", 80)


@pytest.mark.parametrize("setting", [False, True, "conn", ["//example.com"]])
def test_no_origin_header_is_always_allowed(setting: bool | str | list[str]) -> None:
    assert allowed(None, parse_origin_policy(setting))


def test_false_checks_nothing() -> None:
    policy = parse_origin_policy("false")
    assert policy.mode == "off"
    for origin in ("http://anything.test", "null", "", "file://"):
        assert allowed(origin, policy)


def test_true_compares_the_configured_host_only() -> None:
    policy = parse_origin_policy(True, host="example.com")
    assert allowed("https://example.com:8443", policy)
    assert allowed("ws://EXAMPLE.com", policy)
    assert not allowed("https://www.example.com", policy)
    default = parse_origin_policy("true")
    assert default.host == "localhost"
    assert allowed("http://localhost:4000", default)
    assert not allowed("http://127.0.0.1:4000", default)


def test_entry_without_scheme_or_port_accepts_any() -> None:
    policy = parse_origin_policy(["//example.com"])
    assert allowed("http://example.com", policy)
    assert allowed("https://example.com:8443", policy)
    assert not allowed("http://notallowed.com", policy)


def test_default_port_is_filled_from_scheme() -> None:
    policy = parse_origin_policy(["http://scheme.com"])
    assert policy.allowed == (ParsedOrigin(host="scheme.com", scheme="http", port=80),)
    assert allowed("http://scheme.com", policy)
    assert allowed("http://scheme.com:80", policy)
    assert not allowed("http://scheme.com:8080", policy)
    assert not allowed("https://scheme.com", policy)
    https = parse_origin_policy("https://scheme.com")
    assert allowed("https://scheme.com:443", https)
    assert not allowed("https://scheme.com:8443", https)


def test_port_only_entry() -> None:
    policy = parse_origin_policy("//port.com:81")
    assert allowed("http://port.com:81", policy)
    assert allowed("https://port.com:81", policy)
    assert not allowed("http://port.com:82", policy)
    assert not allowed("http://port.com", policy)


def test_wildcard_matches_subdomains_and_the_bare_domain() -> None:
    policy = parse_origin_policy(["https://*.ex.com"])
    assert allowed("https://org1.ex.com", policy)
    assert allowed("https://ex.com", policy)
    assert allowed("https://a.b.ex.com", policy)
    assert not allowed("https://org1.prefix-ex.com", policy)
    assert not allowed("http://org1.ex.com", policy)  # scheme is part of this entry


def test_nested_wildcard() -> None:
    policy = parse_origin_policy("http://*.foo.example.com")
    assert allowed("http://org1.foo.example.com", policy)
    assert allowed("http://foo.example.com", policy)
    assert not allowed("http://bad.example.com", policy)
    assert not allowed("http://org1.bar.example.com", policy)
    assert not allowed("http://org1.prefix-foo.example.com", policy)


def test_subdomain_needs_a_wildcard() -> None:
    policy = parse_origin_policy("//ex.com")
    assert not allowed("http://org1.ex.com", policy)


def test_any_entry_of_a_list_may_match() -> None:
    policy = parse_origin_policy(" https://example.com , //another.com:888,//other.com ")
    assert len(policy.allowed) == 3
    assert allowed("https://example.com", policy)
    assert allowed("http://another.com:888", policy)
    assert allowed("https://other.com:1", policy)
    assert not allowed("http://example.com", policy)
    assert not allowed("http://another.com", policy)


def test_conn_requires_same_scheme_host_and_port() -> None:
    policy = parse_origin_policy(":conn")
    assert policy.mode == "conn"
    assert allowed("http://example.com", policy)
    assert allowed("http://example.com:80", policy)
    assert not allowed("https://example.com", policy)
    assert not allowed("ws://example.com", policy)
    assert not allowed("http://www.example.com", policy)
    assert not allowed("http://example.com:4000", policy)
    assert origin_allowed("https://gw.test:8443", policy, "https", "gw.test", 8443)


@pytest.mark.parametrize("origin", ["null", "file://", "", "http://bad:port", "http://[::1"])
@pytest.mark.parametrize("setting", [True, "conn", ["//example.com", "https://*.x.com"]])
def test_unparseable_origins_are_refused(origin: str, setting: bool | str | list[str]) -> None:
    assert not allowed(origin, parse_origin_policy(setting, host="example.com"))


def test_ipv6_origin() -> None:
    policy = parse_origin_policy("http://[::1]:4000")
    assert allowed("http://[::1]:4000", policy)
    assert not allowed("http://[::2]:4000", policy)


@pytest.mark.parametrize("setting", ["example.com", "null", "", " , ", [], "http://"])
def test_entries_without_a_host_are_configuration_errors(setting: str | list[str]) -> None:
    with pytest.raises(OriginConfigError):
        parse_origin_policy(setting)


def test_parse_uri() -> None:
    assert parse_uri("HTTPS://Example.COM") == ParsedOrigin("example.com", "https", 443)
    assert parse_uri("//x.com") == ParsedOrigin("x.com", None, None)
    assert parse_uri("app://x.com") == ParsedOrigin("x.com", "app", None)
    assert parse_uri("null") is None
