"""Long-poll sessions: the `Sink` a long-poll connection writes to, and this node's registry.

A session buffers outbound frames until a GET collects them, holds one GET at a time (a newer
GET takes over; the older one runs out its window and gets 204), and ends when no GET was seen
for 1.5 x window, when its buffer overflows, or when its connection closes (disconnect
broadcast, drain). The rules come from `protocol.longpoll`; this module carries them out.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from gateway.errors import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN
from gateway.observability import metrics
from gateway.protocol import longpoll as rules
from gateway.protocol.messages import Frame
from gateway.runtime.connection import Connection

if TYPE_CHECKING:
    from gateway.channels.context import SocketInfo
    from gateway.protocol.serializers import Serializer
    from gateway.runtime.parts import ConnectionParts

log = structlog.get_logger("gateway.longpoll")

INACTIVE = "inactive"


class LongPollSession:
    """One long-poll client: its connection, its outbound buffer and its held GET."""

    transport = "longpoll"

    def __init__(
        self,
        session_id: str,
        token: str,
        window_s: float,
        limit_bytes: int,
        on_end: Callable[[LongPollSession], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = session_id
        self.token = token
        self.window_s = window_s
        self.limit_bytes = limit_bytes
        self.conn: Connection | None = None
        self._on_end = on_end
        self._clock = clock
        self._frames: list[bytes] = []
        self._size = 0
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._polls = 0  # GETs being held: a held GET keeps the session alive
        self.last_poll = clock()
        self._timer: asyncio.TimerHandle | None = None

    # -- Sink -------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, frame: Frame) -> None:
        if self._closed:
            return
        if not frame.text:
            # phoenix.js hands every long-poll message to JSON.parse; a binary frame would
            # throw inside the client, so it is not sent (Phoenix cannot send one either).
            log.info("frame_rejected", session=self.id, error="binary frame on long-poll")
            return
        self._frames.append(frame.data)
        self._size += len(frame.data)
        if self._size > self.limit_bytes:
            log.warning(
                "slow_consumer_disconnected",
                transport="longpoll",
                session=self.id,
                bytes=self._size,
            )
            self._end(CLOSE_TRY_AGAIN, "slow consumer")
            return
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def close(self, code: int, reason: str = "") -> None:
        """Called by the connection as it closes: the session is gone for good."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._on_end(self)
        log.debug("socket_closed", transport="longpoll", session=self.id, code=code, reason=reason)

    def _end(self, code: int, reason: str) -> None:
        if self.conn is not None:
            self.conn.close(code, reason)  # calls self.close, then stops the channels
        else:
            self.close(code, reason)

    # -- idle shutdown (docs/longpoll.md, "How a session works") ---------------------------
    def start_idle_timer(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(rules.IDLE_FACTOR * self.window_s, self._check_idle)

    def _check_idle(self) -> None:
        if self._closed:
            return
        deadline = rules.idle_deadline(self.last_poll, self.window_s)
        remaining = deadline - self._clock()
        if self._polls or remaining > 0:
            delay = remaining if remaining > 0 else rules.IDLE_FACTOR * self.window_s
            self._timer = asyncio.get_running_loop().call_later(delay, self._check_idle)
            return
        log.info("heartbeat_timeout", transport="longpoll", session=self.id)
        self._end(CLOSE_GOING_AWAY, INACTIVE)

    # -- GET and POST on the owner ----------------------------------------------------------
    def _take(self) -> list[bytes]:
        frames, self._frames, self._size = self._frames, [], 0
        return frames

    async def poll(self) -> rules.Answer:
        """Everything buffered at once, else hold until a frame arrives or the window ends."""
        self.last_poll = self._clock()
        if self._frames:
            return rules.Answer(200, rules.poll_body(rules.OK, self.token, self._take()))
        if self._closed:
            return rules.GONE_ANSWER
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = waiter  # a newer GET takes over delivery from an older one
        self._polls += 1
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.window_s)
        except TimeoutError:
            pass
        finally:
            self._polls -= 1
            if self._waiter is waiter:
                self._waiter = None
            self.last_poll = self._clock()
        if waiter.done() and self._frames:
            return rules.Answer(200, rules.poll_body(rules.OK, self.token, self._take()))
        # The window ran out, the session ended with nothing left, or a newer GET took over.
        return rules.Answer(200, rules.poll_body(rules.NO_CONTENT, self.token, []))

    def post(self, body: bytes, content_type: str | None) -> rules.Answer:
        """Dispatch a batch into the connection, line by line, in order (docs/longpoll.md)."""
        conn = self.conn
        if conn is None or self._closed:
            return rules.GONE_ANSWER
        try:
            messages = rules.decode_batch(rules.split_batch(body, content_type), conn.serializer)
        except rules.BadBatch as exc:
            log.info("frame_rejected", transport="longpoll", session=self.id, error=str(exc))
            return rules.BAD_REQUEST
        started = self._clock()
        for msg in messages:
            if conn.closed:
                return rules.GONE_ANSWER
            timed_out = rules.post_status(self._clock() - started, self.window_s)
            if timed_out is not None:
                return rules.Answer(200, rules.status_body(timed_out))
            conn.handle(msg)
        return rules.Answer(200, rules.status_body(rules.OK))


class SessionRegistry:
    """This node's long-poll sessions, by id."""

    def __init__(
        self,
        parts: ConnectionParts,
        signer: rules.TokenSigner,
        node: str,
        window_s: float,
        outbound_limit_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.parts = parts
        self.signer = signer
        self.node = node
        self.window_s = window_s
        self.outbound_limit_bytes = outbound_limit_bytes
        self.clock = clock
        self.sessions: dict[str, LongPollSession] = {}

    def open(self, info: SocketInfo, serializer: Serializer) -> LongPollSession:
        """A new session around a new connection; its token names this node."""
        session_id = secrets.token_urlsafe(16)
        token = self.signer.sign(self.node, session_id, time.time())
        session = LongPollSession(
            session_id,
            token,
            self.window_s,
            self.outbound_limit_bytes,
            self._ended,
            self.clock,
        )
        conn = Connection(self.parts, session, serializer, info)
        session.conn = conn
        self.sessions[session_id] = session
        metrics.LONGPOLL_SESSIONS.inc()
        conn.opened()
        session.start_idle_timer()
        return session

    def _ended(self, session: LongPollSession) -> None:
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
            metrics.LONGPOLL_SESSIONS.dec()

    async def serve(self, request: rules.Forwarded) -> rules.Answer:
        """Answer a GET or POST for one of this node's sessions (local or forwarded)."""
        session = self.sessions.get(request.session)
        if session is None or session.closed or session.token != request.token:
            return rules.GONE_ANSWER
        if request.kind == rules.POLL:
            return await session.poll()
        return session.post(request.body, request.content_type)
