"""`python -m gateway serve | loadtest …`: flags generated from the Settings fields."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
from typing import Any

import structlog

from gateway.config import (
    OPTION_HELP,
    Settings,
    env_name,
    field_types,
    flag_name,
    load_settings,
    option_values,
    render_reference,
)
from gateway.errors import ConfigError

log = structlog.get_logger("gateway")


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = option_values(Settings())
    for name, typ in field_types().items():
        default = defaults[name]
        help_text = f"{OPTION_HELP.get(name, '')} (env {env_name(name)}; default {default!r})"
        if typ is bool:
            parser.add_argument(
                flag_name(name),
                dest=name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            parser.add_argument(flag_name(name), dest=name, default=None, type=typ, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    add_settings_arguments(serve)
    sub.add_parser("config-reference", help="print the configuration reference (Markdown)")
    migrate = sub.add_parser(
        "migrate", help="apply the PostgreSQL schema migrations (safe from several nodes at once)"
    )
    migrate.add_argument(
        "--database-url", default=None, help="PostgreSQL URL (env GATEWAY_DATABASE_URL)"
    )
    add_loadtest_command(sub)
    return parser


def add_loadtest_command(sub: Any) -> None:
    """`loadtest …` runs the load tester, a sibling package, when it is installed."""
    try:
        from loadtest.cli import add_loadtest_parser
    except ImportError:
        stub = sub.add_parser("loadtest", help="the load tester (not installed)", add_help=False)
        stub.add_argument("rest", nargs=argparse.REMAINDER)
        stub.set_defaults(handler=_no_loadtest)
    else:
        add_loadtest_parser(sub)


def loadtest_main(argv: list[str] | None = None) -> int:
    """`gateway-loadtest VERB …`: the load tester, or one line on how to install it."""
    try:
        from loadtest.cli import main as run_loadtest
    except ImportError:
        return _no_loadtest()
    return run_loadtest(argv)


def _no_loadtest(args: argparse.Namespace | None = None) -> int:
    print(
        "gateway: the load tester is not installed: install the repository with its "
        "loadtest extra (pip install -e '.[loadtest]')",
        file=sys.stderr,
    )
    return 2


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in field_types() if getattr(args, name, None) is not None
    }
    return load_settings(overrides)


def configure_logging(settings: Settings) -> None:
    from gateway.observability.logging import configure_logging as configure

    observability = settings.observability
    configure("json" if observability.log_format == "json" else "console", observability.log_level)


async def serve(settings: Settings) -> int:
    # Imported here: with --workers, prometheus_client must load only after the supervisor set
    # up its multiprocess directory.
    from aiohttp import web

    from gateway.app import NODE, build_app, build_node, metrics_handler
    from gateway.observability.multiproc import check_worker_setup
    from gateway.transports.tcp_guard import GuardedSite, guard_for

    check_worker_setup()
    node = build_node(settings)
    app = build_app(settings, node)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=1.0, tcp_keepalive=False
    )  # keepalive is set on the listener, which accepted connections inherit (GuardedSite)
    await runner.setup()
    listen = settings.listen
    reuse_port = settings.process.workers > 1
    guard = guard_for(settings.connections, node.transport.trusted_proxies)
    site = GuardedSite(runner, guard, listen.host, listen.port, reuse_port=reuse_port, backlog=4096)
    await site.start()
    # Everything built so far lives as long as the process: keep it out of the collector's
    # scans, and collect the young generation less often, so collections stay short under load.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    metrics_runner: Any = None
    metrics_port = settings.observability.metrics_port
    if metrics_port:
        metrics_app = web.Application()
        metrics_app[NODE] = node
        metrics_app.router.add_get("/metrics", metrics_handler)
        metrics_runner = web.AppRunner(metrics_app, handle_signals=False, access_log=None)
        await metrics_runner.setup()
        await web.TCPSite(metrics_runner, listen.host, metrics_port, reuse_port=reuse_port).start()
    if settings.auth.trust_token_as_user_id:
        log.warning(
            "trust_token_as_user_id",
            note="the token connect param is taken as the user id: development only",
        )
    if listen.demo:
        # The one line a person starting the gateway needs: where to click.
        print(f"demo: http://{listen.host}:{listen.port}/demo", flush=True)
    log.info(
        "server_started",
        url=f"http://{listen.host}:{listen.port}{listen.socket_path}",
        node=settings.node,
        redis=bool(settings.redis.redis_url),
    )
    if guard.max_total < settings.connections.max_connections:
        log.warning(
            "connection_cap_lowered",
            max_connections=settings.connections.max_connections,
            cap=guard.max_total,
            reason="open files limit (ulimit -n)",
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    process = settings.process
    left = await node.hub.drain(
        process.drain_grace_s, process.drain_batch, process.drain_interval_ms / 1000
    )
    await runner.cleanup()
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    log.info("server_stopped", connections_left=left)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            settings = settings_from_args(args)
        except ConfigError as exc:
            parser.error(str(exc))
        configure_logging(settings)
        redis_url = settings.redis.redis_url
        if redis_url:
            from gateway.pubsub.redis_probe import probe, redacted

            problem = probe(redis_url)
            if problem is not None:
                # Once, before any worker starts: one line that says what to fix.
                print(
                    f"gateway: cannot reach Redis at {redacted(redis_url)}: {problem}",
                    file=sys.stderr,
                )
                return 1
        if settings.process.workers > 1:
            import tempfile

            from gateway.observability.multiproc import multiprocess_dir, prepare_multiprocess_dir
            from gateway.workers import run_workers

            # One page for the whole host: every worker writes its metrics to shared files.
            prepare_multiprocess_dir(
                multiprocess_dir() or tempfile.mkdtemp(prefix="gateway-metrics-")
            )
            return run_workers(settings, serve)
        if not settings.observability.metrics:
            from gateway.observability import metrics

            metrics.disable()
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
        return asyncio.run(serve(settings))
    if args.command == "migrate":
        from gateway.history.migrate import run

        return run(args.database_url or os.environ.get("GATEWAY_DATABASE_URL", ""))
    if args.command == "config-reference":
        sys.stdout.write(render_reference())
        return 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
