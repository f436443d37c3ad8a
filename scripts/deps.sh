#!/usr/bin/env bash
# Installs the Debian packages Matchwire needs, only when one is missing.
# apt-get as root, sudo otherwise. Quick (one dpkg query) when all are present.
# Then the JavaScript client's test dependencies (clients/js: npm ci from its
# package-lock.json) when node_modules is missing or came from another lock.
set -euo pipefail

PKGS=(
    build-essential cmake pkg-config clang llvm clang-format
    libcjson-dev libcmocka-dev libwebsockets-dev libhiredis-dev libev-dev
    libjansson-dev libssl-dev libuv1-dev
    redis-server redis-tools
    python3 python3-pytest python3-websockets python3-redis python3-jsonschema
    chromium nodejs
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing+=("$p")
    fi
done
# Debian's npm is a package of its own; a nodejs that ships npm (Node 20 here)
# conflicts with it, so it is asked for only when there is no npm command.
if ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 20 ]; then
    echo "deps: warning: clients/js needs Node 20 or later (node --version: $(node --version 2>&1))" >&2
fi
# clients/js: npm ci when node_modules is missing or was installed from
# another package-lock.json (a copy of the lock is kept as the stamp).
JS="$(dirname "$0")/../clients/js"
if [ -f "$JS/package-lock.json" ] && ! cmp -s "$JS/package-lock.json" "$JS/node_modules/.mw-lock"; then
    echo "deps: npm ci in clients/js"
    (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.mw-lock)
fi
