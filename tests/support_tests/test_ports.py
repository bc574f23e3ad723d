"""Free-port helper: the port it returns can be bound and is reported open once listened on."""

import socket

from tests.support.ports import free_port, port_is_open


def test_free_port_can_be_bound_and_detected() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    assert not port_is_open(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert port_is_open(port)
    assert not port_is_open(port)
