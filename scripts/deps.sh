#!/usr/bin/env bash
# Installs the Debian packages Matchwire needs, only when one is missing.
# apt-get as root, sudo otherwise. Quick (one dpkg query) when all are present.
set -euo pipefail

PKGS=(
    build-essential cmake pkg-config clang llvm clang-format
    libcjson-dev libcmocka-dev libwebsockets-dev libhiredis-dev libev-dev
    libjansson-dev libssl-dev
    redis-server redis-tools
    python3 python3-pytest python3-websockets python3-redis python3-jsonschema
    chromium
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
