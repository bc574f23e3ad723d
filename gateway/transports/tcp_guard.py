"""TCP connections before they become sockets: counted, capped and reaped.

The connection caps in `connect.py` see only complete HTTP requests. A client that opens TCP
connections and never finishes a request line (or sends its headers one byte at a time) would
otherwise hold a file descriptor for as long as aiohttp's keep-alive allows, uncounted, until
the process runs out of descriptors and every new user fails. Here every accepted connection is
counted at once, per address and in total, refused (reset) past the caps, and closed if its
first request head has not arrived within `header_timeout_s`.

The per-address cap is not applied to trusted proxies: behind a load balancer the TCP peer is
the balancer, and the per-client cap is applied to complete requests in `connect.py`.
"""

from __future__ import annotations

import asyncio
import functools
import resource
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.config import ConnectionsConfig
from gateway.observability import metrics
from gateway.transports.listener import Listener, SocketProtocol
from gateway.transports.peer import Network, is_trusted, peer_address
from gateway.transports.websocket import WEBSOCKET_MOUNT

log = structlog.get_logger("gateway.tcp")

# Descriptors kept back from the connection cap for Redis, the database, logs and the listener.
FD_RESERVE: Final = 256
# At most one refusal line a second: a flood must not flood the logs as well.
_LOG_EVERY_S: Final = 1.0


def descriptor_cap(wanted: int, reserve: int = FD_RESERVE) -> int:
    """The connection cap this process can keep: `wanted`, or less if the descriptor limit is
    lower. Raises the soft limit to the hard one first, as far as the kernel allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - reserve))


def guard_for(settings: ConnectionsConfig, trusted: Sequence[Network]) -> TcpGuard:
    """The TCP-level caps of `settings`, the total kept below the descriptor limit."""
    cap = descriptor_cap(settings.max_connections)
    return TcpGuard(
        cap,
        settings.max_connections_per_ip,
        settings.header_timeout_s,
        trusted,
        settings.socket_send_buffer_bytes,
    )


class TcpGuard:
    """Open TCP connections of one process, in total and per address, with their caps."""

    def __init__(
        self,
        max_total: int,
        max_per_address: int,
        header_timeout_s: float,
        trusted: Sequence[Network] = (),
        send_buffer_bytes: int = 0,
    ) -> None:
        self.send_buffer_bytes = send_buffer_bytes
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.header_timeout_s = header_timeout_s
        self.trusted = tuple(trusted)
        self.total = 0
        self.per_address: Counter[str] = Counter()
        self._refused_since_log: Counter[str] = Counter()
        self._last_log = 0.0

    def admit(self, address: str) -> str | None:
        """Counts a new connection from `address`, or returns why it is refused."""
        if self.total >= self.max_total:
            return self._refuse("capacity", address)
        if self.per_address[address] >= self.max_per_address and not is_trusted(
            address, self.trusted
        ):
            return self._refuse("address_capacity", address)
        self.total += 1
        self.per_address[address] += 1
        metrics.set_tcp_connections(self.total)
        return None

    def release(self, address: str) -> None:
        self.total -= 1
        left = self.per_address[address] - 1
        if left > 0:
            self.per_address[address] = left
        else:
            del self.per_address[address]
        metrics.set_tcp_connections(self.total)

    def timed_out(self, address: str) -> None:
        metrics.count_tcp_rejected("header_timeout")
        self._note("header_timeout", address)

    def _refuse(self, reason: str, address: str) -> str:
        metrics.count_tcp_rejected(reason)
        self._note(reason, address)
        return reason

    def _note(self, reason: str, address: str) -> None:
        self._refused_since_log[reason] += 1
        now = asyncio.get_running_loop().time()
        if now - self._last_log < _LOG_EVERY_S:
            return
        self._last_log = now
        counts, self._refused_since_log = dict(self._refused_since_log), Counter()
        log.warning(
            "socket_refused",
            reason=reason,
            peer=address,
            transport="tcp",
            counts=counts,
            connections=self.total,
        )


class GuardedRequestHandler(RequestHandler):
    """aiohttp's request handler, counted by a `TcpGuard` from accept to close. Nothing is added
    per read: the header deadline is one timer per connection."""

    __slots__ = ("_address", "_deadline", "_guard", "_head_by")

    def __init__(
        self,
        manager: web.Server,
        guard: TcpGuard,
        *,
        admitted: str | None = None,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        # A connection the listener admitted and read from before handing it over comes with
        # its address counted and its header deadline (loop time) already running.
        self._address: str | None = admitted
        self._head_by = deadline
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._address is None:
            address = peer_address(transport)
            if self._guard.admit(address) is not None:
                cast(asyncio.Transport, transport).abort()  # a reset: the client retries later
                return
            self._address = address
        super().connection_made(transport)
        loop = self._loop
        by = self._head_by
        if by is None:
            by = loop.time() + self._guard.header_timeout_s
        self._deadline = loop.call_at(by, self._check_head)

    def _check_head(self) -> None:
        self._deadline = None
        if self._request_count == 0 and self.transport is not None:
            assert self._address is not None
            self._guard.timed_out(self._address)
            self.force_close()
            self.transport.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._address is None:
            return  # refused in connection_made: aiohttp never saw it
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._guard.release(self._address)
        self._address = None
        super().connection_lost(exc)


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through a `TcpGuard`, and whose WebSocket upgrades the
    listener serves itself (`listener.py`) when the app mounts the WebSocket transport."""

    def __init__(self, runner: web.AppRunner, guard: TcpGuard, *args: Any, **kwargs: Any):
        super().__init__(runner, *args, **kwargs)
        self._guard = guard
        self._listener: Listener | None = None

    @property
    def guard(self) -> TcpGuard:
        return self._guard

    async def stop(self) -> None:
        await super().stop()
        if self._listener is not None:
            self._listener.close_all()

    async def start(self) -> None:
        # aiohttp's TCPSite.start, with the protocol factory making guarded handlers.
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        guard = self._guard
        options: dict[str, Any] = server._kwargs
        loop = asyncio.get_running_loop()

        def handler(address: str | None = None, deadline: float | None = None) -> RequestHandler:
            return GuardedRequestHandler(
                server, guard, admitted=address, deadline=deadline, loop=loop, **options
            )

        mount = (
            self._runner.app.get(WEBSOCKET_MOUNT)
            if isinstance(self._runner, web.AppRunner)
            else None
        )
        factory: Callable[[], asyncio.Protocol]
        if mount is None:
            factory = handler
        else:
            listener = self._listener = Listener(guard, handler, mount, loop)
            factory = functools.partial(SocketProtocol, listener)
        self._server = await loop.create_server(
            factory,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        # Accepted connections inherit the listener's keepalive and send buffer (with its lock
        # against autotuning): set once here rather than once per connection (the runner is
        # made with `tcp_keepalive=False`, so aiohttp does not set keepalive again).
        for sock in sockets:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if guard.send_buffer_bytes:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, guard.send_buffer_bytes)
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
