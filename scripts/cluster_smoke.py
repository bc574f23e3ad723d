"""Cluster smoke: HAProxy, two gateways and Redis as processes; phoenix.js users ride a drain and a crash.

Run with `make cluster-smoke` (or `python scripts/cluster_smoke.py [--report FILE]`). Every part
is real: HAProxy from Debian's packages in front of two `python -m gateway serve` processes that
share one `redis-server`, and the official phoenix.js client under Node. The steps:

1. four users connect through HAProxy (round-robin, so they land on both gateways), join one
   `room:<uuid>`, chat and signal across the gateways;
2. the gateway holding the first user gets SIGTERM: it drains, its users are closed with 1012,
   reconnect through HAProxy to the other gateway, and a chat message and an offer still arrive;
3. the other gateway is killed with SIGKILL and started again: every user comes back, and a
   chat message and an offer arrive once more.

Exit code 0 when every step held; the JSON report (`--report`) records what was observed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from scripts.haproxy_proc import HAProxy  # noqa: E402
from tests.support.gateway_proc import GatewayProcess  # noqa: E402
from tests.support.node_client import NodeClient  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

USERS = ("ann", "bob", "cat", "dan")
CHANNEL = "room"
LONGPOLL_SECRET = "cluster-smoke-shared-secret"
OFFER_SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
DEADLINE_S = 55.0


class SmokeFailure(AssertionError):
    """A step of the smoke did not hold."""


@dataclass
class Report:
    """What the run observed, written as JSON for the test and for people."""

    topic: str = ""
    homes: dict[str, str] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    drain_close_codes: dict[str, int] = field(default_factory=dict)
    drain_close_ms: dict[str, float] = field(default_factory=dict)
    drained_exit_code: int | None = None
    crash_close_codes: dict[str, int] = field(default_factory=dict)
    connections_after: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    ok: bool = False

    def step(self, name: str, started: float, **facts: Any) -> None:
        entry = {"step": name, "seconds": round(time.monotonic() - started, 3), **facts}
        self.steps.append(entry)
        print(f"[cluster-smoke] {name}: {json.dumps(facts)} ({entry['seconds']} s)", flush=True)


def connections(gw: GatewayProcess) -> int:
    """Connections the gateway holds, from its own /readyz (0 when it is not ready)."""
    try:
        with urllib.request.urlopen(f"{gw.url}/readyz", timeout=1.0) as resp:
            count: int = json.load(resp)["connections"]
            return count
    except OSError:
        return 0


async def counts(nodes: dict[str, GatewayProcess]) -> dict[str, int]:
    result = {}
    for name, gw in nodes.items():
        result[name] = await asyncio.to_thread(connections, gw)
    return result


async def wait_counts(
    nodes: dict[str, GatewayProcess], want: dict[str, int], timeout: float = 5.0
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while (seen := await counts(nodes)) != want:
        if time.monotonic() > deadline:
            raise SmokeFailure(f"connections per gateway {seen}, expected {want}")
        await asyncio.sleep(0.05)
    return seen


async def mark(client: NodeClient) -> float:
    """The harness's clock now: later events have a larger `t`."""
    return float((await client.state())["t"])


async def expect_after(
    client: NodeClient, since: float, ev: str, timeout: float, **fields: Any
) -> dict[str, Any]:
    return await client.expect(
        lambda e: (
            e.get("ev") == ev and e["t"] > since and all(e.get(k) == v for k, v in fields.items())
        ),
        timeout,
    )


async def chat(clients: dict[str, NodeClient], sender: str, body: str) -> None:
    """`sender` posts `body`; every user in the room receives it, whichever gateway holds them."""
    reply = await clients[sender].push(CHANNEL, "new_msg", {"body": body})
    if reply["status"] != "ok":
        raise SmokeFailure(f"{sender}: new_msg refused: {reply}")
    for user, client in clients.items():
        got = await client.expect(
            lambda e: (
                e.get("ev") == "message"
                and e.get("event") == "new_msg"
                and e["payload"].get("body") == body
            ),
            5.0,
        )
        if got["payload"].get("from") != sender:
            raise SmokeFailure(f"{user} got {body!r} from {got['payload'].get('from')}")


async def offer(clients: dict[str, NodeClient], sender: str, target: str) -> None:
    """`sender` sends an offer to `target` only (directed signaling)."""
    sdp = OFFER_SDP + f"a=sender:{sender}:{uuid.uuid4().hex}\r\n"
    reply = await clients[sender].push(CHANNEL, "offer", {"sdp": sdp, "to": target})
    if reply["status"] != "ok" or reply["response"]:
        raise SmokeFailure(f"{sender}: offer to {target} not delivered live: {reply}")
    got = await clients[target].expect(
        lambda e: (
            e.get("ev") == "message"
            and e.get("event") == "offer"
            and e["payload"].get("sdp") == sdp
        ),
        5.0,
    )
    if got["payload"].get("from") != sender or got["payload"].get("type") != "offer":
        raise SmokeFailure(f"{target} got a wrong offer: {got['payload']}")


async def rejoined(client: NodeClient, user: str, since: float, timeout: float) -> None:
    reply = await expect_after(client, since, "join_reply", timeout, id=CHANNEL)
    if reply["status"] != "ok" or reply["response"] != {"user_id": user}:
        raise SmokeFailure(f"{user}: rejoin answered {reply}")


def gateway_args(redis_url: str, node: str) -> list[str]:
    return [
        "--redis-url", redis_url, "--node-id", node, "--longpoll-secret", LONGPOLL_SECRET,
        "--trust-token-as-user-id", "--presence-coalesce-ms", "20",
        "--drain-grace-s", "10", "--drain-batch", "1", "--drain-interval-ms", "150",
        "--redis-backoff-max-ms", "200",
    ]  # fmt: skip


async def run(workdir: Path, report: Report) -> None:
    started = time.monotonic()
    redis = RedisServer(workdir / "redis")
    nodes: dict[str, GatewayProcess] = {}
    haproxy: HAProxy | None = None
    clients: dict[str, NodeClient] = {}
    try:
        await asyncio.to_thread(redis.start)
        for node in ("a", "b"):
            nodes[node] = GatewayProcess(
                workdir / f"gateway-{node}.log", gateway_args(redis.url, node)
            )
        await asyncio.gather(*(gw.start() for gw in nodes.values()))
        haproxy = HAProxy(workdir / "haproxy", {n: gw.port for n, gw in nodes.items()})
        await haproxy.start()
        report.step("started", started, haproxy=haproxy.port, gateways=_ports(nodes))

        await spread(haproxy, nodes, clients, report)
        await drain_one(nodes, clients, report)
        await crash_other(nodes, clients, report)
        report.ok = True
    except BaseException:
        for gw in nodes.values():
            print(f"--- {gw.log_path.name} (tail) ---\n{gw.output()[-3000:]}", file=sys.stderr)
        if haproxy is not None:
            print(f"--- haproxy (tail) ---\n{haproxy.output()[-3000:]}", file=sys.stderr)
        for user, client in clients.items():
            print(f"--- client {user} ---\n{client.transcript(20)}", file=sys.stderr)
        raise
    finally:
        await asyncio.gather(*(c.close() for c in clients.values()), return_exceptions=True)
        await asyncio.gather(*(gw.terminate() for gw in nodes.values()), return_exceptions=True)
        if haproxy is not None:
            await haproxy.stop()
        await asyncio.to_thread(redis.stop)
        report.seconds = round(time.monotonic() - started, 2)


def _ports(nodes: dict[str, GatewayProcess]) -> dict[str, int]:
    return {n: gw.port for n, gw in nodes.items()}


async def spread(
    haproxy: HAProxy,
    nodes: dict[str, GatewayProcess],
    clients: dict[str, NodeClient],
    report: Report,
) -> None:
    """Users connect one by one through HAProxy; /readyz of each gateway tells where each went."""
    started = time.monotonic()
    for user in USERS:
        clients[user] = NodeClient(haproxy.ws_url, params={"token": user}, connect=False)
    await asyncio.gather(*(c.start() for c in clients.values()))
    held = {n: 0 for n in nodes}
    for user, client in clients.items():
        await client.send({"op": "connect"})
        await client.expect_ev("open", 5.0)
        deadline = time.monotonic() + 3.0
        while (now := await counts(nodes)) == held:
            if time.monotonic() > deadline:
                raise SmokeFailure(f"{user}: no gateway counted the connection ({now})")
            await asyncio.sleep(0.02)
        [home] = [n for n in nodes if now[n] == held[n] + 1]
        report.homes[user] = home
        held = now
    if set(report.homes.values()) != set(nodes):
        raise SmokeFailure(f"round-robin left a gateway without users: {report.homes}")

    report.topic = f"room:{uuid.uuid4()}"
    for user, client in clients.items():
        reply = await client.join(CHANNEL, report.topic)
        if reply["status"] != "ok" or reply["response"] != {"user_id": user}:
            raise SmokeFailure(f"{user}: join answered {reply}")
    for client in clients.values():
        await client.expect(
            lambda e: e.get("ev") == "presence_sync" and len(e["list"]) == len(USERS), 5.0
        )
    on_a = [u for u, n in report.homes.items() if n == "a"]
    on_b = [u for u, n in report.homes.items() if n == "b"]
    await chat(clients, on_a[0], "hello from gateway a")
    await chat(clients, on_b[0], "hello from gateway b")
    await offer(clients, on_a[0], on_b[0])
    await offer(clients, on_b[0], on_a[0])
    report.step("spread", started, homes=report.homes, presence=len(USERS))


async def drain_one(
    nodes: dict[str, GatewayProcess], clients: dict[str, NodeClient], report: Report
) -> None:
    """SIGTERM the first user's gateway: its users get 1012, land on the other one, carry on."""
    started = time.monotonic()
    victim = report.homes[USERS[0]]
    survivor = next(n for n in nodes if n != victim)
    moved = [u for u, n in report.homes.items() if n == victim]
    stayed = [u for u in USERS if u not in moved]
    marks = {u: await mark(clients[u]) for u in moved}
    sent_at = time.monotonic()
    nodes[victim].send_signal(15)  # SIGTERM
    for user in moved:
        closed = await expect_after(clients[user], marks[user], "close", 10.0)
        report.drain_close_codes[user] = closed["code"]
        report.drain_close_ms[user] = round((time.monotonic() - sent_at) * 1000, 1)
        if closed["code"] != 1012:
            raise SmokeFailure(f"{user}: drain closed the socket with {closed['code']}, not 1012")
    for user in moved:
        await rejoined(clients[user], user, marks[user], 10.0)
    report.drained_exit_code = await nodes[victim].wait(12.0)
    if report.drained_exit_code != 0:
        raise SmokeFailure(f"drained gateway exited with {report.drained_exit_code}")
    seen = await wait_counts({survivor: nodes[survivor]}, {survivor: len(USERS)})
    report.connections_after["drain"] = seen
    await chat(clients, moved[0], "still here after the drain")
    await offer(clients, moved[-1], stayed[0])
    await offer(clients, stayed[0], moved[0])
    report.step(
        "drain", started, gateway=victim, moved=moved, close_codes=report.drain_close_codes,
        exit_code=report.drained_exit_code, connections=seen,
    )  # fmt: skip


async def crash_other(
    nodes: dict[str, GatewayProcess], clients: dict[str, NodeClient], report: Report
) -> None:
    """SIGKILL the gateway now holding everyone, start it again: everyone comes back."""
    started = time.monotonic()
    victim = next(n for n, gw in nodes.items() if gw.returncode is None)
    marks = {u: await mark(c) for u, c in clients.items()}
    await nodes[victim].kill()
    for user, client in clients.items():
        closed = await expect_after(client, marks[user], "close", 5.0)
        report.crash_close_codes[user] = closed["code"]
    await nodes[victim].start()
    for user, client in clients.items():
        await rejoined(client, user, marks[user], 15.0)
    seen = await wait_counts({victim: nodes[victim]}, {victim: len(USERS)})
    report.connections_after["crash"] = seen
    await chat(clients, USERS[-1], "back after the crash")
    await offer(clients, USERS[1], USERS[0])
    report.step(
        "crash", started, gateway=victim, close_codes=report.crash_close_codes, connections=seen
    )


def check_tools() -> None:
    missing = [tool for tool in ("haproxy", "redis-server", "node") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"cluster-smoke: missing {', '.join(missing)}; scripts/setup-test-deps.sh installs them"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    check_tools()
    report = Report()
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        try:
            asyncio.run(asyncio.wait_for(run(workdir, report), DEADLINE_S))
        except (SmokeFailure, TimeoutError, AssertionError) as exc:
            print(f"[cluster-smoke] FAILED: {exc}", file=sys.stderr)
        finally:
            if args.report:
                args.report.write_text(json.dumps(report.__dict__, indent=2) + "\n")
    print(
        f"[cluster-smoke] {'passed' if report.ok else 'FAILED'} in {report.seconds} s", flush=True
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
