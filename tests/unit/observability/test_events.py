"""Every log line's event is a name from `events.py`, every name there is logged somewhere, and
the docs' table of events lists exactly those names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gateway.observability import events

ROOT = Path(__file__).resolve().parents[3]
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def logged_events() -> dict[str, list[str]]:
    """Event name -> where it is logged, for every `log.<level>(event, ...)` of the server."""
    constants = {k: v for k, v in vars(events).items() if k.isupper() and isinstance(v, str)}
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LEVELS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("log", "_log")
                and node.args
            ):
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                name = first.value
            elif isinstance(first, ast.Attribute) and first.attr in constants:
                name = constants[first.attr]
            else:
                name = ast.unparse(first)
            found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_logged_event_is_a_known_name_and_every_name_is_logged() -> None:
    logged = logged_events()
    unknown = {name: where for name, where in logged.items() if name not in events.ALL}
    assert not unknown, f"log events missing from events.py: {unknown}"
    assert not events.ALL - logged.keys(), "names in events.py that nothing logs"


def test_the_docs_list_exactly_the_events() -> None:
    text = (ROOT / "docs" / "observability.md").read_text()
    table = text[text.index("| Event | Level | When |") : text.index("## Health endpoints")]
    documented = set(re.findall(r"`([a-z_]+)`", "\n".join(
        line.split("|")[1] for line in table.splitlines()[2:] if line.startswith("|")
    )))  # fmt: skip
    assert documented == set(events.ALL)
