"""The connect step shared by both transports: origin, vsn, limits and identity.

Returns the socket's `SocketInfo` and serializer, or raises `ConnectRefused` with the HTTP
status Phoenix answers (403 for origin, vsn and auth; 429 for connect floods; 503 when the
node is full or draining).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import structlog
from aiohttp import web

from gateway.auth.authenticator import Refusal
from gateway.channels.context import SocketInfo
from gateway.observability.labels import ConnectResult
from gateway.protocol.serializers import Serializer, select_serializer
from gateway.runtime.connection import Connection
from gateway.transports.params import parse_query
from gateway.transports.peer import client_address

if TYPE_CHECKING:
    from gateway.transports.parts import TransportParts

log = structlog.get_logger("gateway.connect")

BEARER_PREFIX = "base64url.bearer.phx."


class RequestHead(NamedTuple):
    """What the connect step reads of a request: from aiohttp's `web.Request`, or from the
    listener's own parse of a WebSocket upgrade (`listener.py`)."""

    remote: str  # the TCP peer's address
    headers: Mapping[str, str]  # case-insensitive (multidict)
    query_string: str  # raw, still percent-encoded
    scheme: str  # "http" or "https"
    host: str  # the Host header


def request_head(request: web.Request) -> RequestHead:
    return RequestHead(
        request.remote or "", request.headers, request.query_string, request.scheme, request.host
    )


class ConnectRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    @property
    def result(self) -> ConnectResult:
        """The `result` label of the connects metric."""
        return _RESULTS.get(self.reason, "auth")


_RESULTS: dict[str, ConnectResult] = {
    "draining": "draining",
    "capacity": "capacity",
    "rate_limited": "rate_limited",
    "origin": "origin",
    "vsn": "vsn",
}


def split_subprotocols(header: str | None) -> tuple[str | None, list[str]]:
    """The phoenix.js authToken and the remaining offered subprotocols (docs/wire.md, "Endpoints and
    handshake")."""
    if not header:
        return None, []
    entries = [p.strip() for p in header.split(",") if p.strip()]
    bearers = [p for p in entries if p.startswith(BEARER_PREFIX)]
    token: str | None = None
    if len(bearers) == 1:
        encoded = bearers[0][len(BEARER_PREFIX) :]
        try:
            token = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            token = None
        entries.remove(bearers[0])
    return token, entries


def connect_socket(
    parts: TransportParts, request: RequestHead, auth_token: str | None, transport: str
) -> tuple[SocketInfo, Serializer]:
    headers = request.headers
    peer = client_address(request.remote, headers.get("X-Forwarded-For"), parts.trusted_proxies)
    hub = parts.connection.hub
    if hub.draining:
        raise ConnectRefused(503, "draining")
    caps = parts.limits
    if len(hub) >= caps.max_connections or hub.per_ip[peer] >= caps.max_connections_per_ip:
        log.warning("socket_refused", reason="capacity", peer=peer, connections=len(hub))
        raise ConnectRefused(503, "capacity")
    if not parts.connection.admission.admit_connect(peer):
        log.info("socket_refused", reason="rate_limited", peer=peer)
        raise ConnectRefused(429, "rate_limited")
    origin_check = parts.origin_check
    if origin_check is not None and not origin_check(
        headers.get("Origin"), request.scheme, request.host
    ):
        log.info("socket_refused", reason="origin", origin=headers.get("Origin"))
        raise ConnectRefused(403, "origin")
    params = parse_query(request.query_string)
    vsn = params.get("vsn")
    # No vsn means 1.0.0; a vsn that is not a plain string is refused (since 1.8.6).
    serializer = (
        select_serializer(None)
        if "vsn" not in params
        else select_serializer(vsn)
        if isinstance(vsn, str)
        else None
    )
    if serializer is None:
        log.info(
            "socket_refused",
            reason="vsn",
            vsn=str(vsn),
        )
        raise ConnectRefused(403, "vsn")
    identity = parts.authenticator.authenticate(params, auth_token)
    if isinstance(identity, Refusal):
        # The detail never contains the token itself.
        log.info(
            "socket_refused",
            reason="auth",
            auth_reason=identity.reason,
            detail=identity.detail,
            peer=peer,
        )
        raise ConnectRefused(403, identity.reason)
    user_id, authenticated, claims = identity.user_id, identity.authenticated, dict(identity.claims)
    conn_id = Connection.new_id(parts.node)
    info = SocketInfo(
        conn_id=conn_id,
        user_id=user_id,
        authenticated=authenticated,
        transport=transport,
        serializer_vsn=serializer.vsn,
        params=params,
        peer=peer,
        socket_id=caps.socket_id_template.format(user_id=user_id) if user_id else None,
        claims=claims,
    )
    log.debug(
        "socket_connected",
        conn_id=conn_id,
        user_id=user_id,
        transport=transport,
        vsn=serializer.vsn,
    )
    return info, serializer
