#!/usr/bin/env bash
# Installs the system parts the test suite runs against (Debian, as root) and the pinned npm client.
#
# Idempotent: silent when everything is present. Installs redis-server, chromium, haproxy,
# prometheus, coturn and janus from Debian's packages when missing (apt-get update only then), without starting
# their services, and runs `npm ci` in tests/js when node_modules is missing or older than
# package-lock.json. Python dev dependencies are the Makefile's job.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
js_dir="$repo/tests/js"
log="$(mktemp)"
policy_created=0

cleanup() {
    if [ "$policy_created" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    rm -f "$log"
}
trap cleanup EXIT

fail() {
    echo "setup-test-deps: $*" >&2
    if [ -s "$log" ]; then
        echo "--- last output ---" >&2
        tail -n 40 "$log" >&2
    fi
    exit 1
}

# pkg:probe pairs; a probe starting with / is a file that must be executable, else a command name.
wanted=(
    "redis-server:redis-server"
    "chromium:/usr/bin/chromium"
    "haproxy:haproxy"
    "prometheus:prometheus"
    "coturn:turnserver"
    "postgresql:/usr/lib/postgresql/15/bin/initdb"
    "janus:janus"
)

missing=()
for pair in "${wanted[@]}"; do
    pkg="${pair%%:*}"
    probe="${pair#*:}"
    if [[ "$probe" == /* ]]; then
        [ -x "$probe" ] && continue
    else
        command -v "$probe" >/dev/null 2>&1 && continue
    fi
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        continue
    fi
    missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        fail "missing ${missing[*]}; run this script as root (sudo $0) to install them"
    fi
    command -v apt-get >/dev/null 2>&1 || fail "missing ${missing[*]} and apt-get is not available"
    # Tests start their own instances on free ports; keep the packaged services from starting.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_created=1
    fi
    apt-get update -qq >>"$log" 2>&1 || fail "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >>"$log" 2>&1 || fail "apt-get install ${missing[*]} failed"
    [ -x /usr/bin/chromium ] || [[ " ${missing[*]} " != *" chromium "* ]] \
        || fail "chromium installed but /usr/bin/chromium is missing"
fi

"$repo/scripts/npm-ci.sh" "$js_dir"
