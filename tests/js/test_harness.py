"""Node 20, both pinned phoenix clients and ws load from tests/js/node_modules."""

import json
import subprocess

import pytest

from tests.support.node_client import HARNESS, JS_DIR, HarnessError, check_node_setup

VERSION_PROBE = """
import { readFileSync } from "node:fs"
import WebSocket from "ws"
import * as phoenix from "phoenix"
import * as phoenix180 from "phoenix180"
const version = (name) =>
  JSON.parse(readFileSync(`./node_modules/${name}/package.json`, "utf8")).version
const names = ["Socket", "Channel", "LongPoll", "Presence"]
const exported = (m) => names.filter((k) => typeof m[k] === "function")
console.log(JSON.stringify({
  node: process.versions.node,
  phoenix: version("phoenix"), phoenix180: version("phoenix180"), ws: version("ws"),
  phoenixExports: exported(phoenix), phoenix180Exports: exported(phoenix180),
  wsIsConstructor: typeof WebSocket === "function",
  fetch: typeof globalThis.fetch,
}))
"""


@pytest.fixture(scope="module")
def node() -> str:
    try:
        return check_node_setup()
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.mark.js
def test_node_and_pinned_packages_load(node: str) -> None:
    proc = subprocess.run(
        [node, "--input-type=module", "-e", VERSION_PROBE],
        cwd=JS_DIR, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert int(info["node"].split(".")[0]) >= 20
    assert info["phoenix"] == "1.8.16"
    assert info["phoenix180"] == "1.8.0"
    assert info["ws"].startswith("8.")
    everything = ["Socket", "Channel", "LongPoll", "Presence"]
    assert info["phoenixExports"] == everything
    assert info["phoenix180Exports"] == everything
    assert info["wsIsConstructor"] is True
    # Long-poll under Node relies on fetch (phoenix.js's Ajax falls back to it without XHR).
    assert info["fetch"] == "function"


@pytest.mark.js
@pytest.mark.parametrize("phoenix", ["1.8.16", "1.8.0"])
def test_harness_reports_the_version_it_loaded(node: str, phoenix: str) -> None:
    proc = subprocess.run(
        [node, str(HARNESS), "--url", "ws://127.0.0.1:9/socket", "--phoenix", phoenix,
         "--no-connect"],
        input='{"op":"state"}\n', capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["ev"] == "ready"
    assert events[0]["phoenix"] == phoenix
    assert events[1]["ev"] == "state"
    assert events[1]["socket"] == "closed"
