"""Every command README.md and docs/ show is real: each `.venv/bin/...` command runs as written
up to its options (`--help` after its subcommands exits 0) and knows every option it is shown
with; each `make` target exists."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGRAMS = (".venv/bin/python", ".venv/bin/gateway", ".venv/bin/gateway-loadtest")
# Words that stand for something the reader fills in: VERB, N, `…`, `<name>`.
PLACEHOLDER = re.compile(r"^([A-Z][A-Z_]*|….*|.*…|<.*>)$")


def shell_lines(text: str) -> list[str]:
    """Lines of the shell code blocks (continuations joined) and the inline code spans."""
    lines: list[str] = []
    fence: str | None = None  # the language of the block we are in
    for line in text.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("```"):
            fence = line.strip()[3:] if fence is None else None
        elif fence is None and line.startswith("    ") and line.strip().startswith(PROGRAMS):
            lines.append(line)  # an indented code block
        elif fence is None:
            lines += re.findall(r"`([^`]+)`", line)
        elif fence in ("", "sh", "bash", "shell"):
            lines.append(line)
    return lines


def commands() -> list[tuple[str, list[str]]]:
    """(where, argv) for every documented command of the repository's venv or Makefile."""
    found: dict[tuple[str, ...], str] = {}
    for doc in DOCS:
        for line in shell_lines(doc.read_text()):
            try:
                words = shlex.split(line.replace("[", " ").replace("]", " "), comments=True)
            except ValueError:
                continue
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words.pop(0)  # environment assignments before the command
            if words and (words[0] in PROGRAMS or words[0] == "make"):
                found.setdefault(tuple(words), f"{doc.relative_to(ROOT)}: {line.strip()}")
    return sorted((where, list(argv)) for argv, where in found.items())


@functools.cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))


def help_of(argv: list[str]) -> tuple[list[str], list[str]]:
    """The argv that asks for help (the program and its words before the first option), and
    the options the documented command uses."""
    program = [sys.executable if argv[0] == ".venv/bin/python" else str(ROOT / argv[0])]
    rest = argv[1:]
    if argv[0] == ".venv/bin/python":
        take = 2 if rest[:1] == ["-m"] else 1
        program += rest[:take]
        rest = rest[take:]
    for word in rest:
        if word.startswith("-") or PLACEHOLDER.match(word):
            break
        program.append(word)
    options = [w.split("=", 1)[0] for w in rest if w.startswith("--")]
    return [*program, "--help"], options


def check(where: str, argv: list[str]) -> str | None:
    if argv[0] == "make":
        missing = [t for t in argv[1:] if t not in make_targets()]
        return f"{where}: no make target {missing}" if missing else None
    asked, options = help_of(argv)
    done = subprocess.run(asked, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return f"{where}: {' '.join(asked[1:])} exited {done.returncode}: {done.stderr[-500:]}"
    unknown = [o for o in options if o not in done.stdout]
    return f"{where}: options not in its --help: {unknown}" if unknown else None


def test_the_docs_show_commands() -> None:
    programs = {argv[0] for _, argv in commands()}
    assert {".venv/bin/python", "make"} <= programs, programs


def test_every_documented_command_exists_with_the_options_shown() -> None:
    found = commands()
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = [p for p in pool.map(lambda c: check(*c), found) if p is not None]
    assert not problems, "\n".join(problems)
