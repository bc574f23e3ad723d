"""The fleet: virtual users spread over worker processes (one uvloop loop each), started on a
common ramp, with each worker's numbers streamed to the parent once a second and merged there.

Users that share a group (recorded peers, a signaling pair, a chat room) are placed in the same
process, because they exchange live ids through process memory.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
import uuid
from collections.abc import Callable, Hashable
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import msgspec

from loadtest.metrics import Metrics, Snapshot
from loadtest.scenarios import ScenarioOptions, Shared, group_of, run_scenario_user
from loadtest.user import VirtualUser

TICK_S = 1.0


class FleetConfig(msgspec.Struct):
    """Everything a run needs; sent to every worker process."""

    url: str
    users: int
    duration: float = 0.0  # seconds; 0 = replay each session once
    ramp: float = 0.0  # users started per second; 0 = all at once
    processes: int = 1
    speed: float = 1.0
    recordings: list[str] = []
    scenario: ScenarioOptions | None = None
    token_template: str | None = None
    tokens: list[str] = []
    reply_timeout_s: float = 10.0
    heartbeat_s: float = 30.0
    run_id: str = ""


def token_for(cfg: FleetConfig, n: int) -> str | None:
    """User n's token: the n-th line of the token file (wrapping), else the template."""
    if cfg.tokens:
        return cfg.tokens[n % len(cfg.tokens)]
    if cfg.token_template:
        return cfg.token_template.format(n=n)
    return None


def _replay_groups(cfg: FleetConfig) -> list[Hashable]:
    from gateway.recording import load_recordings

    recs = load_recordings(cfg.recordings)
    return [(recs[n % len(recs)].header.group_id, n // len(recs)) for n in range(cfg.users)]


def assign(cfg: FleetConfig) -> list[list[int]]:
    """User indices per process; a group never spans two processes."""
    if cfg.scenario is not None:
        keys = [group_of(cfg.scenario, n) for n in range(cfg.users)]
    else:
        keys = _replay_groups(cfg)
    order: dict[Hashable, int] = {}
    out: list[list[int]] = [[] for _ in range(max(1, cfg.processes))]
    for n, key in enumerate(keys):
        slot = order.setdefault(key, len(order) % len(out))
        out[slot].append(n)
    return [users for users in out if users] or [[]]


# Worker process ------------------------------------------------------------------------------


class _Worker:
    def __init__(self, cfg: FleetConfig, index: int, users: list[int], out: Any) -> None:
        self.cfg = cfg
        self.index = index
        self.users = users
        self.out = out
        self.metrics = Metrics()
        self.live: list[VirtualUser] = []
        self.tick_no = 0

    async def run(self) -> None:
        cfg = self.cfg
        cpu0 = time.process_time()
        start = time.monotonic_ns()
        duration_ns = int(cfg.duration * 1e9) if cfg.duration > 0 else 10**18
        stop_ns = start + duration_ns
        runners = self._runners(stop_ns)
        ticker = asyncio.create_task(self._ticker())
        tasks = []
        for n, make in runners:
            delay = n / cfg.ramp if cfg.ramp > 0 else 0.0
            tasks.append(asyncio.create_task(self._start(start, delay, stop_ns, make)))
        await asyncio.gather(*tasks, return_exceptions=False)
        await asyncio.sleep(0)
        ticker.cancel()
        # The last partial second is not a timeline point; the totals include it.
        cpu = time.process_time() - cpu0
        final = self.metrics.final_snapshot(self.index, self.tick_no, cpu)
        self.out.put(msgspec.msgpack.encode(final))

    def _runners(self, stop_ns: int) -> list[tuple[int, Callable[[], Any]]]:
        cfg = self.cfg
        out: list[tuple[int, Callable[[], Any]]] = []
        if cfg.scenario is not None:
            opts = cfg.scenario
            shared = Shared()
            for n in self.users:
                user = self._user(n, {})
                out.append((n, _bind_scenario(user, n, opts, shared, stop_ns)))
            return out
        from gateway.recording import load_recordings
        from loadtest.plan import build_plans
        from loadtest.replay import GroupCopy, replay_user

        plans = build_plans(load_recordings(cfg.recordings))
        by_group: dict[str, list[Any]] = {}
        for plan in plans:
            by_group.setdefault(plan.group_id, []).append(plan)
        groups: dict[tuple[str, int], GroupCopy] = {}
        for n in self.users:
            plan = plans[n % len(plans)]
            key = (plan.group_id, n // len(plans))
            group = groups.get(key)
            if group is None:
                group = groups[key] = GroupCopy(key, by_group[plan.group_id])
            replayer = replay_user(
                n,
                cfg.url,
                self.metrics,
                plan,
                group,
                speed=cfg.speed,
                stop_ns=stop_ns,
                loop=cfg.duration > 0,
                token=token_for(cfg, n),
                reply_timeout_s=cfg.reply_timeout_s,
                heartbeat_s=cfg.heartbeat_s,
            )
            self.live.append(replayer.user)
            out.append((n, replayer.run))
        return out

    def _user(self, n: int, params: dict[str, str]) -> VirtualUser:
        cfg = self.cfg
        token = token_for(cfg, n)
        if token is not None:
            params = {**params, "token": token}
        user = VirtualUser(
            n,
            cfg.url,
            self.metrics,
            params=params,
            reply_timeout_s=cfg.reply_timeout_s,
            heartbeat_s=cfg.heartbeat_s,
        )
        self.live.append(user)
        return user

    async def _start(self, start: int, delay: float, stop_ns: int, make: Callable[[], Any]) -> None:
        wait = start + int(delay * 1e9) - time.monotonic_ns()
        if wait > 0:
            await asyncio.sleep(wait / 1e9)
        if time.monotonic_ns() >= stop_ns:
            return
        c = self.metrics.counters
        c.users_started += 1
        c.users_active += 1
        try:
            await make()
        except Exception as exc:  # a bug in one user must not take the other users down
            self.metrics.error(f"client_bug:{type(exc).__name__}")
            import traceback

            traceback.print_exc()
        finally:
            c.users_active -= 1

    async def _ticker(self) -> None:
        next_t = time.monotonic() + TICK_S
        while True:
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            next_t += TICK_S
            now = time.monotonic_ns()
            for user in self.live:
                user.tick(now)
            self.tick_no += 1
            snap = self.metrics.interval_snapshot(self.index, self.tick_no)
            self.out.put(msgspec.msgpack.encode(snap))


def _bind_scenario(
    user: VirtualUser, n: int, opts: ScenarioOptions, shared: Shared, stop_ns: int
) -> Callable[[], Any]:
    return lambda: run_scenario_user(user, n, opts, shared, stop_ns)


def worker_main(cfg_bytes: bytes, index: int, users: list[int], out: Any, go: MpEvent) -> None:
    """Entry point of a worker process."""
    cfg = msgspec.msgpack.decode(cfg_bytes, type=FleetConfig)
    out.put(msgspec.msgpack.encode({"ready": index}))
    go.wait()
    try:
        import uvloop

        uvloop.run(_Worker(cfg, index, users, out).run())
    except ImportError:  # uvloop is a speed-up, not a requirement
        asyncio.run(_Worker(cfg, index, users, out).run())


# Parent --------------------------------------------------------------------------------------


class FleetResult(msgspec.Struct):
    """The merged outcome: final cumulative snapshots per worker and the per-tick timeline."""

    config: FleetConfig
    elapsed_s: float
    finals: list[Snapshot]
    ticks: dict[int, list[Snapshot]]


Progress = Callable[[int, list[Snapshot], float], None]


def run_fleet(cfg: FleetConfig, progress: Progress | None = None) -> FleetResult:
    """Run the fleet to completion; `progress(tick, snapshots, elapsed)` fires once per tick."""
    if not cfg.run_id:
        cfg = msgspec.structs.replace(cfg, run_id=uuid.uuid4().hex)
    if cfg.scenario is not None and not cfg.scenario.run_id:
        cfg.scenario.run_id = cfg.run_id
    slots = assign(cfg)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    cfg_bytes = msgspec.msgpack.encode(cfg)
    procs = [
        ctx.Process(target=worker_main, args=(cfg_bytes, i, users, out, go), daemon=True)
        for i, users in enumerate(slots)
    ]
    for p in procs:
        p.start()
    ready = 0
    while ready < len(procs):
        msgspec.msgpack.decode(out.get(timeout=60))
        ready += 1
    go.set()
    start = time.monotonic()
    finals: list[Snapshot] = []
    ticks: dict[int, list[Snapshot]] = {}
    reported = 0
    limit = (cfg.duration if cfg.duration > 0 else 3600.0) + cfg.users / max(cfg.ramp, 1e-9) * (
        cfg.ramp > 0
    )
    deadline = start + limit + 60.0
    while len(finals) < len(procs):
        try:
            raw = out.get(timeout=0.5)
        except queue.Empty:
            if time.monotonic() > deadline or not any(p.is_alive() for p in procs):
                break
            continue
        snap = msgspec.msgpack.decode(raw, type=Snapshot)
        if snap.final:
            finals.append(snap)
            continue
        ticks.setdefault(snap.tick, []).append(snap)
        # Report a tick once every live worker has sent it.
        while reported + 1 in ticks and len(ticks[reported + 1]) >= len(procs) - len(finals):
            reported += 1
            if progress is not None:
                progress(reported, ticks[reported], time.monotonic() - start)
    elapsed = time.monotonic() - start
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    return FleetResult(cfg, elapsed, finals, ticks)
