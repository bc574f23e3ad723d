"""Print the import graph of the server (`gateway`) and the load tester beside it (`loadtest`):
module -> modules, layer -> layers, and any cycle.

    .venv/bin/python scripts/import_graph.py [--modules] [--runtime-only]

A layer is a subpackage of `gateway` (`runtime`, `channels`, ...) or a top-level module
(`app`, `services`, ...); the load tester is one layer, `loadtest`. Imports are read from the source (relative ones resolved), so nothing
is imported or run. Type-only imports (under `if TYPE_CHECKING:`) are marked `(type)` and count
for cycles unless --runtime-only is given. tests/unit/test_architecture.py reads the same graph.
Exits 1 when there is a cycle between layers.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "loadtest")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. gateway.runtime.connection
    target: str  # what it names, resolved: gateway.protocol.messages, redis.asyncio, ...
    type_only: bool  # under `if TYPE_CHECKING:`
    lazy: bool  # inside a function body (runs only when called)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_files(root: Path = ROOT) -> dict[str, Path]:
    return {
        module_name(p, root): p
        for package in PACKAGES
        for p in sorted((root / package).rglob("*.py"))
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if path.name != "__init__.py":
        base.pop()  # a module's relative imports start from its package
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, files: Iterable[str] = (), root: Path = ROOT) -> list[Import]:
    """Every import in `path`; `from pkg import sub` names `pkg.sub` when that module exists."""
    module = module_name(path, root)
    known = set(files)
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool, lazy: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                visit(stmt, True, lazy)
            for stmt in node.orelse:
                visit(stmt, type_only, lazy)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, type_only, lazy))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            targets = {f"{base}.{a.name}" for a in node.names} & known or {base}
            for target in sorted(targets):
                found.append(Import(module, target, type_only, lazy))
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, type_only, inner)

    visit(ast.parse(path.read_text()), False, False)
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "gateway" and len(parts) > 1 else parts[0]


def graph(root: Path = ROOT, runtime_only: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    files = package_files(root)
    edges: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for imp in imports_of(path, files, root):
            if imp.type_only and runtime_only:
                continue
            target = imp.target
            while target and target not in files:  # `import gateway.x.y` of a name in gateway.x
                target = target.rpartition(".")[0]
            if target.startswith(tuple(p + "." for p in PACKAGES)) and target != module:
                edges[module].add(target)
    return edges


def layer_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    layers: dict[str, set[str]] = {}
    for module, targets in edges.items():
        mine = layers.setdefault(layer_of(module), set())
        mine.update(layer_of(t) for t in targets if layer_of(t) != layer_of(module))
    return layers


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    # The walk recurses once per module on a path; the limit goes back afterwards, since a
    # test process that imports this must keep its own (deep JSON is refused by it).
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in sorted(edges):
            if node not in index:
                connect(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="also print module -> modules")
    parser.add_argument("--runtime-only", action="store_true", help="leave type-only imports out")
    args = parser.parse_args(argv)
    edges = graph(runtime_only=args.runtime_only)
    runtime = edges if args.runtime_only else graph(runtime_only=True)
    layers = layer_graph(edges)
    if args.modules:
        print("# module -> modules ((type): only under TYPE_CHECKING)")
        for module in sorted(edges):
            names = [t if t in runtime[module] else f"{t} (type)" for t in sorted(edges[module])]
            print(f"{module} -> {', '.join(names) or '-'}")
        print()
    print("# layer -> layers")
    for layer in sorted(layers):
        print(f"{layer} -> {', '.join(sorted(layers[layer])) or '-'}")
    module_cycles, layer_cycles = cycles(edges), cycles(layers)
    print()
    print(f"# module cycles: {len(module_cycles)}")
    for cycle in module_cycles:
        print("  " + " <-> ".join(cycle))
    print(f"# layer cycles: {len(layer_cycles)}")
    for cycle in layer_cycles:
        print("  " + " <-> ".join(cycle))
    return 1 if layer_cycles else 0


if __name__ == "__main__":
    sys.exit(main())
