"""The classifiers map wire values onto the closed label sets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.observability.labels import (
    EVENT_CLASSES,
    REPLY_STATUSES,
    classify_event,
    reply_status,
    signaling_event,
)


@pytest.mark.parametrize(
    ("topic", "event", "expected"),
    [
        ("phoenix", "heartbeat", "heartbeat"),
        ("room:0b7e", "phx_join", "control"),
        ("room:0b7e", "phx_leave", "control"),
        ("echo:x", "phx_join", "control"),
        ("echo:x", "ping", "echo"),
        ("room:0b7e", "offer", "signaling"),
        ("room:0b7e", "answer", "signaling"),
        ("room:0b7e", "ice-candidate", "signaling"),
        ("room:0b7e", "new_msg", "chat"),
        ("room:0b7e", "shout", "other"),
        ("phoenix", "offer", "signaling"),
    ],
)
def test_classify_event(topic: str, event: str, expected: str) -> None:
    assert classify_event(topic, event) == expected


@given(st.text(max_size=30), st.text(max_size=30))
def test_classify_event_never_leaves_the_closed_set(topic: str, event: str) -> None:
    assert classify_event(topic, event) in EVENT_CLASSES


def test_signaling_event_names_use_underscores() -> None:
    assert signaling_event("ice-candidate") == "ice_candidate"
    assert signaling_event("new_msg") == "chat"
    assert signaling_event("ready") == "ready"
    assert signaling_event("phx_join") is None


@given(st.text(max_size=20))
def test_reply_status_folds_into_three_values(status: str) -> None:
    assert reply_status(status) in REPLY_STATUSES
