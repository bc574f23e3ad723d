"""The import rules of docs/design.md ("Import rules"), checked on every module's imports.

Imports are read from the source by scripts/import_graph.py: relative imports resolved,
imports under `if TYPE_CHECKING:` and inside functions included (a rule holds for all three).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from scripts.import_graph import (
    ROOT,
    Import,
    cycles,
    graph,
    imports_of,
    layer_graph,
    layer_of,
    package_files,
)

FILES = package_files()
IMPORTS: list[Import] = [i for path in FILES.values() for i in imports_of(path, FILES)]


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def imports_from(package: str) -> list[Import]:
    return [i for i in IMPORTS if in_package(i.source, package)]


def top(name: str) -> str:
    return name.split(".")[0]


def test_the_walker_sees_relative_type_only_and_lazy_imports() -> None:
    coalesce = imports_of(ROOT / "gateway/presence/coalesce.py", FILES)
    assert "gateway.presence.state" in {i.target for i in coalesce}  # `from .state import`
    connection = imports_of(ROOT / "gateway/runtime/connection.py", FILES)
    assert any(i.target == "gateway.runtime.parts" and i.type_only for i in connection)
    cli = imports_of(ROOT / "gateway/cli.py", FILES)
    assert any(in_package(i.target, "loadtest") and i.lazy for i in cli)


# The layers, lowest first: each imports only layers before it (type-only and lazy imports
# included), so no two layers ever import each other. docs/design.md, "Layers", draws the same.
LAYERS = [
    "errors",
    "protocol",
    "observability",
    "recording",
    "loadtest",  # beside the server: see the load-tester rules below
    "ice",
    "sfu",
    "config",
    "auth",
    "pubsub",
    "presence",
    "signaling",
    "history",
    "channels",
    "runtime",
    "transports",
    "app",  # the composition root
    "workers",
    "testing",
    "cli",
    "__main__",
    "gateway",  # the package's own __init__
]


def test_every_layer_is_ranked() -> None:
    assert {layer_of(m) for m in FILES} == set(LAYERS)


def test_each_layer_imports_only_the_layers_below_it() -> None:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    for imp in IMPORTS:
        if top(imp.target) not in {"gateway", "loadtest"} or imp.target == "gateway":
            continue
        mine, theirs = layer_of(imp.source), layer_of(imp.target)
        if mine != theirs:
            assert rank[theirs] < rank[mine], f"{imp} ({mine} may not import {theirs})"


def test_no_layer_cycle_even_counting_type_only_imports() -> None:
    assert cycles(layer_graph(graph())) == []


def test_no_module_cycle_even_counting_type_only_and_lazy_imports() -> None:
    assert cycles(graph()) == []


def test_pubsub_knows_nothing_of_presence() -> None:
    # Presence rides pub/sub (diffs are broadcasts); pub/sub hands remote diffs over encoded.
    for imp in imports_from("gateway.pubsub"):
        assert not in_package(imp.target, "gateway.presence"), imp


def test_channels_see_the_runtime_only_through_their_context() -> None:
    # `channels/context.py` types what a channel may use; the runtime implements it.
    for imp in imports_from("gateway.channels"):
        for below in ("gateway.runtime", "gateway.transports", "gateway.app"):
            assert not in_package(imp.target, below), imp


# Built once per node, by the composition root only; every other module is handed them.
PARTS = {
    "ConnectionParts",
    "TransportParts",
    "Node",
    "Admission",
    "Hub",
    "Router",
    "PubSub",
    "Rooms",
    "PresenceTracker",
    "Recorder",
}


def test_only_the_composition_root_builds_the_parts() -> None:
    for module, path in FILES.items():
        if module == "gateway.app" or not in_package(module, "gateway"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in PARTS, f"{module} builds {node.func.id}"


def test_no_module_is_a_grab_bag_of_parts() -> None:
    # `services.py` (everything, plus an untyped `extras` dict) and `appkeys.py` are gone.
    assert "gateway.services" not in FILES and "gateway.appkeys" not in FILES
    for imp in IMPORTS:
        assert imp.target not in {"gateway.services", "gateway.appkeys"}, imp


def test_protocol_core_is_pure() -> None:
    for imp in imports_from("gateway.protocol"):
        assert top(imp.target) not in {"asyncio", "aiohttp", "redis", "uvloop"}, imp
        if top(imp.target) == "gateway":
            assert in_package(imp.target, "gateway.protocol") or imp.target == "gateway.errors", imp


@pytest.mark.parametrize(
    "module",
    [
        "gateway.presence.state",
        "gateway.presence.coalesce",
        "gateway.auth.etf",
        "gateway.auth.phoenix_token",
        "gateway.auth.jwt",
        "gateway.auth.origin",
    ],
)
def test_pure_presence_and_auth_logic(module: str) -> None:
    for imp in imports_from(module):
        assert top(imp.target) not in {"asyncio", "aiohttp", "redis"}, imp


@pytest.mark.parametrize(
    "package", ["runtime", "channels", "pubsub", "presence", "signaling", "recording"]
)
def test_inner_layers_never_import_aiohttp(package: str) -> None:
    for imp in imports_from(f"gateway.{package}"):
        assert top(imp.target) != "aiohttp", imp


@pytest.mark.parametrize("package", ["channels", "signaling"])
def test_channels_and_signaling_never_see_a_transport(package: str) -> None:
    for imp in imports_from(f"gateway.{package}"):
        assert not in_package(imp.target, "gateway.transports"), imp


# The concrete backends: only the composition root picks one (a backend may use its sibling).
CONCRETE_BACKENDS = {
    "gateway.pubsub.redis",
    "gateway.pubsub.redis_cluster",
    "gateway.presence.memory",
    "gateway.presence.redis",
    "gateway.signaling.redis",
}


def test_only_the_composition_root_picks_backends() -> None:
    for imp in IMPORTS:
        if imp.target in CONCRETE_BACKENDS and imp.source != "gateway.app":
            assert imp.source in CONCRETE_BACKENDS, imp


# Where `redis` may be imported: the adapters that cross nodes and the stores that keep room
# state there. Long-poll forwarding rides the pub/sub adapter and imports no `redis`.
REDIS_MODULES = {
    "gateway.pubsub.redis",
    "gateway.pubsub.redis_cluster",
    "gateway.pubsub.redis_probe",
    "gateway.pubsub.redis_errors",
    "gateway.presence.redis",
    "gateway.presence.store",  # STORE_ERRORS: the Redis errors a store call may raise
    "gateway.signaling.redis",
    "gateway.sfu.modes",  # RedisRoomModes, the room media store
}


def test_redis_only_in_the_adapters_and_stores() -> None:
    for imp in IMPORTS:
        if top(imp.target) == "redis":
            assert imp.source in REDIS_MODULES, imp


def test_the_server_never_imports_the_load_tester() -> None:
    for imp in imports_from("gateway"):
        if in_package(imp.target, "loadtest"):
            # The one exception: `python -m gateway loadtest …` is dispatched by the CLI to the
            # sibling package, imported only when that subcommand is set up.
            assert imp.source == "gateway.cli" and imp.lazy, imp


def test_loadtest_sees_the_server_only_through_the_wire() -> None:
    # Of the gateway it reads and writes only the recording format; frames it codes itself.
    for imp in imports_from("loadtest"):
        if top(imp.target) == "gateway":
            assert imp.target == "gateway.recording", imp


def test_the_recording_format_is_neutral() -> None:
    for imp in imports_from("gateway.recording"):
        assert top(imp.target) not in {"gateway", "loadtest"}, imp


def test_every_module_is_seen() -> None:
    on_disk = [p for package in ("gateway", "loadtest") for p in (ROOT / package).rglob("*.py")]
    assert len(FILES) == len(on_disk)
    assert all(isinstance(p, Path) for p in FILES.values())
