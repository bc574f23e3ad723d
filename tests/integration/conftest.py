"""Wire-level tests use the in-process server of tests/support/wire_server.py."""

from tests.support.wire_server import StartServer, WireServer

__all__ = ["StartServer", "WireServer"]
