"""Suite-wide fixtures: redis-server and Redis Cluster, PostgreSQL, the gateway, phoenix.js, Chromium,
coturn, Janus."""

pytest_plugins = [
    "pytester",
    "tests.support.reporting",
    "tests.support.redis_server",
    "tests.support.redis_cluster",
    "tests.support.gateway_proc",
    "tests.support.node_client",
    "tests.support.browser",
    "tests.support.wire_server",
    "tests.support.turn_server",
    "tests.support.postgres_server",
    "tests.support.janus_server",
]
