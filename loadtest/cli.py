"""The `loadtest` command line: `record`, `import-har`, `capture-har`, `replay` and `scenario`.

`gateway-loadtest VERB …` (or `python -m loadtest VERB …`) runs it on its own;
`add_loadtest_parser(subparsers)` mounts it under any argparse program, as
`python -m gateway loadtest VERB …` does. `run(args)` executes the chosen verb and returns the
process exit code (1 when a threshold is broken).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.recording import DEFAULT_SCRUB_FIELDS, RecordingError

EXIT_OK = 0
EXIT_THRESHOLD = 1
EXIT_USAGE = 2


def _common_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="socket endpoint, e.g. ws://127.0.0.1:4000/socket")
    p.add_argument("--users", type=int, default=10, help="virtual users (default 10)")
    p.add_argument(
        "--ramp", type=float, default=0.0, help="users started per second (default 0: all at once)"
    )
    p.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    tokens = p.add_mutually_exclusive_group()
    tokens.add_argument("--token-template", help="connect param `token` per user, e.g. 'user-{n}'")
    tokens.add_argument("--token-file", type=Path, help="one token per line, user n gets line n")
    p.add_argument(
        "--reply-timeout",
        type=float,
        default=10.0,
        help="seconds before an unanswered push counts as an error (default 10)",
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        default=30.0,
        help="heartbeat interval in seconds, as phoenix.js (default 30)",
    )
    p.add_argument("--json", type=Path, help="write the JSON report here")
    p.add_argument("--chart", type=Path, help="write a PNG chart here")
    p.add_argument("--max-p99", type=float, help="fail (exit 1) if reply/delivery p99 exceeds MS")
    p.add_argument(
        "--max-error-rate",
        type=float,
        help="fail (exit 1) if errors per operation exceed this fraction",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")


def add_loadtest_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `loadtest` and its verbs to an argparse subparsers object."""
    lt: argparse.ArgumentParser = subparsers.add_parser(
        "loadtest", help="record, replay and generate load"
    )
    add_verbs(lt)
    return lt


def add_verbs(lt: argparse.ArgumentParser) -> None:
    """Add the verbs to `lt`, the parser of the `loadtest` command."""
    # A program that dispatches on `args.handler` runs us without knowing our verbs.
    lt.set_defaults(handler=run)
    verbs = lt.add_subparsers(dest="loadtest_verb", required=True)

    rec = verbs.add_parser("record", help="record sessions through a transparent WebSocket proxy")
    rec.add_argument("--listen", default="127.0.0.1:4400", help="HOST:PORT to listen on")
    rec.add_argument(
        "--upstream",
        required=True,
        help="the real socket endpoint, e.g. ws://127.0.0.1:4000/socket",
    )
    rec.add_argument("-o", "--output", type=Path, required=True, help="directory for recordings")
    rec.add_argument("--sample-rate", type=float, default=1.0)
    rec.add_argument(
        "--scrub",
        action="append",
        default=None,
        help=f"payload field to scrub (repeatable; default {DEFAULT_SCRUB_FIELDS})",
    )

    har = verbs.add_parser("import-har", help="convert a Chrome DevTools HAR into recordings")
    har.add_argument("har", type=Path)
    har.add_argument("-o", "--output", type=Path, required=True, help="directory for recordings")
    har.add_argument("--scrub", action="append", default=None)

    cap = verbs.add_parser(
        "capture-har", help="open a URL in headless Chromium and save its WebSockets as a HAR"
    )
    cap.add_argument("url", help="the page to open, e.g. http://127.0.0.1:4000/demo")
    cap.add_argument("-o", "--output", type=Path, required=True, help="the HAR file to write")
    cap.add_argument("--seconds", type=float, default=10.0, help="how long to watch (default 10)")
    cap.add_argument("--pages", type=int, default=1, help="tabs opening the URL (default 1)")
    cap.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable")

    rep = verbs.add_parser("replay", help="replay recordings with many virtual users")
    rep.add_argument("recordings", nargs="+", type=Path, help="recording files or directories")
    _common_run_flags(rep)
    rep.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="time scale: 2 = twice as fast, 0 = as fast as possible",
    )
    rep.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="seconds to run, looping sessions (default 0: each session once)",
    )

    sc = verbs.add_parser("scenario", help="run a built-in generated scenario")
    sc.add_argument("name", choices=["signaling-pairs", "chat-rooms", "broadcast-room", "echo"])
    _common_run_flags(sc)
    sc.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    sc.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="messages/s per user (0: each waits for the previous reply)",
    )
    sc.add_argument("--room-size", type=int, default=10, help="chat-rooms: users per room")
    sc.add_argument("--topic", default="echo:broadcast-room", help="broadcast-room: the topic")
    sc.add_argument("--body-bytes", type=int, default=64, help="padding in each message body")
    sc.add_argument(
        "--expect-replies",
        action="store_true",
        help="every push awaits its reply: a missing one is an error (default: replies are "
        "timed when they come, unanswered pushes are counted, as phoenix.js treats a push "
        "nobody awaits)",
    )


def run(args: argparse.Namespace) -> int:
    verb = args.loadtest_verb
    if verb == "record":
        from loadtest.proxy import serve_proxy

        host, _, port = args.listen.rpartition(":")
        scrub = tuple(args.scrub) if args.scrub else DEFAULT_SCRUB_FIELDS
        serve_proxy(
            host or "127.0.0.1",
            int(port),
            args.upstream,
            args.output,
            sample_rate=args.sample_rate,
            scrub_fields=scrub,
        )
        return EXIT_OK
    if verb == "import-har":
        from loadtest.har import import_har

        scrub = tuple(args.scrub) if args.scrub else DEFAULT_SCRUB_FIELDS
        written = import_har(args.har, args.output, scrub_fields=scrub)
        for path in written:
            print(path)
        if not written:
            print(
                "no WebSocket sessions found (entries whose URL path ends in /websocket)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        return EXIT_OK
    if verb == "capture-har":
        return _capture_har(args)
    return _run_fleet(args)


def _capture_har(args: argparse.Namespace) -> int:
    import asyncio

    try:
        from loadtest.har_capture import capture_url
    except ImportError as exc:
        print(f"loadtest: capture-har needs Playwright for Python ({exc})", file=sys.stderr)
        return EXIT_USAGE
    result = asyncio.run(
        capture_url(args.url, args.output, args.seconds, pages=args.pages, executable=args.chromium)
    )
    print(f"{result.path}: {result.sockets} WebSocket(s), {result.frames} frame(s)")
    if not result.sockets:
        print("no WebSocket was opened by the page", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _missing(exc: ModuleNotFoundError) -> int:
    print(
        f"loadtest: a dependency is missing ({exc}): install the loadtest extra "
        "(pip install -e '.[loadtest]' from the repository)",
        file=sys.stderr,
    )
    return EXIT_USAGE


def _run_fleet(args: argparse.Namespace) -> int:
    try:
        from loadtest.fleet import FleetConfig, run_fleet
        from loadtest.report import (
            build_report,
            progress_line,
            text_table,
            write_chart,
            write_json,
        )
        from loadtest.scenarios import ScenarioOptions
    except ModuleNotFoundError as exc:
        return _missing(exc)

    tokens: list[str] = []
    if args.token_file is not None:
        tokens = [t.strip() for t in args.token_file.read_text().splitlines() if t.strip()]
    cfg = FleetConfig(
        url=args.url,
        users=args.users,
        duration=args.duration,
        ramp=args.ramp,
        processes=max(1, args.processes),
        token_template=args.token_template,
        tokens=tokens,
        reply_timeout_s=args.reply_timeout,
        heartbeat_s=args.heartbeat,
    )
    if args.loadtest_verb == "replay":
        cfg.recordings = [str(p) for p in args.recordings]
        cfg.speed = args.speed
    else:
        cfg.scenario = ScenarioOptions(
            name=args.name,
            rate=args.rate,
            room_size=args.room_size,
            topic=args.topic,
            body_bytes=args.body_bytes,
            expect_replies=args.expect_replies,
        )

    def progress(tick: int, snaps: Any, elapsed: float) -> None:
        if not args.quiet:
            print(progress_line(tick, snaps, elapsed, cfg.users), file=sys.stderr, flush=True)

    try:
        result = run_fleet(cfg, progress)
    except (RecordingError, OSError) as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    report = build_report(result, args.max_p99, args.max_error_rate)
    print(text_table(report))
    if args.json is not None:
        write_json(report, args.json)
    if args.chart is not None:
        try:
            write_chart(report, args.chart)
        except ModuleNotFoundError as exc:
            return _missing(exc)
    return EXIT_OK if report.thresholds.passed else EXIT_THRESHOLD


def main(argv: list[str] | None = None) -> int:
    """`gateway-loadtest VERB …`."""
    parser = argparse.ArgumentParser(
        prog="gateway-loadtest", description="Record, replay and generate Phoenix Channels load."
    )
    add_verbs(parser)
    return run(parser.parse_args(argv))
