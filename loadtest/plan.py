"""Turn a recording into a replay plan: the client frames to send, when, and what the recorded
server answered, plus the recorded identities (user ids, room ids) a replay must rewrite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from gateway.recording import SCRUBBED, Recording
from loadtest import wire

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
UUID_RE_B = re.compile(UUID_RE.pattern.encode())


class Step(msgspec.Struct):
    """One client frame of the recording."""

    at_ms: float
    text: bool
    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: bytes  # JSON text for text frames, raw bytes for binary pushes
    expect: str | None = None  # the recorded reply status; None when no reply was recorded
    rewrite: bool = False  # the payload mentions a recorded identity or room id


class Plan(msgspec.Struct):
    """A recording ready to replay."""

    name: str
    session_id: str
    group_id: str
    vsn: str
    params: dict[str, str]
    path: str | None
    steps: list[Step]
    end_ms: float
    user_id: str | None = None
    token: str | None = None
    decode_errors: int = 0


def _ref(value: object) -> str | None:
    return None if value is None else str(value)


def build_plan(recording: Recording) -> Plan:
    """Read the client frames, skipping heartbeats (the replayer sends its own on schedule)."""
    header = recording.header
    vsn = header.vsn
    steps: list[Step] = []
    by_ref: dict[str, Step] = {}
    joins: dict[str, Step] = {}
    user_id = header.params.get("user_id")
    errors = 0
    end_ms = 0.0
    for frame in recording.frames:
        end_ms = max(end_ms, frame.t)
        data = frame.data
        if frame.d == "in":
            try:
                msg = wire.decode_client(vsn, data, frame.is_text)
            except wire.WireError:
                errors += 1
                continue
            if msg.topic == wire.HEARTBEAT_TOPIC and msg.event == "heartbeat":
                continue
            payload = bytes(msg.payload)
            step = Step(
                frame.t,
                frame.is_text,
                _ref(msg.join_ref),
                _ref(msg.ref),
                msg.topic,
                msg.event,
                payload,
            )
            steps.append(step)
            if step.ref is not None:
                by_ref[step.ref] = step
                if step.event == "phx_join":
                    joins[step.ref] = step
            continue
        try:
            reply = wire.decode(vsn, data, frame.is_text)
        except wire.WireError:
            errors += 1
            continue
        if reply.event != wire.PHX_REPLY or reply.ref is None:
            continue
        ref = str(reply.ref)
        sent = by_ref.get(ref)
        if sent is not None and sent.expect is None:
            sent.expect = reply.status
        if ref in joins and user_id is None and isinstance(reply.payload, msgspec.Raw):
            user_id = _user_id(reply.payload)
    token = header.params.get("token")
    return Plan(
        name=recording.name or header.session_id,
        session_id=header.session_id,
        group_id=header.group_id,
        vsn=vsn,
        params=dict(header.params),
        path=header.path,
        steps=steps,
        end_ms=end_ms,
        user_id=user_id,
        token=None if token in (None, SCRUBBED) else token,
        decode_errors=errors,
    )


def _user_id(payload: msgspec.Raw) -> str | None:
    try:
        value = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    if isinstance(value, dict) and value.get("user_id") is not None:
        return str(value["user_id"])
    return None


def recorded_identities(plans: Sequence[Plan]) -> set[str]:
    """Every user id and token the plans of one group were recorded with."""
    ids: set[str] = set()
    for plan in plans:
        if plan.user_id:
            ids.add(plan.user_id)
        if plan.token:
            ids.add(plan.token)
    return ids


def link_group(plans: Sequence[Plan]) -> None:
    """Mark the steps whose payload must be rewritten at replay time (a cheap byte scan now
    so the replay's hot path skips JSON decoding for every other frame)."""
    ids = recorded_identities(plans)
    needles = [i.encode() for i in ids]
    for plan in plans:
        for step in plan.steps:
            if not step.text:
                continue
            p = step.payload
            step.rewrite = bool(UUID_RE_B.search(p)) or any(n in p for n in needles)


def build_plans(recordings: Sequence[Recording]) -> list[Plan]:
    plans = [build_plan(r) for r in recordings]
    groups: dict[str, list[Plan]] = {}
    for plan in plans:
        groups.setdefault(plan.group_id, []).append(plan)
    for members in groups.values():
        link_group(members)
    return plans
