"""Property tests: any frame sequence survives the format, and scrubbing never leaks a value."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.recording import (
    SCRUBBED,
    Header,
    Recording,
    frame_line,
    read_recording,
    scrub_text_frame,
    write_recording,
)

frames = st.lists(
    st.tuples(
        st.sampled_from(["in", "out"]),
        st.floats(min_value=0, max_value=1e7, allow_nan=False),
        st.one_of(
            st.text().map(lambda t: (t.encode("utf-8", "surrogatepass"), True)),
            st.binary().map(lambda b: (b, False)),
        ),
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(frames)
def test_any_frames_round_trip(items: list[tuple[str, float, tuple[bytes, bool]]]) -> None:
    lines = []
    for direction, t, (data, text) in items:
        if text:
            try:
                data.decode()
            except UnicodeDecodeError:
                continue  # text frames are UTF-8 by definition (RFC 6455 section 5.6)
        lines.append(frame_line(direction, t, data, text))  # type: ignore[arg-type]
    header = Header(session_id="s", group_id="g", recorded_at="now")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.jsonl"
        write_recording(path, Recording(header, lines))
        back = read_recording(path)
    assert [(f.d, f.data, f.is_text) for f in back.frames] == [
        (f.d, f.data, f.is_text) for f in lines
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["token", "password", "a", "b"]), inner, max_size=4)
    ),
    max_leaves=20,
)


def _secret_values(value: object) -> list[object]:
    out: list[object] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend([v] if k in ("token", "password") else _secret_values(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(_secret_values(v))
    return out


def _scrubbed_everywhere(value: object) -> bool:
    if isinstance(value, dict):
        return all(
            (v == SCRUBBED) if k in ("token", "password") else _scrubbed_everywhere(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return all(_scrubbed_everywhere(v) for v in value)
    return True


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_scrubbing_reaches_every_depth(payload: object) -> None:
    frame = json.dumps(["1", "2", "room:x", "evt", payload]).encode()
    out = json.loads(scrub_text_frame(frame, frozenset({"token", "password"})))
    assert out[:4] == ["1", "2", "room:x", "evt"]
    assert _scrubbed_everywhere(out[4])
    if not _secret_values(payload):
        assert out[4] == payload
