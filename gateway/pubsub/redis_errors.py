"""What a lost or broken Redis connection raises, for every Redis link (single node or
Cluster); anything else is a bug and propagates."""

from __future__ import annotations

from redis.exceptions import RedisError

LINK_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, EOFError)
