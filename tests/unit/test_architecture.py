"""The import rules of docs/design.md, checked by walking every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(package: str) -> list[Path]:
    return sorted((GATEWAY / package).rglob("*.py"))


def test_protocol_core_is_pure() -> None:
    for path in modules("protocol"):
        for name in imports_of(path):
            top = name.split(".")[0]
            assert top not in {"asyncio", "aiohttp", "redis", "uvloop"}, (
                f"{path.name} imports {name}"
            )
            if name.startswith("gateway."):
                assert name.startswith(("gateway.protocol", "gateway.errors")), (
                    f"{path.name} imports {name}"
                )


@pytest.mark.parametrize("package", ["runtime", "channels", "pubsub", "presence", "signaling"])
def test_inner_layers_never_import_aiohttp(package: str) -> None:
    for path in modules(package):
        for name in imports_of(path):
            assert not name.startswith("aiohttp"), f"{package}/{path.name} imports {name}"


def test_pure_presence_and_auth_logic() -> None:
    for path in [
        GATEWAY / "presence" / "state.py",
        GATEWAY / "presence" / "coalesce.py",
        GATEWAY / "auth" / "etf.py",
        GATEWAY / "auth" / "phoenix_token.py",
    ]:
        for name in imports_of(path):
            assert name.split(".")[0] not in {"asyncio", "aiohttp", "redis"}, (
                f"{path.name} imports {name}"
            )


def test_loadtest_sees_the_server_only_through_the_wire() -> None:
    for path in modules("loadtest"):
        for name in imports_of(path):
            if name.startswith("gateway."):
                assert name.startswith(("gateway.protocol", "gateway.loadtest")), (
                    f"{path.name} imports {name}"
                )
