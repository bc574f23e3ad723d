"""Import WebSocket sessions from a Chrome DevTools HAR file into recordings.

Chrome keeps a socket's frames in `entries[]._webSocketMessages`, each with `type`
(`send`/`receive`), `time` (epoch seconds, float), `opcode` (1 text, 2 binary as base64) and
`data`. Entries whose URL path ends in `/websocket` are Phoenix sockets; their query string is
the connect params. All sockets of one HAR share a group id: they were recorded together.
"""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import msgspec

from gateway.recording import (
    DEFAULT_SCRUB_FIELDS,
    SUFFIX,
    Direction,
    FrameLine,
    Header,
    Recording,
    scrub_params,
    scrub_text_frame,
    write_recording,
)


class HarWsMessage(msgspec.Struct):
    type: str
    time: float
    opcode: int
    data: str


class HarRequest(msgspec.Struct):
    url: str


class HarEntry(msgspec.Struct, rename={"ws_messages": "_webSocketMessages"}):
    request: HarRequest
    startedDateTime: str = ""  # HAR's own (camelCase) field name
    ws_messages: list[HarWsMessage] | None = None


class HarLog(msgspec.Struct):
    entries: list[HarEntry] = []


class Har(msgspec.Struct):
    log: HarLog


def _epoch(iso: str) -> float | None:
    if not iso:
        return None
    try:
        return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _params(query: str) -> dict[str, str]:
    # Plug semantics: the last value of a repeated key wins (docs/wire.md, "Endpoints
    # and handshake").
    out: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        out[key] = value
    return out


def har_recordings(
    har_path: Path | str, scrub_fields: tuple[str, ...] = DEFAULT_SCRUB_FIELDS
) -> list[Recording]:
    """One recording per Phoenix WebSocket in the HAR, in the HAR's order."""
    har_path = Path(har_path)
    har = msgspec.json.decode(har_path.read_bytes(), type=Har)
    fields = frozenset(scrub_fields)
    group = str(uuid.uuid4())
    out: list[Recording] = []
    for entry in har.log.entries:
        url = urlsplit(entry.request.url)
        if not url.path.rstrip("/").endswith("/websocket") or entry.ws_messages is None:
            continue
        params = _params(url.query)
        vsn = params.pop("vsn", "1.0.0")  # absent vsn means 1.0.0 (docs/wire.md)
        messages = entry.ws_messages
        started = _epoch(entry.startedDateTime)
        first = min((m.time for m in messages), default=started or 0.0)
        t0 = min(started, first) if started is not None else first
        frames: list[FrameLine] = []
        for m in messages:
            direction: Direction = "in" if m.type == "send" else "out"
            t_ms = round(max(0.0, (m.time - t0) * 1000.0), 3)
            if m.opcode == 2:
                frames.append(FrameLine(direction, t_ms, b64=m.data))
            elif m.opcode == 1:
                text = scrub_text_frame(m.data.encode(), fields).decode()
                frames.append(FrameLine(direction, t_ms, text=text))
        index = len(out)
        recorded_at = (
            entry.startedDateTime or datetime.datetime.fromtimestamp(t0, datetime.UTC).isoformat()
        )
        header = Header(
            session_id=f"{har_path.stem}-{index}",
            group_id=group,
            recorded_at=recorded_at,
            vsn=vsn,
            params=scrub_params(params, scrub_fields),
            path=url.path.rstrip("/")[: -len("/websocket")] or "/",
            source="har",
        )
        out.append(Recording(header, frames, f"{header.session_id}{SUFFIX}"))
    return out


def import_har(
    har_path: Path | str,
    out_dir: Path | str,
    scrub_fields: tuple[str, ...] = DEFAULT_SCRUB_FIELDS,
) -> list[Path]:
    """Write the HAR's sessions as recordings into `out_dir`; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for rec in har_recordings(har_path, scrub_fields):
        path = out_dir / rec.name
        write_recording(path, rec)
        written.append(path)
    return written
