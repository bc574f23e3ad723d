"""The session recording format (versioned JSONL), its reader and writer, and the server-side
`Recorder` that samples live connections into it.

It sits beside both of its users: the server (`--record-dir`, `transports/recording.py`) and
the load tester (`loadtest/`, beside the server, which replays it), so neither imports the other.

A recording is one file per WebSocket session:

    {"format":"phoenix-recording","version":1,"session_id":…,"group_id":…,"recorded_at":…,
     "vsn":"2.0.0","params":{…},"path":"/socket","source":"server"}
    {"d":"in","t":0.0,"text":"[\\"3\\",\\"3\\",\\"room:lobby\\",\\"phx_join\\",{}]"}
    {"d":"out","t":1.2,"text":"[\\"3\\",\\"3\\",\\"room:lobby\\",\\"phx_reply\\",…]"}
    {"d":"in","t":40.5,"b64":"AAIBCAw…"}

`d` is the direction seen from the server: `in` = client to server, `out` = server to client.
`t` is milliseconds since the session started. Sessions recorded together share a `group_id`
so a replay keeps their peers together. Secrets are scrubbed before anything reaches disk.
"""

from __future__ import annotations

import base64
import datetime
import random
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import msgspec

FORMAT = "phoenix-recording"
VERSION = 1
SCRUBBED = "<scrubbed>"
DEFAULT_SCRUB_FIELDS = ("token", "password", "authToken")
SUFFIX = ".jsonl"

Direction = Literal["in", "out"]


class Header(msgspec.Struct, kw_only=True):
    """The first line of a recording; `format` and `version` come first so `head -1` tells."""

    format: str = FORMAT
    version: int = VERSION
    session_id: str
    group_id: str
    recorded_at: str
    vsn: str = "2.0.0"
    params: dict[str, str] = {}
    path: str | None = None
    source: str = "server"


class FrameLine(msgspec.Struct, omit_defaults=True):
    """One frame: exactly one of `text` (a text frame) or `b64` (a binary frame) is set."""

    d: Direction
    t: float
    text: str | None = None
    b64: str | None = None

    @property
    def is_text(self) -> bool:
        return self.b64 is None

    @property
    def data(self) -> bytes:
        if self.b64 is not None:
            return base64.b64decode(self.b64)
        return (self.text or "").encode()


class Recording(msgspec.Struct):
    """A whole session read back: the header and its frames in order."""

    header: Header
    frames: list[FrameLine]
    name: str = ""


class RecordingError(Exception):
    """A file that is not a recording of a version this reader understands."""


_header_decoder = msgspec.json.Decoder(Header)
_frame_decoder = msgspec.json.Decoder(FrameLine)
_encoder = msgspec.json.Encoder()


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def frame_line(direction: Direction, t_ms: float, data: bytes, text: bool) -> FrameLine:
    if text:
        return FrameLine(direction, round(t_ms, 3), text=data.decode("utf-8", "replace"))
    return FrameLine(direction, round(t_ms, 3), b64=base64.b64encode(data).decode())


def write_recording(path: Path | str, recording: Recording) -> None:
    """Write a whole recording to a file."""
    with open(path, "wb") as fh:
        fh.write(_encoder.encode(recording.header) + b"\n")
        for frame in recording.frames:
            fh.write(_encoder.encode(frame) + b"\n")


def read_recording(path: Path | str) -> Recording:
    """Read one recording file; a truncated last line (a crash mid-write) is dropped."""
    path = Path(path)
    with open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    if not lines or not lines[0].strip():
        raise RecordingError(f"{path}: empty file")
    try:
        header = _header_decoder.decode(lines[0])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RecordingError(f"{path}: bad header: {exc}") from None
    if header.format != FORMAT:
        raise RecordingError(f"{path}: not a {FORMAT} file")
    if header.version > VERSION:
        raise RecordingError(f"{path}: format version {header.version} is newer than {VERSION}")
    frames: list[FrameLine] = []
    last = len(lines) - 1
    for i, line in enumerate(lines[1:], start=1):
        if not line.strip():
            continue
        try:
            frames.append(_frame_decoder.decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if i == last or (i == last - 1 and not lines[last].strip()):
                break
            raise RecordingError(f"{path}:{i + 1}: {exc}") from None
    return Recording(header, frames, path.name)


def expand_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files as given, directories expanded to their `*.jsonl` files (sorted, so runs repeat)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.glob(f"*{SUFFIX}")))
        else:
            out.append(p)
    return out


def load_recordings(paths: Iterable[Path | str]) -> list[Recording]:
    recordings = [read_recording(p) for p in expand_paths(paths)]
    if not recordings:
        raise RecordingError("no recordings found")
    return recordings


# Scrubbing -----------------------------------------------------------------------------------


def scrub_params(params: Mapping[str, str], fields: Sequence[str]) -> dict[str, str]:
    """Connect params with `token` (always) and the configured fields replaced."""
    secret = {"token", *fields}
    return {k: (SCRUBBED if k in secret else v) for k, v in params.items()}


def _scrub_value(value: Any, fields: frozenset[str]) -> tuple[Any, bool]:
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in fields:
                out[k] = SCRUBBED
                changed = True
            else:
                out[k], sub = _scrub_value(v, fields)
                changed = changed or sub
        return out, changed
    if isinstance(value, list):
        changed = False
        items: list[Any] = []
        for v in value:
            nv, sub = _scrub_value(v, fields)
            items.append(nv)
            changed = changed or sub
        return items, changed
    return value, False


def scrub_text_frame(data: bytes, fields: frozenset[str]) -> bytes:
    """A V1/V2 text frame with the payload fields in `fields` replaced, at any depth."""
    # Fast path: most frames mention none of the fields; skip the JSON round trip.
    if not any(f.encode() in data for f in fields):
        return data
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data
    if isinstance(value, list) and len(value) >= 5:
        payload, changed = _scrub_value(value[4], fields)
        if changed:
            value = [*value[:4], payload, *value[5:]]
    elif isinstance(value, dict) and "payload" in value:
        payload, changed = _scrub_value(value["payload"], fields)
        if changed:
            value = {**value, "payload": payload}
    else:
        return data
    return msgspec.json.encode(value) if changed else data


# The server-side recorder -------------------------------------------------------------------


class SessionRecorder:
    """Appends one connection's frames to its recording file."""

    def __init__(
        self,
        fh: IO[bytes],
        path: Path,
        fields: frozenset[str],
        max_frames: int,
        clock: Any = time.monotonic,
    ) -> None:
        self._fh = fh
        self.path = path
        self._fields = fields
        self._clock = clock
        self._t0 = clock()
        self._left = max_frames
        self.frames = 0

    def frame(self, direction: Direction, data: bytes, text: bool) -> None:
        """Record one frame; `direction` is "in" (from the client) or "out" (to it)."""
        if self._fh.closed or self._left <= 0:
            return
        self._left -= 1
        self.frames += 1
        if text:
            data = scrub_text_frame(data, self._fields)
        line = frame_line(direction, (self._clock() - self._t0) * 1000.0, data, text)
        self._fh.write(_encoder.encode(line) + b"\n")

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class Recorder:
    """Samples connections into recordings under `directory`.

    `sample_rate` is the fraction of connections recorded (0..1). Sessions recorded by one
    Recorder share a group id, since peers that met in a room were recorded in the same window.
    `max_sessions` and `max_frames` bound the disk a long-running server can fill.
    """

    def __init__(
        self,
        directory: Path | str,
        sample_rate: float = 1.0,
        scrub_fields: Sequence[str] = DEFAULT_SCRUB_FIELDS,
        *,
        group_id: str | None = None,
        path: str | None = None,
        source: str = "server",
        max_sessions: int = 10_000,
        max_frames: int = 1_000_000,
        rng: random.Random | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sample_rate = sample_rate
        self.scrub_fields = tuple(scrub_fields)
        self._fields = frozenset(self.scrub_fields)
        self.group_id = group_id or str(uuid.uuid4())
        self.path = path
        self.source = source
        self.max_sessions = max_sessions
        self.max_frames = max_frames
        self.started = 0
        self._rng = rng or random.Random()

    def maybe_start(
        self, conn_id: str, params: Mapping[str, str], vsn: str | None
    ) -> SessionRecorder | None:
        """Decide whether to record this connection; if so, write its header and return it."""
        if self.started >= self.max_sessions:
            return None
        if self.sample_rate < 1.0 and self._rng.random() >= self.sample_rate:
            return None
        self.started += 1
        session_id = f"{conn_id}-{uuid.uuid4().hex[:8]}" if conn_id else uuid.uuid4().hex
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in session_id)
        clean = {k: v for k, v in params.items() if k != "vsn"}
        header = Header(
            session_id=session_id,
            group_id=self.group_id,
            recorded_at=now_iso(),
            vsn=vsn or params.get("vsn") or "1.0.0",
            params=scrub_params(clean, self.scrub_fields),
            path=self.path,
            source=self.source,
        )
        path = self.directory / f"{safe}{SUFFIX}"
        fh = open(path, "wb")  # noqa: SIM115 - owned by the SessionRecorder, closed by close()
        fh.write(_encoder.encode(header) + b"\n")
        return SessionRecorder(fh, path, self._fields, self.max_frames)
