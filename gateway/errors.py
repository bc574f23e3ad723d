"""The error tree, WebSocket close codes and the reply reasons clients see, in one place.

Client faults (bad frames, bad payloads) are `ClientError`s and become close codes or error
replies; anything else raised inside the server is a bug and becomes `channel_crash`.
"""

from __future__ import annotations

# WebSocket close codes (RFC 6455 section 7.4.1), as Phoenix 1.8.12 on Bandit uses them.
CLOSE_NORMAL = 1000  # never used for a close we want the client to recover from
CLOSE_GOING_AWAY = 1001  # "disconnect" broadcast on the socket id
CLOSE_PROTOCOL_ERROR = 1002  # idle timeout (Bandit's choice; phoenix.js reconnects)
CLOSE_INVALID_DATA = 1007  # text frame that is not UTF-8
CLOSE_POLICY = 1008  # flood: rate limit exceeded repeatedly
CLOSE_TOO_BIG = 1009  # frame over max_frame_size
CLOSE_INTERNAL = 1011  # malformed frame or a crash of the connection
CLOSE_RESTART = 1012  # graceful drain: reconnect elsewhere
CLOSE_TRY_AGAIN = 1013  # slow consumer: outbound queue overflowed

# Reply reasons (the `reason` of an error reply), Phoenix's own first.
UNMATCHED_TOPIC = "unmatched topic"
TOO_MANY_CHANNELS = "too many channels joined"
JOIN_CRASHED = "join crashed"
CHANNEL_CRASH = "channel_crash"
RATE_LIMITED = "rate_limited"
UNKNOWN_EVENT = "unknown event"


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ClientError(GatewayError):
    """The peer sent something the protocol does not allow."""

    close_code = CLOSE_INTERNAL


class MalformedFrame(ClientError):
    """A frame that is not a Phoenix message (bad JSON, wrong shape, truncated binary)."""


class EncodeError(GatewayError):
    """A value the chosen serializer cannot carry (binary on V1, header field over 255 bytes)."""


class ConfigError(GatewayError):
    """Settings that cannot work together."""
