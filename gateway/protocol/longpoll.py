"""The long-poll transport's pure rules: session tokens, POST batches, statuses and bodies.

Everything here is a value in, a value out (docs/longpoll.md, "How a session works"); the aiohttp handlers and the
session objects only carry the decisions out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final

import msgspec

from gateway.errors import ClientError
from gateway.protocol import jsonenc
from gateway.protocol.messages import Message
from gateway.protocol.serializers import Serializer

# Statuses carried in the JSON body; the HTTP status is 200 (docs/longpoll.md, "Status codes").
OK: Final = 200
NO_CONTENT: Final = 204
FORBIDDEN: Final = 403
REQUEST_TIMEOUT: Final = 408
GONE: Final = 410

NDJSON: Final = "application/x-ndjson"
MAX_LINES: Final = 100  # lines of one ndjson POST; the rest is ignored (Phoenix 1.8.9+)
MAX_BASE64_LINE: Final = 10_000_000  # characters of one base64 line; over is HTTP 400
TOKEN_MAX_AGE_S: Final = 1_209_600  # 14 days, Phoenix's long-poll crypto max_age
IDLE_FACTOR: Final = 1.5  # a session ends after 1.5 x window_ms without a poll (docs/longpoll.md)
TOKEN_HEADER: Final = "x-phoenix-longpoll-token"
AUTH_HEADER: Final = "x-phoenix-authtoken"

_TOKEN_VERSION: Final = 1
_KEY_LABEL: Final = b"gateway longpoll session token v1"


# -- session tokens (docs/longpoll.md, "Session tokens") ------------------------------------


class SessionRef(msgspec.Struct, array_like=True, frozen=True):
    """What a verified token names: the owning node, the session there, and its expiry."""

    version: int
    node: str
    session: str
    expires: int  # unix seconds


_ref_encoder = msgspec.json.Encoder()
_ref_decoder = msgspec.json.Decoder(SessionRef)


def derive_key(secret: str, fallback: bytes) -> bytes:
    """The signing key: from the shared `longpoll_secret`, or this process's random bytes.

    Nodes that share a secret verify each other's tokens, which forwarding needs; the label
    keeps the key distinct from any other use of the same secret.
    """
    if not secret:
        return fallback
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and verifies session tokens: `base64url(json ref) "." base64url(HMAC-SHA256)`.

    Tokens are URL-safe, opaque to clients, and cannot be forged without the key or used once
    their expiry has passed.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()

    def sign(self, node: str, session: str, now: float, max_age_s: int = TOKEN_MAX_AGE_S) -> str:
        ref = SessionRef(_TOKEN_VERSION, node, session, int(now) + max_age_s)
        body = _b64(_ref_encoder.encode(ref))
        return f"{body}.{_b64(self._mac(body))}"

    def verify(self, token: str | None, now: float) -> SessionRef | None:
        """The token's session, or None when it is absent, malformed, forged or expired."""
        if not token or len(token) > 1024:
            return None
        body, dot, mac = token.partition(".")
        if not dot:
            return None
        try:
            given = _unb64(mac)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(body)):
            return None
        try:
            ref = _ref_decoder.decode(_unb64(body))
        except (binascii.Error, ValueError, msgspec.DecodeError):
            return None
        if ref.version != _TOKEN_VERSION or ref.expires <= now:
            return None
        return ref


def pick_token(header: str | None, query: object) -> str | None:
    """The session token of a request: the header wins over the `token` param (docs/longpoll.md)."""
    if header:
        return header
    return query if isinstance(query, str) and query else None


# -- POST bodies (docs/longpoll.md, "How a session works") ---------------------------------


class BadBatch(ClientError):
    """A POST body that cannot be a batch of frames: answered with HTTP 400."""


class Line(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One frame of a POST: text JSON, or the bytes of a binary frame."""

    data: bytes
    text: bool


def split_batch(body: bytes, content_type: str | None) -> list[Line]:
    """The frames of a POST body, in order; raises `BadBatch` for an undecodable line.

    Only the exact content type `application/x-ndjson` is a batch: lines split on `\\n` or
    `\\r\\n`, at most the first 100 kept, `[`-lines are text and the others padded standard
    base64 of binary frames. Any other content type makes the whole body one text frame.
    """
    if content_type != NDJSON:
        return [Line(body, True)]
    lines: list[Line] = []
    for raw in body.split(b"\n", MAX_LINES)[:MAX_LINES]:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line.startswith(b"["):
            lines.append(Line(line, True))
            continue
        if len(line) > MAX_BASE64_LINE:
            raise BadBatch("base64 line too long")
        try:
            lines.append(Line(base64.b64decode(line, validate=True), False))
        except binascii.Error:
            raise BadBatch("line is neither a JSON array nor base64") from None
    return lines


def decode_batch(lines: list[Line], serializer: Serializer) -> list[Message]:
    """Every line decoded before any is dispatched, so a bad line leaves the session as it was."""
    messages: list[Message] = []
    for line in lines:
        try:
            if line.text:
                messages.append(serializer.decode_text(line.data))
            else:
                messages.append(serializer.decode_binary(line.data))
        except ClientError as exc:
            raise BadBatch(str(exc)) from None
    return messages


def post_status(elapsed_s: float, window_s: float) -> int | None:
    """408 once dispatching a batch has taken longer than the window; None to go on."""
    return REQUEST_TIMEOUT if elapsed_s > window_s else None


# -- sessions (docs/longpoll.md, "How a session works") -----------------------------------


def idle_deadline(last_poll: float, window_s: float) -> float:
    """When a session without polls ends; POSTs do not move it."""
    return last_poll + IDLE_FACTOR * window_s


def open_status(refused: bool) -> int:
    """A GET without a live session: 410 opens one, 403 for any refusal (origin, vsn, auth,
    limits). phoenix.js throws on other GET statuses, so 429 and 503 become 403 here."""
    return FORBIDDEN if refused else GONE


# -- bodies ---------------------------------------------------------------------------------


def status_body(status: int) -> bytes:
    """`{"status":N}`: refusals, POST answers, and 410 for a POST without a session."""
    return b'{"status":%d}' % status


def poll_body(status: int, token: str, frames: list[bytes]) -> bytes:
    """`{"messages":[...],"status":N,"token":"..."}` with keys sorted as Phoenix writes them.

    Each message is one serialized text frame carried as a JSON string.
    """
    messages = b",".join(jsonenc.encode_str(data.decode()) for data in frames)
    return (
        b'{"messages":['
        + messages
        + b'],"status":%d,"token":' % status
        + jsonenc.encode_str(token)
        + b"}"
    )


# -- forwarding between nodes (issue point 4) -----------------------------------------------

POLL: Final = "poll"
POST: Final = "post"


class Forwarded(msgspec.Struct, array_like=True, frozen=True):
    """A GET or POST for a session, as the node that received it hands it to the owner."""

    kind: str  # POLL or POST
    session: str
    token: str
    body: bytes = b""
    content_type: str | None = None


class Answer(msgspec.Struct, array_like=True, frozen=True):
    """The owner's answer. `gone` means the session no longer exists (the receiver then opens
    a new one for a GET, or answers 410 for a POST)."""

    http_status: int
    body: bytes
    gone: bool = False


GONE_ANSWER: Final = Answer(200, status_body(GONE), gone=True)
BAD_REQUEST: Final = Answer(400, b"")
