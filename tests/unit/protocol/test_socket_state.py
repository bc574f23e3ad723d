"""The per-connection routing decisions of reference section 3, fed values, no sockets."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.protocol.messages import Message
from gateway.protocol.socket_state import Action, SocketState


def msg(jr: Any, ref: Any, topic: str, event: str) -> Message:
    return Message(jr, ref, topic, event, msgspec.Raw(b"{}"))


def test_heartbeat_before_any_lookup() -> None:
    state = SocketState(1)
    assert (
        state.decide(msg(None, "1", "phoenix", "heartbeat"), routable=False).action
        is Action.HEARTBEAT
    )
    # other events on topic phoenix are ordinary topics
    decision = state.decide(msg(None, "2", "phoenix", "other"), routable=False)
    assert (decision.action, decision.join_ref, decision.status) == (Action.REPLY, None, "error")


def test_join_unmatched_limit_and_duplicate() -> None:
    state = SocketState(1)
    assert state.decide(msg("1", "1", "nope", "phx_join"), routable=False).response == {
        "reason": "unmatched topic"
    }
    assert state.decide(msg("1", "1", "a", "phx_join"), routable=True).action is Action.JOIN
    state.joined("a", "1")
    over = state.decide(msg("2", "2", "b", "phx_join"), routable=True)
    assert (over.action, over.join_ref, over.response) == (
        Action.REPLY,
        "2",
        {"reason": "too many channels joined"},
    )
    dup = state.decide(msg("3", "3", "a", "phx_join"), routable=True)
    assert (dup.action, dup.old_join_ref) == (Action.REJOIN, "1")


def test_delivery_rules_for_join_refs() -> None:
    state = SocketState(10)
    state.joined("a", "5")
    assert state.decide(msg("5", "6", "a", "x"), True).action is Action.DELIVER
    assert state.decide(msg(None, "6", "a", "x"), True).action is Action.DELIVER
    assert state.decide(msg("4", "6", "a", "x"), True).action is Action.DROP
    assert state.decide(msg("", "6", "a", "x"), True).action is Action.DROP
    assert state.decide(msg("4", "6", "a", "phx_leave"), True).action is Action.DROP
    left = state.decide(msg("9", "7", "b", "phx_leave"), True)
    assert (left.action, left.join_ref, left.status, left.response) == (Action.REPLY, "9", "ok", {})
    assert state.remove("a", "4") is False
    assert state.remove("a", "5") is True
    assert state.decide(msg("5", "8", "a", "x"), True).response == {"reason": "unmatched topic"}
