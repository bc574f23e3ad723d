"""Built-in generated sessions for the shapes people ask about: signaling pairs, chat rooms of
ten, one large broadcast room, and a plain echo. Each scenario is a coroutine per virtual user.

Payloads carry a send-time stamp (`ltns…`, see `user.STAMP_RE`) inside fields a server relays
(the SDP, the ICE candidate string, the chat body), so delivery latency is measured end to end
whatever envelope the server wraps around them.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Hashable
from typing import Any

import msgspec

from loadtest import wire
from loadtest.jsonenc import encode
from loadtest.user import VirtualUser, stamp

NAMES = ("signaling-pairs", "chat-rooms", "broadcast-room", "echo")
PEER_WAIT_S = 5.0
DRAIN_S = 2.0  # at the end, how long a user waits for replies still owed before closing


class ScenarioOptions(msgspec.Struct):
    """What a scenario run is shaped by (the CLI's flags)."""

    name: str
    rate: float = 1.0  # messages per second per user; 0 = next as soon as the reply is in
    room_size: int = 10
    topic: str = "echo:broadcast-room"
    body_bytes: int = 64
    # As in phoenix.js, a push nobody awaits may go unanswered: its reply is timed when one
    # comes, and an unanswered push is counted, not an error. True: every push awaits its reply
    # and a missing one is the error `reply_timeout`.
    expect_replies: bool = False
    run_id: str = ""  # seeds room ids, so every process derives the same room for a group


def room_id(opts: ScenarioOptions, label: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"loadtest:{opts.run_id}:{label}"))


def group_of(opts: ScenarioOptions, n: int) -> Hashable:
    """Users that must share one process (they exchange ids through process memory)."""
    if opts.name == "signaling-pairs":
        return ("pair", n // 2)
    if opts.name == "chat-rooms":
        return ("room", n // max(1, opts.room_size))
    return ("user", n)


class Shared:
    """A worker's process-local meeting point: user ids published per group."""

    def __init__(self) -> None:
        self._ids: dict[Hashable, asyncio.Future[str]] = {}

    def future(self, key: Hashable) -> asyncio.Future[str]:
        fut = self._ids.get(key)
        if fut is None:
            fut = self._ids[key] = asyncio.get_running_loop().create_future()
        return fut

    def publish(self, key: Hashable, user_id: str) -> None:
        fut = self.future(key)
        if not fut.done():
            fut.set_result(user_id)

    async def lookup(self, key: Hashable) -> str | None:
        try:
            return await asyncio.wait_for(asyncio.shield(self.future(key)), PEER_WAIT_S)
        except TimeoutError:
            return None


async def paced(
    user: VirtualUser, rate: float, stop_ns: int, send: Callable[[bool, int], Any]
) -> None:
    """Call `send(wait, interval_us)` at `rate` per second until `stop_ns`, or back to back
    (waiting for each reply) when rate is 0. Pacing keeps to a fixed schedule so a slow server
    is charged for the sends it delayed (coordinated-omission correction via the interval)."""
    if rate <= 0:
        while time.monotonic_ns() < stop_ns and user.connected:
            waiter = send(True, 0)
            if waiter is None or await waiter is None:
                return
        return
    interval_ns = int(1e9 / rate)
    # A random phase spreads users over the interval instead of firing them in lockstep.
    next_ns = time.monotonic_ns() + random.randrange(interval_ns)
    while user.connected:
        now = time.monotonic_ns()
        if next_ns > now:
            if next_ns >= stop_ns:
                return
            await asyncio.sleep((next_ns - now) / 1e9)
        if time.monotonic_ns() >= stop_ns or not user.connected:
            return
        send(False, interval_ns // 1000)
        next_ns += interval_ns


def _body(opts: ScenarioOptions) -> str:
    return "x" * max(0, opts.body_bytes)


async def echo(user: VirtualUser, n: int, opts: ScenarioOptions, shared: Shared, stop: int) -> None:
    topic = f"echo:loadtest-{n}"
    if not await user.join(topic):
        return
    body = _body(opts)
    seq = 0

    def send(wait: bool, interval_us: int) -> Any:
        nonlocal seq
        seq += 1
        payload = encode({"body": body, "seq": seq})
        waiter = user.send(topic, "ping", payload, interval_us=interval_us, wait=wait)
        if waiter is None or not wait:
            return waiter
        return _checked_echo(user, waiter, payload)

    await paced(user, opts.rate, stop, send)


async def _checked_echo(
    user: VirtualUser, waiter: asyncio.Future[wire.Inbound | None], sent: bytes
) -> wire.Inbound | None:
    reply = await waiter
    if reply is not None and reply.status == "ok" and bytes(reply.payload) != sent:
        user.metrics.error("echo_mismatch")
    return reply


async def broadcast_room(
    user: VirtualUser, n: int, opts: ScenarioOptions, shared: Shared, stop: int
) -> None:
    topic = opts.topic
    if not await user.join(topic):
        return
    body = _body(opts)
    kind = "reply"

    def send(wait: bool, interval_us: int) -> Any:
        payload = encode({"body": body, "from": n, "ltns": time.time_ns()})
        return user.send(
            topic,
            "broadcast",
            payload,
            kind=kind,
            required=opts.expect_replies,
            interval_us=interval_us,
            wait=wait,
        )

    await paced(user, opts.rate, stop, send)


async def chat_rooms(
    user: VirtualUser, n: int, opts: ScenarioOptions, shared: Shared, stop: int
) -> None:
    room = n // max(1, opts.room_size)
    topic = f"room:{room_id(opts, f'chat-{room}')}"
    if not await user.join(topic):
        return
    kind = "reply"
    body = _body(opts)

    def send(wait: bool, interval_us: int) -> Any:
        payload = encode({"body": f"{body} {stamp()}"})
        return user.send(
            topic,
            "new_msg",
            payload,
            kind=kind,
            required=opts.expect_replies,
            interval_us=interval_us,
            wait=wait,
        )

    await paced(user, opts.rate, stop, send)


def _sdp(kind: str) -> str:
    sess = random.randrange(10**15, 10**16)
    return "\r\n".join(
        [
            "v=0",
            f"o=- {sess} 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "c=IN IP4 0.0.0.0",
            "a=mid:0",
            f"a={'sendrecv' if kind == 'offer' else 'recvonly'}",
            "a=rtpmap:111 opus/48000/2",
            f"a=x-{stamp()}",
            "",
        ]
    )


def _candidate(i: int) -> str:
    port = 50000 + i % 10000
    # `ltns <n>` is an ICE extension attribute (name value), so the string stays well formed.
    return (
        f"candidate:{842163049 + i} 1 udp 1677729535 192.0.2.{1 + i % 250} {port} typ host "
        f"generation 0 ltns {time.time_ns()}"
    )


async def signaling_pairs(
    user: VirtualUser, n: int, opts: ScenarioOptions, shared: Shared, stop: int
) -> None:
    pair, role = divmod(n, 2)
    topic = f"room:{room_id(opts, f'pair-{pair}')}"
    presence_ids: set[str] = set()

    def on_presence(msg: wire.Inbound) -> None:
        # presence_state is {id: metas}; presence_diff is {joins: {id: …}, leaves: …}.
        try:
            value = msgspec.json.decode(msg.payload)
        except msgspec.DecodeError:
            return
        if isinstance(value, dict):
            if msg.event == "presence_diff":
                value = value.get("joins") or {}
            presence_ids.update(str(k) for k in value)

    user.on("presence_state", on_presence)
    user.on("presence_diff", on_presence)
    answered = asyncio.Event()
    offered = asyncio.Event()
    user.on("offer", lambda _m: offered.set())
    user.on("answer", lambda _m: answered.set())
    if not await user.join(topic):
        return
    me = user.user_id or user.params.get("token") or f"user-{n}"
    shared.publish((pair, role), me)
    peer = await shared.lookup((pair, 1 - role))
    if peer is None:
        others = presence_ids - {me}
        peer = next(iter(others)) if others else None
    if peer is None:
        user.metrics.error("no_peer")
        return
    kind = "reply"
    if role == 0:
        offer = encode({"sdp": _sdp("offer"), "to": peer, "type": "offer"})
        user.send(topic, "offer", offer, kind=kind, required=opts.expect_replies)
        await _wait_event(answered, stop)
    else:
        await _wait_event(offered, stop)
        answer = encode({"sdp": _sdp("answer"), "to": peer, "type": "answer"})
        user.send(topic, "answer", answer, kind=kind, required=opts.expect_replies)
    count = 0

    def send(wait: bool, interval_us: int) -> Any:
        nonlocal count
        count += 1
        payload = encode(
            {"candidate": _candidate(count), "sdpMid": "0", "sdpMLineIndex": 0, "to": peer}
        )
        return user.send(
            topic,
            "ice-candidate",
            payload,
            kind=kind,
            required=opts.expect_replies,
            interval_us=interval_us,
            wait=wait,
        )

    await paced(user, opts.rate, stop, send)


async def _wait_event(event: asyncio.Event, stop_ns: int) -> None:
    left = (stop_ns - time.monotonic_ns()) / 1e9
    if left <= 0:
        return
    try:
        await asyncio.wait_for(event.wait(), min(left, PEER_WAIT_S * 2))
    except TimeoutError:
        return


ScenarioFn = Callable[[VirtualUser, int, ScenarioOptions, Shared, int], Any]

SCENARIOS: dict[str, ScenarioFn] = {
    "signaling-pairs": signaling_pairs,
    "chat-rooms": chat_rooms,
    "broadcast-room": broadcast_room,
    "echo": echo,
}


async def run_scenario_user(
    user: VirtualUser, n: int, opts: ScenarioOptions, shared: Shared, stop_ns: int
) -> None:
    """Connect, play the scenario until `stop_ns`, close; a dropped connection reconnects."""
    fn = SCENARIOS[opts.name]
    backoff = 0.5
    while time.monotonic_ns() < stop_ns:
        if not await user.connect():
            await asyncio.sleep(min(backoff, max(0.0, (stop_ns - time.monotonic_ns()) / 1e9)))
            backoff = min(backoff * 2, 5.0)
            continue
        backoff = 0.5
        await fn(user, n, opts, shared, stop_ns)
        await user.drain(DRAIN_S)
        if user.connected:
            # A scenario ends early only when it cannot go on (join refused): wait out the run
            # connected, as a real client would, instead of reconnecting in a tight loop.
            remaining = (stop_ns - time.monotonic_ns()) / 1e9
            if remaining > 0:
                await _wait_closed(user, remaining)
            break
    await user.close()


async def _wait_closed(user: VirtualUser, seconds: float) -> None:
    ws = user.ws
    if ws is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(ws.closed), seconds)
    except TimeoutError:
        return
