"""One virtual user: a Phoenix client connection that joins, pushes and measures what comes back.

It behaves like phoenix.js where the server can tell: the same URL layout and `vsn`, join_ref
equal to the join's ref, refs from one counter per socket, a heartbeat every 30 s with a close
(code 1000, as phoenix.js does) when one goes unanswered. Timers (reply timeouts, heartbeats)
are driven by the worker's once-a-second `tick`, so ten thousand users cost no timer tasks.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import msgspec

from loadtest import wire, wsclient
from loadtest.metrics import Metrics

# Scenario payloads carry their send time as `ltns` followed by wall-clock nanoseconds, inside
# any string or number field; receivers find it without knowing the payload's shape.
STAMP_RE = re.compile(rb"ltns\W{0,3}(\d{16,20})")
HEARTBEAT_EVENT = "heartbeat"
CLIENT_CLOSE = 1000

Listener = Callable[[wire.Inbound], None]


def stamp() -> str:
    """A delivery stamp to embed in a payload."""
    return f"ltns:{time.time_ns()}"


class Pending(msgspec.Struct, gc=False):
    """A sent frame waiting for its reply."""

    sent_ns: int
    kind: str
    topic: str
    expect: str | None  # the status to expect; None accepts any
    interval_us: int
    waiter: asyncio.Future[wire.Inbound | None] | None = None
    required: bool = True  # a missing reply is an error (else it is counted as unanswered)


class DeliveryTable:
    """Payloads sent by users who share a group, so a receiver can time a relayed payload that
    carries no stamp (exact payload match). Entries expire; the table is bounded."""

    def __init__(self, limit: int = 100_000, ttl_s: float = 30.0) -> None:
        self._sent: dict[bytes, int] = {}
        self._limit = limit
        self._ttl_ns = int(ttl_s * 1e9)

    def note(self, payload: bytes, sent_ns: int) -> None:
        if len(self._sent) < self._limit:
            self._sent[payload] = sent_ns

    def match(self, payload: bytes) -> int | None:
        return self._sent.get(payload)

    def __bool__(self) -> bool:
        return bool(self._sent)

    def expire(self, now_ns: int) -> None:
        cutoff = now_ns - self._ttl_ns
        for key in [k for k, t in self._sent.items() if t < cutoff]:
            del self._sent[key]


class VirtualUser:
    """A connection plus its channels' state. `url` is the socket endpoint (`…/socket`)."""

    def __init__(
        self,
        n: int,
        url: str,
        metrics: Metrics,
        *,
        params: Mapping[str, str] | None = None,
        vsn: str = "2.0.0",
        reply_timeout_s: float = 10.0,
        heartbeat_s: float = 30.0,
        delivery: DeliveryTable | None = None,
    ) -> None:
        self.n = n
        self.url = url.rstrip("/")
        self.metrics = metrics
        self.params = dict(params or {})
        self.vsn = vsn
        self.reply_timeout_ns = int(reply_timeout_s * 1e9)
        self.heartbeat_ns = int(heartbeat_s * 1e9)
        self.delivery = delivery
        self.ws: wsclient.WsClient | None = None
        self.listeners: dict[str, list[Listener]] = {}
        self.joined: dict[str, str] = {}  # topic -> join_ref
        self.user_id: str | None = None
        self._ref = 0
        self._pending: dict[str, Pending] = {}
        self._closing = False
        self._next_heartbeat = 0
        self._heartbeat_ref: str | None = None

    # connection ---------------------------------------------------------------------------
    def socket_url(self) -> str:
        query = urlencode({**self.params, "vsn": self.vsn})
        return f"{self.url}/websocket?{query}"

    async def connect(self, timeout: float = 10.0) -> bool:
        m = self.metrics
        start = time.monotonic_ns()
        self._closing = False
        try:
            self.ws = await wsclient.connect(self.socket_url(), self._on_frame, timeout=timeout)
        except wsclient.HandshakeError as exc:
            m.error(f"connect_http_{exc.status}" if exc.status else "connect_closed")
            return False
        except TimeoutError:
            m.error("connect_timeout")
            return False
        except OSError:
            m.error("connect_refused")
            return False
        m.record("connect", time.monotonic_ns() - start)
        m.counters.connects += 1
        self._next_heartbeat = time.monotonic_ns() + self.heartbeat_ns
        self.ws.closed.add_done_callback(self._on_closed)
        return True

    def _on_closed(self, fut: asyncio.Future[int]) -> None:
        self.joined.clear()
        for p in self._pending.values():
            if p.waiter is not None and not p.waiter.done():
                p.waiter.set_result(None)
            if not p.required and p.kind != "heartbeat":
                self.metrics.counters.unanswered += 1
        self._pending.clear()
        if self._closing:
            return
        self.metrics.counters.disconnects += 1
        self.metrics.error(f"close_{fut.result()}")

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for the replies still owed, so closing does not turn them into
        losses; the heartbeat in flight and pushes nobody awaits do not count."""
        deadline = time.monotonic() + timeout
        while self.connected and time.monotonic() < deadline:
            if all(p.kind == "heartbeat" or not p.required for p in self._pending.values()):
                return
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        """Close like `socket.disconnect()` does, and wait for the TCP connection to end."""
        self._closing = True
        ws = self.ws
        if ws is None:
            return
        ws.close(CLIENT_CLOSE)
        try:
            await asyncio.wait_for(asyncio.shield(ws.closed), 2.0)
        except TimeoutError:
            ws.abort()

    @property
    def connected(self) -> bool:
        return self.ws is not None and self.ws.is_open

    # sending ------------------------------------------------------------------------------
    def next_ref(self) -> str:
        self._ref += 1
        return str(self._ref)

    def send(
        self,
        topic: str,
        event: str,
        payload: bytes,
        *,
        text: bool = True,
        join_ref: Any = None,
        ref: str | None = None,
        kind: str | None = "reply",
        expect: str | None = "ok",
        sent_ns: int | None = None,
        interval_us: int = 0,
        wait: bool = False,
        required: bool = True,
    ) -> asyncio.Future[wire.Inbound | None] | None:
        """Send one frame. With a `kind`, its reply is timed under that kind; `sent_ns` (the
        intended send time) lets a paced sender that fell behind count the delay it caused."""
        ws = self.ws
        if ws is None or not ws.is_open:
            self.metrics.error("send_on_closed")
            return None
        if ref is None:
            ref = self.next_ref()
        if join_ref is None and topic in self.joined:
            join_ref = self.joined[topic]
        if text:
            data = wire.encode_text(self.vsn, join_ref, ref, topic, event, payload)
        else:
            data = wire.encode_binary_push(join_ref, ref, topic, event, payload)
        waiter: asyncio.Future[wire.Inbound | None] | None = None
        if kind is not None:
            if wait:
                waiter = asyncio.get_running_loop().create_future()
            when = sent_ns if sent_ns is not None else time.monotonic_ns()
            self._pending[ref] = Pending(when, kind, topic, expect, interval_us, waiter, required)
        n = ws.send(data, text)
        c = self.metrics.counters
        c.sent += 1
        c.bytes_sent += n
        return waiter

    async def join(self, topic: str, payload: bytes = b"{}", ref: str | None = None) -> bool:
        """Join and wait for the reply (phoenix.js buffers pushes until then)."""
        ref = ref or self.next_ref()
        waiter = self.send(
            topic, "phx_join", payload, join_ref=ref, ref=ref, kind="join", wait=True
        )
        if waiter is None:
            return False
        reply = await waiter
        if reply is None or reply.status != "ok":
            return False
        self.joined[topic] = ref
        if self.user_id is None:
            self.user_id = user_id_of(reply.payload)
        return True

    def on(self, event: str, listener: Listener) -> None:
        self.listeners.setdefault(event, []).append(listener)

    # receiving ----------------------------------------------------------------------------
    def _on_frame(self, data: bytes, text: bool) -> None:
        m = self.metrics
        c = m.counters
        c.received += 1
        c.bytes_received += len(data)
        try:
            msg = wire.decode(self.vsn, data, text)
        except wire.WireError:
            m.error("decode_error")
            return
        if msg.event == wire.PHX_REPLY:
            self._on_reply(msg)
            return
        if msg.event in ("phx_error", "phx_close"):
            if msg.topic in self.joined and msg.join_ref == self.joined[msg.topic]:
                del self.joined[msg.topic]
                if msg.event == "phx_error":
                    m.error("channel_error")
        elif b"ltns" in data:
            match = STAMP_RE.search(data)
            if match is not None:
                m.record("delivery", time.time_ns() - int(match.group(1)))
        elif self.delivery:
            payload = msg.payload
            sent = self.delivery.match(bytes(payload))
            if sent is not None:
                m.record("delivery", time.time_ns() - sent)
        listeners = self.listeners.get(msg.event)
        if listeners:
            for listener in listeners:
                listener(msg)

    def _on_reply(self, msg: wire.Inbound) -> None:
        ref = msg.ref if msg.ref is None or type(msg.ref) is str else str(msg.ref)
        pending = self._pending.pop(ref, None) if ref is not None else None
        if pending is None:
            return  # a reply for something already timed out, or not ours to time
        m = self.metrics
        m.record(pending.kind, time.monotonic_ns() - pending.sent_ns, pending.interval_us)
        if pending.kind == "heartbeat":
            self._heartbeat_ref = None
        if pending.expect is not None and msg.status != pending.expect:
            prefix = "join_error" if pending.kind == "join" else "reply_error"
            m.error(f"{prefix}:{_reason_of(msg.payload, msg.status)}")
        if pending.waiter is not None and not pending.waiter.done():
            pending.waiter.set_result(msg)

    # timers -------------------------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        """Once a second: expire unanswered pushes and heartbeat like phoenix.js."""
        if self._pending:
            cutoff = now_ns - self.reply_timeout_ns
            # Heartbeats time out on the heartbeat schedule below, not the push timeout.
            expired = [
                r for r, p in self._pending.items() if p.sent_ns < cutoff and p.kind != "heartbeat"
            ]
            for ref in expired:
                p = self._pending.pop(ref)
                if p.required:
                    self.metrics.error(f"{p.kind}_timeout")
                else:
                    self.metrics.counters.unanswered += 1
                if p.waiter is not None and not p.waiter.done():
                    p.waiter.set_result(None)
        if self.heartbeat_ns and self.connected and now_ns >= self._next_heartbeat:
            self._next_heartbeat = now_ns + self.heartbeat_ns
            if self._heartbeat_ref is not None:
                # phoenix.js: an unanswered heartbeat closes the socket with 1000.
                self._pending.pop(self._heartbeat_ref, None)
                self._heartbeat_ref = None
                self.metrics.error("heartbeat_timeout")
                self._closing = True
                if self.ws is not None:
                    self.ws.close(CLIENT_CLOSE, b"heartbeat timeout")
                return
            ref = self.next_ref()
            self._heartbeat_ref = ref
            self.send(wire.HEARTBEAT_TOPIC, HEARTBEAT_EVENT, b"{}", ref=ref, kind="heartbeat")


def _decoded_object(payload: msgspec.Raw | bytes) -> dict[str, Any] | None:
    if isinstance(payload, bytes):
        return None
    try:
        value = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def user_id_of(response: msgspec.Raw | bytes) -> str | None:
    obj = _decoded_object(response)
    if obj is None:
        return None
    value = obj.get("user_id")
    return None if value is None else str(value)


def _reason_of(response: msgspec.Raw | bytes, status: str | None) -> str:
    obj = _decoded_object(response)
    if obj is not None and isinstance(obj.get("reason"), str):
        return str(obj["reason"])
    return status or "unknown"
