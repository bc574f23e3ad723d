"""The recording proxy: a transparent WebSocket relay that records every session it carries.

Point a phoenix.js app at the proxy (`new Socket("ws://127.0.0.1:4400/socket")`) and it talks
to the upstream server unchanged while each session lands in a recording. Any Phoenix server
works as upstream; the proxy never interprets frames beyond scrubbing secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import WSMsgType, web

from gateway.recording import DEFAULT_SCRUB_FIELDS, Direction, Recorder, SessionRecorder

_CLOSE_TYPES = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


class RecordingProxy:
    """Relays `<prefix>/websocket` to `<upstream>/websocket` and records both directions."""

    def __init__(self, upstream: str, recorder: Recorder) -> None:
        self.upstream = upstream.rstrip("/")
        self.recorder = recorder
        self.sessions = 0
        self._client: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app: web.Application) -> None:
        if self._client is not None:
            await self._client.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not request.path.rstrip("/").endswith("/websocket"):
            return web.Response(status=404, text="the recording proxy only relays WebSockets")
        if self._client is None:
            self._client = aiohttp.ClientSession()
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        offered = [p for p in offered if p]
        target = self.upstream + "/websocket"
        if request.query_string:
            target += "?" + request.query_string
        try:
            upstream = await self._client.ws_connect(
                target, protocols=offered, autoping=True, compress=0, max_msg_size=0
            )
        except aiohttp.WSServerHandshakeError as exc:
            # Mirror the upstream's refusal (403 for a bad vsn or token) to the client.
            return web.Response(status=exc.status or 502)
        except aiohttp.ClientError:
            return web.Response(status=502)
        chosen = upstream.protocol
        client = web.WebSocketResponse(
            protocols=(chosen,) if chosen else (), compress=False, max_msg_size=0, autoping=True
        )
        await client.prepare(request)
        params: dict[str, str] = {}
        for key, value in request.query.items():
            params[key] = value  # the last value of a repeated key wins, as in Plug
        session = self.recorder.maybe_start(
            f"proxy-{uuid.uuid4().hex[:8]}", params, params.get("vsn")
        )
        self.sessions += 1
        try:
            await _relay(client, upstream, session)
        finally:
            if session is not None:
                session.close()
        return client


async def _relay(
    client: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse,
    session: SessionRecorder | None,
) -> None:
    async def pump(
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        direction: Direction,
    ) -> None:
        async for msg in source:
            if msg.type == WSMsgType.TEXT:
                if session is not None:
                    session.frame(direction, msg.data.encode(), True)
                await sink.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                if session is not None:
                    session.frame(direction, msg.data, False)
                await sink.send_bytes(msg.data)
        # Pass the close code on: phoenix.js decides whether to reconnect by it.
        await sink.close(code=source.close_code or 1000)

    tasks = [
        asyncio.create_task(pump(client, upstream, "in")),
        asyncio.create_task(pump(upstream, client, "out")),
    ]
    _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if not upstream.closed:
        await upstream.close()


async def start_proxy(
    host: str,
    port: int,
    upstream: str,
    out_dir: Path | str,
    *,
    sample_rate: float = 1.0,
    scrub_fields: Sequence[str] = DEFAULT_SCRUB_FIELDS,
) -> tuple[web.AppRunner, int, RecordingProxy]:
    """Start the proxy in the running loop; returns the runner, the bound port and the proxy."""
    recorder = Recorder(out_dir, sample_rate, scrub_fields, source="proxy")
    proxy = RecordingProxy(upstream, recorder)
    runner = web.AppRunner(proxy.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound, proxy


def serve_proxy(
    host: str,
    port: int,
    upstream: str,
    out_dir: Path | str,
    *,
    sample_rate: float = 1.0,
    scrub_fields: Sequence[str] = DEFAULT_SCRUB_FIELDS,
) -> None:
    """Run the proxy until interrupted (the `loadtest record` command)."""

    async def main() -> None:
        runner, bound, _ = await start_proxy(
            host, port, upstream, out_dir, sample_rate=sample_rate, scrub_fields=scrub_fields
        )
        print(
            f"recording proxy on ws://{host}:{bound}/socket -> {upstream}; writing to {out_dir}",
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
