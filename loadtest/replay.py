"""Replay one plan as one virtual user: its own token, refs and join_refs, the recorded timing
scaled by `speed`, and room and user ids remapped per group copy so recorded peers meet again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec

from gateway.recording import SCRUBBED
from loadtest.jsonenc import encode, normalize
from loadtest.metrics import Metrics
from loadtest.plan import UUID_RE, Plan, Step, recorded_identities
from loadtest.user import DeliveryTable, VirtualUser, user_id_of

PEER_WAIT_S = 5.0  # how long a user waits for a peer's live id before sending the recorded one
DRAIN_S = 2.0  # how long a finished session waits for its last replies before closing


class GroupCopy:
    """The shared state of the users replaying one copy of one recording group: the room id
    remapping, the live user id behind each recorded one, and payloads sent (for delivery)."""

    def __init__(self, key: tuple[str, int], plans: Iterable[Plan]) -> None:
        self.key = key
        self.rooms: dict[str, str] = {}
        plans = list(plans)
        self.recorded_ids = recorded_identities(plans)
        self.live: dict[str, str] = {}
        self._events: dict[str, asyncio.Event] = {}
        self.delivery = DeliveryTable()
        # recorded topic -> (session, recorded time of its join), to keep the recorded order
        # "the peer had joined before I pushed" when the server is slow to answer a join.
        self._joins: dict[str, list[tuple[str, float]]] = {}
        self._joined: dict[tuple[str, str], asyncio.Event] = {}
        for plan in plans:
            for step in plan.steps:
                if step.event == "phx_join":
                    self._joins.setdefault(step.topic, []).append((plan.session_id, step.at_ms))

    def room(self, recorded: str) -> str:
        new = self.rooms.get(recorded)
        if new is None:
            new = self.rooms[recorded] = str(uuid.uuid4())
        return new

    def remap_text(self, text: str) -> str:
        if "-" not in text:
            return text
        return UUID_RE.sub(lambda m: self.room(m.group(0)), text)

    def publish(self, recorded: str, live: str) -> None:
        self.live[recorded] = live
        self._event(recorded).set()

    def _event(self, recorded: str) -> asyncio.Event:
        ev = self._events.get(recorded)
        if ev is None:
            ev = self._events[recorded] = asyncio.Event()
        return ev

    def joined(self, session_id: str, topic: str) -> None:
        """`session_id` has its answer to the join of recorded `topic` (ok or not)."""
        self._joined.setdefault((session_id, topic), asyncio.Event()).set()

    async def peers_joined(self, session_id: str, topic: str, at_ms: float) -> None:
        """Wait (at most PEER_WAIT_S in all) for the group's other sessions that had joined
        `topic` before `at_ms` in the recording, so their copies see this push too."""
        deadline = time.monotonic() + PEER_WAIT_S
        for other, joined_at in self._joins.get(topic, ()):
            if other == session_id or joined_at >= at_ms:
                continue
            event = self._joined.setdefault((other, topic), asyncio.Event())
            left = deadline - time.monotonic()
            if event.is_set() or left <= 0:
                continue
            try:
                await asyncio.wait_for(event.wait(), left)
            except TimeoutError:
                return

    async def resolve(self, recorded: str) -> str | None:
        if recorded in self.live:
            return self.live[recorded]
        try:
            await asyncio.wait_for(self._event(recorded).wait(), PEER_WAIT_S)
        except TimeoutError:
            return None
        return self.live.get(recorded)


def _strings(value: Any, out: set[str]) -> None:
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        out.add(str(value))
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)


def _rewrite(value: Any, ids: dict[str, str], group: GroupCopy) -> Any:
    if isinstance(value, str):
        if value in ids:
            return ids[value]
        return group.remap_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        live = ids.get(str(value))
        if live is None:
            return value
        return int(live) if live.isdigit() else live
    if isinstance(value, dict):
        return {k: _rewrite(v, ids, group) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, ids, group) for v in value]
    return value


async def rewrite_payload(payload: bytes, group: GroupCopy) -> bytes:
    """Map recorded user ids/tokens to the live ones of this copy, and room ids to new ones."""
    try:
        value = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return payload
    seen: set[str] = set()
    _strings(value, seen)
    ids: dict[str, str] = {}
    for recorded in seen & group.recorded_ids:
        live = await group.resolve(recorded)
        if live is not None:
            ids[recorded] = live
    return encode(_rewrite(value, ids, group))


class Replayer:
    """Plays a plan on a user until `stop_ns` (monotonic); loops when `loop` is set."""

    def __init__(
        self,
        user: VirtualUser,
        plan: Plan,
        group: GroupCopy,
        *,
        speed: float,
        stop_ns: int,
        loop: bool,
        token: str | None,
    ) -> None:
        self.user = user
        self.plan = plan
        self.group = group
        self.speed = speed
        self.stop_ns = stop_ns
        self.loop = loop
        self.token = token
        user.vsn = plan.vsn
        params = {k: group.remap_text(v) for k, v in plan.params.items()}
        if token is not None:
            params["token"] = token
        elif params.get("token") == SCRUBBED:
            # Sending the placeholder would only earn a refusal; send no token instead.
            del params["token"]
        user.params = params
        if plan.token and token is not None:
            group.publish(plan.token, token)

    def _time_left(self) -> bool:
        return time.monotonic_ns() < self.stop_ns

    async def run(self) -> None:
        backoff = 0.5
        while self._time_left():
            if not await self.user.connect():
                # phoenix.js retries with backoff; so do we, without hammering a refusing server.
                await asyncio.sleep(
                    min(backoff, max(0.0, (self.stop_ns - time.monotonic_ns()) / 1e9))
                )
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.5
            await self._play_once()
            await self.user.drain(DRAIN_S)
            if not self.loop or not self._time_left():
                break
            await self.user.close()
        await self.user.close()

    async def _play_once(self) -> None:
        user = self.user
        start = time.monotonic_ns()
        scale = 1e6 / self.speed if self.speed > 0 else 0.0  # ms of recording -> ns of replay
        jr_map: dict[str, str] = {}
        for step in self.plan.steps:
            intended = start + int(step.at_ms * scale)
            now = time.monotonic_ns()
            if scale and intended > now:
                if intended >= self.stop_ns:
                    return
                await asyncio.sleep((intended - now) / 1e9)
            if not self._time_left() or not user.connected:
                return
            await self._step(step, jr_map, intended if scale else None)
        if scale:
            # Stay connected as long as the recorded session did, so load keeps its shape.
            end = start + int(self.plan.end_ms * scale)
            wait = min(end, self.stop_ns) - time.monotonic_ns()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)

    async def _step(self, step: Step, jr_map: dict[str, str], intended: int | None) -> None:
        user = self.user
        group = self.group
        topic = group.remap_text(step.topic)
        payload = step.payload
        if step.rewrite:
            payload = await rewrite_payload(payload, group)
        if step.event == "phx_join":
            ref = user.next_ref()
            if step.join_ref is not None:
                jr_map[step.join_ref] = ref
            waiter = user.send(
                topic,
                "phx_join",
                payload,
                join_ref=ref,
                ref=ref,
                kind="join",
                expect=step.expect,
                sent_ns=intended,
                wait=True,
            )
            reply = await waiter if waiter is not None else None
            group.joined(self.plan.session_id, step.topic)
            if reply is not None and reply.status == "ok":
                user.joined[topic] = ref
                if user.user_id is None:
                    user.user_id = user_id_of(reply.payload)
                if self.plan.user_id and user.user_id:
                    group.publish(self.plan.user_id, user.user_id)
            return
        join_ref = jr_map.get(step.join_ref, step.join_ref) if step.join_ref else None
        await group.peers_joined(self.plan.session_id, step.topic, step.at_ms)
        if step.text and step.event != "phx_leave":
            try:
                group.delivery.note(normalize(payload), time.time_ns())
            except msgspec.DecodeError:
                pass
        user.send(
            topic,
            step.event,
            payload,
            text=step.text,
            join_ref=join_ref,
            kind="reply" if step.expect is not None else None,
            expect=step.expect,
            sent_ns=intended,
        )
        if step.event == "phx_leave":
            user.joined.pop(topic, None)


def replay_user(
    n: int,
    url: str,
    metrics: Metrics,
    plan: Plan,
    group: GroupCopy,
    *,
    speed: float,
    stop_ns: int,
    loop: bool,
    token: str | None,
    reply_timeout_s: float = 10.0,
    heartbeat_s: float = 30.0,
) -> Replayer:
    """A virtual user set up to replay `plan` as member of `group`."""
    user = VirtualUser(
        n,
        url,
        metrics,
        vsn=plan.vsn,
        reply_timeout_s=reply_timeout_s,
        heartbeat_s=heartbeat_s,
        delivery=group.delivery,
    )
    return Replayer(user, plan, group, speed=speed, stop_ns=stop_ns, loop=loop, token=token)
