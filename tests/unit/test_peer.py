"""Client addresses behind trusted proxies: X-Forwarded-For is believed only from them."""

from gateway.transports.peer import client_address, parse_networks

LB = parse_networks("10.0.0.0/8, 127.0.0.1")


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("10.1.1.1", "203.0.113.9", ()) == "10.1.1.1"


def test_a_trusted_proxy_names_the_client() -> None:
    assert client_address("10.1.1.1", "203.0.113.9", LB) == "203.0.113.9"
    # hops added by trusted proxies are skipped from the right
    assert client_address("10.1.1.1", "203.0.113.9, 10.2.2.2", LB) == "203.0.113.9"


def test_a_client_cannot_forge_the_header() -> None:
    # the untrusted peer's own header is ignored
    assert client_address("198.51.100.7", "1.2.3.4", LB) == "198.51.100.7"
    # a forged leftmost entry is not reached: the rightmost untrusted hop wins
    assert client_address("10.1.1.1", "1.2.3.4, 198.51.100.7", LB) == "198.51.100.7"


def test_garbage_entries_are_not_trusted() -> None:
    assert client_address("10.1.1.1", "not-an-ip", LB) == "not-an-ip"
    assert client_address("10.1.1.1", "", LB) == "10.1.1.1"
