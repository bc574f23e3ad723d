"""Suite-wide fixtures: redis-server, the gateway process, phoenix.js under Node, Chromium."""

pytest_plugins = [
    "pytester",
    "tests.support.reporting",
    "tests.support.redis_server",
    "tests.support.gateway_proc",
    "tests.support.node_client",
    "tests.support.browser",
    "tests.support.wire_server",
]
