"""The recording format: round trip, version checks, scrubbing, and the server-side Recorder."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from gateway.recording import (
    SCRUBBED,
    FrameLine,
    Header,
    Recorder,
    Recording,
    RecordingError,
    expand_paths,
    read_recording,
    scrub_text_frame,
    write_recording,
)


def test_round_trip_keeps_header_and_frames(tmp_path: Path) -> None:
    header = Header(
        session_id="s1",
        group_id="g1",
        recorded_at="2026-01-01T00:00:00.000+00:00",
        vsn="2.0.0",
        params={"user_id": "7"},
        path="/socket",
    )
    frames = [
        FrameLine("in", 0.0, text='["1","1","room:lobby","phx_join",{}]'),
        FrameLine(
            "out", 1.5, text='["1","1","room:lobby","phx_reply",{"response":{},"status":"ok"}]'
        ),
        FrameLine("in", 20.25, b64=base64.b64encode(b"\x00\x01\x01\x01\x01a1tebin").decode()),
    ]
    path = tmp_path / "s1.jsonl"
    write_recording(path, Recording(header, frames))
    back = read_recording(path)
    assert back.header == header
    assert back.frames == frames
    assert back.frames[2].data == b"\x00\x01\x01\x01\x01a1tebin"
    assert not back.frames[2].is_text
    first = json.loads(path.read_text().splitlines()[0])
    assert first["format"] == "phoenix-recording" and first["version"] == 1


def test_newer_version_and_foreign_files_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.jsonl"
    newer.write_text(
        json.dumps(
            {
                "format": "phoenix-recording",
                "version": 99,
                "session_id": "a",
                "group_id": "b",
                "recorded_at": "x",
            }
        )
        + "\n"
    )
    with pytest.raises(RecordingError, match="newer"):
        read_recording(newer)
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(
        json.dumps({"format": "other", "session_id": "a", "group_id": "b", "recorded_at": "x"})
        + "\n"
    )
    with pytest.raises(RecordingError, match="not a"):
        read_recording(foreign)


def test_truncated_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_recording(
        path,
        Recording(
            Header(session_id="s", group_id="g", recorded_at="now"),
            [FrameLine("in", 1.0, text="[]")],
        ),
    )
    with open(path, "a") as fh:
        fh.write('{"d":"in","t":2.0,"te')
    assert len(read_recording(path).frames) == 1


def test_expand_paths_lists_directories_sorted(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.jsonl", "ignored.txt"):
        (tmp_path / name).write_text("")
    assert [p.name for p in expand_paths([tmp_path])] == ["a.jsonl", "b.jsonl"]


def test_scrub_replaces_fields_at_any_depth_in_v2_and_v1() -> None:
    fields = frozenset({"token", "password", "authToken"})
    v2 = b'["1","2","room:x","login",{"password":"hunter2","nested":{"authToken":"abc"},"ok":1}]'
    out = json.loads(scrub_text_frame(v2, fields))
    assert out[4] == {"password": SCRUBBED, "nested": {"authToken": SCRUBBED}, "ok": 1}
    v1 = b'{"topic":"t","event":"e","ref":"1","payload":{"items":[{"token":"s3cret"}]}}'
    assert json.loads(scrub_text_frame(v1, fields))["payload"] == {"items": [{"token": SCRUBBED}]}
    untouched = b'["1","2","room:x","new_msg",{"body":"hi"}]'
    assert scrub_text_frame(untouched, fields) is untouched


def test_recorder_scrubs_params_and_payloads(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, 1.0, ["token", "password", "apiKey"])
    session = rec.maybe_start("conn-1", {"token": "s3cret", "user": "ann", "vsn": "2.0.0"}, "2.0.0")
    assert session is not None
    session.frame("in", b'["1","1","room:a","phx_join",{"apiKey":"k-123","name":"ann"}]', True)
    session.frame("out", b'["1","1","room:a","phx_reply",{"response":{},"status":"ok"}]', True)
    session.frame("in", b"\x00\x01\x01\x03\x03" + b"12r:ab" + b"evt" + b"token", False)
    session.close()
    text = session.path.read_text()
    assert "s3cret" not in text and "k-123" not in text
    back = read_recording(session.path)
    assert back.header.params == {"token": SCRUBBED, "user": "ann"}
    assert back.header.vsn == "2.0.0"
    assert json.loads(back.frames[0].data)[4] == {"apiKey": SCRUBBED, "name": "ann"}
    assert [f.d for f in back.frames] == ["in", "out", "in"]
    assert back.frames[0].t <= back.frames[1].t <= back.frames[2].t
    # Binary payloads are opaque: recorded as they were.
    assert back.frames[2].data.endswith(b"token")


def test_recorder_samples_and_groups(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, 0.25, rng=random.Random(7))
    started = [rec.maybe_start(f"c{i}", {}, "2.0.0") for i in range(400)]
    kept = [s for s in started if s is not None]
    assert 60 < len(kept) < 140
    for s in kept:
        s.close()
    groups = {read_recording(s.path).header.group_id for s in kept}
    assert groups == {rec.group_id}
    assert Recorder(tmp_path / "none", 0.0).maybe_start("c", {}, None) is None


def test_recorder_bounds_sessions(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, 1.0, max_sessions=2)
    sessions = [rec.maybe_start(f"c{i}", {}, "2.0.0") for i in range(3)]
    assert [s is not None for s in sessions] == [True, True, False]
    for s in sessions:
        if s is not None:
            s.close()
