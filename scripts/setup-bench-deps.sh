#!/usr/bin/env bash
# Installs the pinned npm packages of the benchmarks' load generator (bench/load: ws, bufferutil).
#
# Idempotent: silent when node_modules matches package-lock.json; else runs `npm ci` there from
# the npm registry npm is configured with. Python dependencies are the Makefile's job.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
load_dir="$repo/bench/load"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

fail() {
    echo "setup-bench-deps: $*" >&2
    if [ -s "$log" ]; then
        echo "--- last output ---" >&2
        tail -n 40 "$log" >&2
    fi
    exit 1
}

command -v node >/dev/null 2>&1 || fail "node is not on PATH; the load generator needs Node 20 or newer"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || fail "node $(node --version) found; the load generator needs Node 20 or newer"
command -v npm >/dev/null 2>&1 || fail "npm is not on PATH"

stamp="$load_dir/node_modules/.package-lock.sha256"
want_hash="$(sha256sum "$load_dir/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_hash" ]; then
    (cd "$load_dir" && npm ci --no-audit --no-fund --loglevel=error) >>"$log" 2>&1 \
        || fail "npm ci in bench/load failed"
    echo "$want_hash" >"$stamp"
fi
