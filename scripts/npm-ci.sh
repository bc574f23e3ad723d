#!/usr/bin/env bash
# Installs the pinned npm packages of each directory given (tests/js, bench/load, ...).
#
# Idempotent: silent when a directory's node_modules matches its package-lock.json; else runs
# `npm ci` there from the npm registry npm is configured with. Needs Node 20 or newer.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

fail() {
    echo "npm-ci: $*" >&2
    if [ -s "$log" ]; then
        echo "--- last output ---" >&2
        tail -n 40 "$log" >&2
    fi
    exit 1
}

command -v node >/dev/null 2>&1 || fail "node is not on PATH; Node 20 or newer is needed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || fail "node $(node --version) found; Node 20 or newer is needed"
command -v npm >/dev/null 2>&1 || fail "npm is not on PATH"

for dir in "$@"; do
    case "$dir" in /*) ;; *) dir="$repo/$dir" ;; esac
    [ -f "$dir/package-lock.json" ] || fail "no package-lock.json in $dir"
    stamp="$dir/node_modules/.package-lock.sha256"
    want_hash="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_hash" ]; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >>"$log" 2>&1 \
            || fail "npm ci in ${dir#"$repo"/} failed"
        echo "$want_hash" >"$stamp"
    fi
done
