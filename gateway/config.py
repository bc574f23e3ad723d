"""Settings: msgspec Structs grouped by concern, filled from defaults, `GATEWAY_*` environment
and CLI flags.

Every field of a group is an option named after the field alone: `--field-name` on the command
line and `GATEWAY_FIELD_NAME` in the environment (flags win), so option names are unique across
groups. `OPTION_HELP` documents each one; `docs/configuration.md` is generated from the same
table, a section per group.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.errors import ConfigError
from gateway.ice import IcePolicy, split_list
from gateway.sfu.placement import MEDIA_MODES, check_sfu_url


class ListenConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Listening and what is served"""

    host: str = "127.0.0.1"
    port: int = 4000
    socket_path: str = "/socket"
    websocket: bool = True
    longpoll: bool = True
    check_origin: str = "false"
    url_host: str = "localhost"
    echo: bool = True
    demo: bool = True

    def __post_init__(self) -> None:
        if not self.socket_path.startswith("/") or self.socket_path.endswith("/"):
            raise ConfigError("socket_path must start with / and not end with /")


class ConnectionsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Connections: caps, frames, outbound bytes"""

    max_frame_bytes: int = 10_000_000
    idle_timeout_ms: int = 60_000
    max_channels: int = 100
    outbound_limit_bytes: int = 8_000_000
    outbound_budget_bytes: int = 256_000_000
    socket_send_buffer_bytes: int = 262_144
    max_connections: int = 100_000
    max_connections_per_ip: int = 10_000
    header_timeout_s: float = 5.0
    trusted_proxies: str = ""
    socket_id_template: str = "users_socket:{user_id}"


class LongPollConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Long-poll"""

    longpoll_window_ms: int = 10_000
    longpoll_max_body_bytes: int = 8_000_000
    longpoll_secret: str = ""
    longpoll_pubsub_timeout_ms: int = 2_000


class AuthConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Identity and authorization"""

    allow_anonymous: bool = True
    trust_token_as_user_id: bool = False
    phoenix_secret_key_base: str = ""
    phoenix_token_salt: str = "user socket"
    phoenix_token_max_age: str = "86400"
    phoenix_key_iterations: int = 1000
    phoenix_key_length: int = 32
    phoenix_key_digest: str = "sha256"
    jwt_algorithms: str = "HS256,RS256,ES256"
    jwt_secret: str = ""
    jwt_public_key_file: str = ""
    jwt_jwks_file: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_user_claim: str = "sub"
    jwt_leeway: float = 0.0
    room_authorizer: str = ""
    admin_token: str = ""


class RatesConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rate limits (per second, burst)"""

    rate_limits: bool = True
    rate_limit_max_keys: int = 200_000
    rate_signaling: float = 5.0
    burst_signaling: int = 10
    rate_chat: float = 5.0
    burst_chat: int = 5
    rate_join: float = 10.0
    burst_join: int = 10
    rate_connect: float = 20.0
    burst_connect: int = 20
    rate_other: float = 20.0
    burst_other: int = 40
    rate_echo: float = 0.0
    burst_echo: int = 100


class RoomsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rooms, presence and signaling sessions"""

    room_max_members: int = 50
    room_grace_ms: int = 15_000
    room_grace_queue: int = 100
    room_max_payload_bytes: int = 131_072
    signaling_requires_auth: bool = False
    presence_coalesce_ms: int = 50
    presence_ttl_s: float = 30.0
    session_retention_s: int = 86_400
    session_max_rooms: int = 10_000
    chat_max_bytes: int = 67_108_864


class IceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Calls: ICE servers handed out in the room join (gateway/ice.py)"""

    stun_urls: str = ""
    turn_urls: str = ""
    turn_secret: str = ""
    turn_ttl_s: int = 3_600
    turn_for_anonymous: bool = False

    def __post_init__(self) -> None:
        self.policy()  # refuses malformed STUN/TURN URLs and TURN without a secret at start

    def policy(self) -> IcePolicy:
        return IcePolicy.parse(
            self.stun_urls,
            self.turn_urls,
            self.turn_secret,
            self.turn_ttl_s,
            self.turn_for_anonymous,
        )


class SfuConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Media: mesh calls, or a Janus VideoRoom bridged through the room channel (gateway/sfu/)"""

    room_media: str = "mesh"
    sfu_url: str = ""
    sfu_admin_key: str = ""
    sfu_timeout_ms: int = 5_000

    def __post_init__(self) -> None:
        if self.room_media not in MEDIA_MODES:
            raise ConfigError("room_media is mesh or sfu")
        if self.room_media == "sfu" and not self.sfu_url:
            raise ConfigError("--room-media sfu needs --sfu-url (a Janus WebSocket API)")
        self.urls()

    def urls(self) -> tuple[str, ...]:
        """The Janus servers rooms are placed on (comma list), each checked."""
        return tuple(check_sfu_url(url) for url in split_list(self.sfu_url))


class RedisConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Scale-out through Redis"""

    redis_url: str = ""
    redis_cluster: bool = False
    redis_buffer: int = 10_000
    redis_backoff_max_ms: int = 2_000


class ProcessConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The node, its workers and its drain"""

    node_id: str = ""
    workers: int = 1
    drain_grace_s: float = 30.0
    drain_batch: int = 1_000
    drain_interval_ms: int = 200

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")


class HistoryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """History in PostgreSQL (gateway/history/)"""

    database_url: str = ""
    database_migrate: bool = False
    database_queue: int = 100_000
    database_batch: int = 500
    database_backoff_max_ms: int = 5_000
    database_flush_timeout_s: float = 10.0
    retention_days: float = 30.0


class ObservabilityConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Metrics and logs"""

    metrics: bool = True
    metrics_port: int = 0
    log_format: str = "console"
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.log_format not in ("console", "json"):
            raise ConfigError("log_format is console or json")


class RecordingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Session recording (gateway/recording.py)"""

    record_dir: str = ""
    record_sample_rate: float = 1.0


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the gateway can be told at start, a group per concern."""

    listen: ListenConfig = msgspec.field(default_factory=ListenConfig)
    connections: ConnectionsConfig = msgspec.field(default_factory=ConnectionsConfig)
    longpoll: LongPollConfig = msgspec.field(default_factory=LongPollConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    rates: RatesConfig = msgspec.field(default_factory=RatesConfig)
    rooms: RoomsConfig = msgspec.field(default_factory=RoomsConfig)
    ice: IceConfig = msgspec.field(default_factory=IceConfig)
    sfu: SfuConfig = msgspec.field(default_factory=SfuConfig)
    redis: RedisConfig = msgspec.field(default_factory=RedisConfig)
    process: ProcessConfig = msgspec.field(default_factory=ProcessConfig)
    history: HistoryConfig = msgspec.field(default_factory=HistoryConfig)
    observability: ObservabilityConfig = msgspec.field(default_factory=ObservabilityConfig)
    recording: RecordingConfig = msgspec.field(default_factory=RecordingConfig)

    def __post_init__(self) -> None:
        if self.process.workers > 1 and not self.redis.redis_url:
            raise ConfigError(
                "--workers above 1 needs --redis-url: processes share rooms through Redis"
            )

    @property
    def node(self) -> str:
        """This node's id: --node-id, or one generated per process."""
        return self.process.node_id or _NODE_ID


_NODE_ID = uuid.uuid4().hex[:12]

OPTION_HELP: dict[str, str] = {
    "host": "address to listen on",
    "port": "port to listen on",
    "socket_path": "mount path of the socket; transports live at PATH/websocket and PATH/longpoll",
    "websocket": "serve the WebSocket transport",
    "longpoll": "serve the long-poll transport",
    "check_origin": "origin policy: false, true (same host), conn (same scheme/host/port) or a comma list like //example.com,https://*.example.org",
    "url_host": "the public host name that check_origin=true compares origins against",
    "max_frame_bytes": "largest incoming WebSocket frame; larger closes with 1009",
    "idle_timeout_ms": "close a WebSocket after this long without any frame from the client",
    "max_channels": "channels one connection may join",
    "outbound_budget_bytes": "unsent bytes all WebSocket connections of this process may owe "
    "together; past it the largest debtors are closed first (1013)",
    "socket_send_buffer_bytes": "kernel send buffer per connection (SO_SNDBUF), bounding what "
    "the kernel holds for a client that does not read; 0 keeps the kernel's autotuning",
    "outbound_limit_bytes": "unsent bytes a connection may hold before it is dropped as a slow consumer",
    "max_connections": "connections this process accepts in total; more get HTTP 503",
    "max_connections_per_ip": "connections one client address may hold; more get HTTP 503",
    "header_timeout_s": "seconds a new TCP connection has to send its first request head; "
    "slower ones are closed (they count toward the connection caps meanwhile)",
    "trusted_proxies": "load balancers (addresses or CIDRs, comma separated) whose X-Forwarded-For names the client for per-address limits",
    "socket_id_template": "socket id of a connection, whose 'disconnect' broadcast closes it",
    "longpoll_window_ms": "how long a long-poll GET is held waiting for messages",
    "longpoll_max_body_bytes": "largest long-poll POST body; larger gets HTTP 400",
    "longpoll_secret": "secret long-poll session tokens are signed with; nodes sharing sessions through Redis need the same one (default: random per process)",
    "longpoll_pubsub_timeout_ms": "how long a node waits for another node to acknowledge a forwarded long-poll request before the session counts as gone",
    "echo": "serve the built-in echo:* channel",
    "demo": "serve the /demo page",
    "allow_anonymous": "accept connections without a token (they get a generated user id)",
    "trust_token_as_user_id": "take the token connect param as the user id (development and load tests only)",
    "phoenix_secret_key_base": "secret_key_base of the Phoenix app whose Phoenix.Token tokens are accepted",
    "phoenix_token_salt": "salt the Phoenix app signs socket tokens with",
    "phoenix_token_max_age": "maximum token age in seconds, 'infinity', or 'embedded' (the max_age signed into each token)",
    "phoenix_key_iterations": "PBKDF2 iterations of the Phoenix app's key derivation",
    "phoenix_key_length": "derived key length in bytes",
    "phoenix_key_digest": "PBKDF2 digest: sha256, sha384 or sha512",
    "jwt_algorithms": "JWT algorithms accepted",
    "jwt_secret": "shared secret for HS256 JWTs",
    "jwt_public_key_file": "PEM public key for RS256/ES256 JWTs",
    "jwt_jwks_file": "JWKS file with the JWT public keys",
    "jwt_issuer": "required JWT iss",
    "jwt_audience": "required JWT aud",
    "jwt_user_claim": "JWT claim holding the user id",
    "jwt_leeway": "clock leeway in seconds for exp/nbf",
    "signaling_requires_auth": "only authenticated users may send signaling events",
    "room_authorizer": "package.module:function called on each room join with a RoomJoin; returns (or awaits) True to admit",
    "admin_token": "bearer token for the /api admin endpoints (empty: endpoints disabled)",
    "rate_limits": "enforce the per-user rate limits",
    "rate_limit_max_keys": "buckets kept at most (all classes); when full, the oldest key is evicted, so new users are never locked out",
    "rate_signaling": "signaling events per second per user",
    "burst_signaling": "signaling burst",
    "rate_chat": "chat messages per second per user",
    "burst_chat": "chat burst",
    "rate_join": "joins per second per connection",
    "burst_join": "join burst",
    "rate_connect": "connects per second per client address",
    "burst_connect": "connect burst",
    "rate_other": "other pushes per second per user",
    "burst_other": "other pushes burst",
    "rate_echo": "echo:* pushes per second per user (0: not limited)",
    "burst_echo": "echo:* burst",
    "room_max_members": "members one room holds",
    "room_grace_ms": "how long a dropped member stays addressable",
    "room_grace_queue": "messages queued for one dropped member",
    "room_max_payload_bytes": "largest room event payload",
    "presence_coalesce_ms": "window presence diffs are merged over (0: send each at once)",
    "session_retention_s": "how long a room's signaling session is kept after it empties",
    "session_max_rooms": "signaling sessions kept in memory at most (the oldest, emptied first, go)",
    "chat_max_bytes": "chat history kept in memory across all rooms, in bytes (the oldest messages go)",
    "stun_urls": "STUN servers for the room join's ice_servers, comma separated (stun:host[:port])",
    "turn_urls": "TURN servers for the room join's ice_servers, comma separated "
    "(turn:host[:port] or turns:host[:port], optionally ?transport=udp or ?transport=tcp); needs turn_secret",
    "turn_secret": "coturn's static-auth-secret (use-auth-secret); a comma list during a rotation, "
    "the first signs",
    "turn_ttl_s": "seconds a TURN credential stays valid; an hour covers joining and starting a call, "
    "and a leaked credential is worthless after it (the ice_servers push gives fresh ones)",
    "turn_for_anonymous": "give anonymous users TURN too (relays cost bandwidth; off: STUN only)",
    "room_media": "media of new rooms: mesh (members call each other) or sfu (through Janus; "
    "needs sfu_url); a first member's join param media picks it per room",
    "sfu_url": "Janus WebSocket API URLs (ws://host:8188/), comma separated; each room is placed "
    "on one by a stable hash of its id, the same on every node",
    "sfu_admin_key": "the VideoRoom plugin's admin_key, sent when the gateway creates rooms",
    "sfu_timeout_ms": "how long a Janus request may take before the push is refused "
    "(sfu unavailable)",
    "redis_url": "Redis URL; set it to share rooms across processes and hosts",
    "redis_cluster": "treat redis_url as a Redis Cluster (sharded pub/sub)",
    "node_id": "this node's id (default: generated)",
    "workers": "worker processes sharing the port (SO_REUSEPORT); above 1 needs redis_url",
    "redis_buffer": "cross-node publishes kept while Redis is unreachable; beyond it the oldest are dropped",
    "redis_backoff_max_ms": "longest wait between Redis reconnect attempts (backoff doubles up to it)",
    "database_url": "PostgreSQL URL (postgresql://user:password@host:port/db); set it to keep "
    "signaling sessions and chat in PostgreSQL and serve the history API",
    "database_migrate": "apply the schema migrations at start (else run `python -m gateway migrate`)",
    "database_queue": "history writes queued for PostgreSQL at most; beyond it the oldest are dropped",
    "database_batch": "writes one PostgreSQL transaction takes at most",
    "database_backoff_max_ms": "longest wait between PostgreSQL reconnect attempts (backoff doubles up to it)",
    "database_flush_timeout_s": "on a graceful drain, how long the queued history writes may take "
    "to reach PostgreSQL before the process exits anyway",
    "retention_days": "history rows (sessions emptied, events, chat) older than this are deleted "
    "by a job each hour (0: kept forever)",
    "presence_ttl_s": "presence entries of a node that stops refreshing them expire after this long",
    "drain_grace_s": "longest a graceful drain may take",
    "drain_batch": "connections closed per drain step",
    "drain_interval_ms": "pause between drain steps",
    "metrics": "collect Prometheus metrics (off only to measure their cost)",
    "metrics_port": "serve /metrics on this port too (0: only on the main port)",
    "log_format": "console or json",
    "log_level": "debug, info, warning or error",
    "record_dir": "write sampled sessions as load-test recordings into this directory",
    "record_sample_rate": "share of connections recorded (0..1)",
}


def env_name(field: str) -> str:
    return "GATEWAY_" + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def groups() -> dict[str, type[msgspec.Struct]]:
    """The groups of Settings by attribute name, in order."""
    return {f.name: f.type for f in msgspec.structs.fields(Settings)}  # type: ignore[misc]


def option_groups() -> dict[str, str]:
    """Each option's group: `{"port": "listen", ...}`, in reference order."""
    return {
        f.name: group for group, struct in groups().items() for f in msgspec.structs.fields(struct)
    }


def field_types() -> dict[str, type]:
    """Each option's type, in reference order."""
    return {
        f.name: f.type  # type: ignore[misc]
        for struct in groups().values()
        for f in msgspec.structs.fields(struct)
    }


def option_values(settings: Settings) -> dict[str, Any]:
    """Each option's value in `settings`, by option name."""
    return {
        name: getattr(getattr(settings, group), name) for name, group in option_groups().items()
    }


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"not a boolean: {text!r}")


def _convert(field: str, typ: Any, text: str) -> Any:
    try:
        if typ is bool or typ == "bool":
            return parse_bool(text)
        if typ is int or typ == "int":
            return int(text)
        if typ is float or typ == "float":
            return float(text)
    except ValueError:
        raise ConfigError(f"{field}: not a number: {text!r}") from None
    return text


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then `GATEWAY_*` variables, then explicit overrides (already typed or text),
    all by option name."""
    env = os.environ if environ is None else environ
    types = field_types()
    values: dict[str, Any] = {}
    for name, typ in types.items():
        raw = env.get(env_name(name))
        if raw is not None:
            values[name] = _convert(name, typ, raw)
    for name, value in (overrides or {}).items():
        if name not in types:
            raise ConfigError(f"unknown option {name}")
        if value is None:
            continue
        values[name] = _convert(name, types[name], value) if isinstance(value, str) else value
    nested: dict[str, dict[str, Any]] = {group: {} for group in groups()}
    option_group = option_groups()
    for name, value in values.items():
        nested[option_group[name]][name] = value
    try:
        return msgspec.convert(nested, Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc)) from None


def render_reference() -> str:
    """The configuration reference (docs/configuration.md), from the Settings groups."""
    defaults = Settings()
    lines = [
        "# Configuration reference",
        "",
        "Every option is a flag of `.venv/bin/python -m gateway serve` and an environment variable; flags",
        "win over the environment. Booleans take `true`/`false` (flags: `--x` / `--no-x`).",
        "This file is generated from `gateway/config.py` (`.venv/bin/python -m gateway config-reference`).",
        "Options are grouped as `Settings` groups them (`settings.<group>.<option>` in the code).",
    ]
    for group, struct in groups().items():
        lines += [
            "",
            f"## `{group}`: {struct.__doc__}",
            "",
            "| option | environment | default | meaning |",
            "|---|---|---|---|",
        ]
        group_defaults = getattr(defaults, group)
        for f in msgspec.structs.fields(struct):
            default = getattr(group_defaults, f.name)
            shown = (
                "(empty)"
                if default == ""
                else f"`{str(default).lower() if isinstance(default, bool) else default}`"
            )
            lines.append(
                f"| `{flag_name(f.name)}` | `{env_name(f.name)}` | {shown} "
                f"| {OPTION_HELP.get(f.name, '')} |"
            )
    return "\n".join(lines) + "\n"
