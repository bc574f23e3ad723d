"""A client of one Janus over its WebSocket API: one Janus session per gateway node.

Why WebSockets and not Janus's HTTP API: Janus pushes everything asynchronous (a subscriber's
offer, trickled candidates, `webrtcup`, `hangup`) on the same socket the requests go over,
where the HTTP API needs a long-poll GET per session next to every POST; and a restarted or
unreachable Janus shows as a closed socket at once, so pushes are refused promptly instead of
timing out.

The client owns the session: it creates it on first use, keeps it alive (`keepalive` every
`keepalive_s`, well under Janus's 60 s `session_timeout`), and destroys it on `close`. Each
request carries a fresh transaction id; `success`/`error` answer it, and for asynchronous
plugin requests an `ack` comes first and the plugin's `event` (same transaction) is the answer.
Events that answer nothing are routed to the callback registered for their handle (`sender`).
When the socket drops, every waiting request fails with `SfuUnavailable` and every handle's
callback gets `LOST`: the handles died with the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp
import msgspec
import structlog

from gateway.observability import metrics
from gateway.sfu.videoroom import PLUGIN, Answer, JanusError, SfuUnavailable

log = structlog.get_logger("gateway.sfu")

LOST: Final = "lost"  # what a handle's callback gets when the session is gone
EventCallback = Callable[[dict[str, Any]], None]


class JanusClient:
    """Requests to one Janus, and its events routed to the handle that asked for them."""

    def __init__(self, url: str, timeout_s: float = 5.0, keepalive_s: float = 25.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self.session_id: int | None = None
        self.generation = 0  # bumped for each new Janus session (rooms must be created again)
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._handles: dict[int, EventCallback] = {}
        self._acked: set[str] = set()
        self._ids = itertools.count(1)
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed and self.session_id is not None

    # -- session ----------------------------------------------------------------------------
    async def ensure(self) -> None:
        """Connect and create the session if there is none (one attempt; callers share it)."""
        if self.connected:
            return
        if self._closed:
            raise SfuUnavailable("closed")
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        task = self._connecting
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._connecting is task:
                self._connecting = None

    async def _connect(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        try:
            ws = await self._http.ws_connect(
                self.url, protocols=("janus-protocol",), timeout=aiohttp.ClientWSTimeout(
                    ws_receive=None, ws_close=self.timeout_s
                ), heartbeat=None, max_msg_size=4 * 1024 * 1024,
            )  # fmt: skip
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SfuUnavailable(f"cannot reach {self.url}: {exc}") from None
        self._ws = ws
        self._reader = asyncio.get_running_loop().create_task(self._read(ws))
        try:
            reply = await self._send({"janus": "create"})
        except BaseException:
            await ws.close()
            raise
        self.session_id = int(reply["data"]["id"])
        self.generation += 1
        self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive())
        log.info("sfu_session_created", url=self.url, session_id=self.session_id)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            with contextlib.suppress(SfuUnavailable, JanusError):
                await self._send({"janus": "keepalive", "session_id": self.session_id})

    async def close(self) -> None:
        """Destroy the session (Janus detaches every handle of it) and close the socket."""
        self._closed = True
        if self.connected:
            with contextlib.suppress(SfuUnavailable, JanusError):
                await self._send({"janus": "destroy", "session_id": self.session_id})
        if self._ws is not None:
            await self._ws.close()
        for task in (self._reader, self._keepalive, self._connecting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._lost("closed")
        if self._http is not None:
            await self._http.close()

    # -- handles ----------------------------------------------------------------------------
    async def attach(self, on_event: EventCallback) -> int:
        """A new VideoRoom handle in this node's session; its events go to `on_event`."""
        await self.ensure()
        reply = await self._send(
            {"janus": "attach", "plugin": PLUGIN, "session_id": self.session_id}
        )
        handle = int(reply["data"]["id"])
        self._handles[handle] = on_event
        return handle

    async def detach(self, handle: int) -> None:
        """End a handle (its PeerConnection and its place in the room); gone already is fine."""
        if self._handles.pop(handle, None) is None or not self.connected:
            return
        with contextlib.suppress(JanusError):
            await self._send(
                {"janus": "detach", "session_id": self.session_id, "handle_id": handle}
            )

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, str] | None = None
    ) -> Answer:
        """A VideoRoom request on `handle`; its plugin data (and JSEP), or JanusError."""
        request: dict[str, Any] = {
            "janus": "message",
            "session_id": self.session_id,
            "handle_id": handle,
            "body": body,
        }
        if jsep is not None:
            request["jsep"] = jsep
        reply = await self._send(request)
        data = reply.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusError(int(data["error_code"]), str(data.get("error", "")))
        return Answer(data, reply.get("jsep"))

    async def trickle(self, handle: int, candidate: dict[str, Any]) -> None:
        await self._send(
            {
                "janus": "trickle",
                "session_id": self.session_id,
                "handle_id": handle,
                "candidate": candidate,
            }
        )

    # -- the wire ---------------------------------------------------------------------------
    async def _send(self, message: dict[str, Any]) -> dict[str, Any]:
        ws = self._ws
        if ws is None or ws.closed:
            raise SfuUnavailable("not connected")
        transaction = f"t{next(self._ids)}"
        message["transaction"] = transaction
        if message["janus"] in ("keepalive", "trickle"):
            self._acked.add(transaction)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        started = time.perf_counter()
        try:
            await ws.send_bytes(msgspec.json.encode(message))
            reply = await asyncio.wait_for(future, self.timeout_s)
        except SfuUnavailable:
            metrics.SFU_OUTCOMES["unavailable"].inc()
            raise
        except (ConnectionError, aiohttp.ClientError) as exc:
            metrics.SFU_OUTCOMES["unavailable"].inc()
            raise SfuUnavailable(str(exc)) from None
        except TimeoutError:
            metrics.SFU_OUTCOMES["unavailable"].inc()
            raise SfuUnavailable(f"no answer from {self.url} in {self.timeout_s} s") from None
        finally:
            self._pending.pop(transaction, None)
            self._acked.discard(transaction)
        metrics.SFU_REQUEST_SECONDS.observe(time.perf_counter() - started)
        data = reply.get("plugindata", {}).get("data", {})
        if reply.get("janus") == "error" or "error_code" in data:
            metrics.SFU_OUTCOMES["refused"].inc()
        else:
            metrics.SFU_OUTCOMES["ok"].inc()
        if reply.get("janus") == "error":
            error = reply.get("error", {})
            raise JanusError(int(error.get("code", 0)), str(error.get("reason", "")))
        return reply

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for frame in ws:
                if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                try:
                    message = msgspec.json.decode(frame.data)
                except msgspec.DecodeError:
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            if self._ws is ws:
                self._lost("connection closed")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("janus")
        transaction = str(message.get("transaction", ""))
        future = self._pending.get(transaction)
        if future is not None and not future.done():
            # An ack answers keepalive and trickle; for a plugin request its event will.
            if kind != "ack" or transaction in self._acked:
                future.set_result(message)
            return
        sender = message.get("sender")
        callback = self._handles.get(sender) if isinstance(sender, int) else None
        if callback is not None:
            callback(message)
        elif kind == "timeout":
            self._lost("session timed out")

    def _lost(self, why: str) -> None:
        """The session is gone: fail what waits, tell every handle, start afresh next time."""
        if self.session_id is not None and not self._closed:
            metrics.SFU_SESSIONS_LOST.inc()
            log.warning("sfu_session_lost", url=self.url, session_id=self.session_id, why=why)
        self.session_id = None
        self._ws = None
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(SfuUnavailable(why))
        handles, self._handles = self._handles, {}
        for callback in handles.values():
            callback({"janus": LOST})
