#!/usr/bin/env bash
# Installs the Debian packages roe needs to build and test (idempotent, no-op when present).
# Usage: tools/install-deps.sh            (the runtime and its tests)
#        tools/install-deps.sh --python   (also the Python venv for tools/: torch, transformers)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libcjson-dev libpcre2-dev libutf8proc-dev
      libopenmpi-dev openmpi-bin libprotobuf-c-dev protobuf-c-compiler libmicrohttpd-dev
      libgnutls28-dev openssl           # roe serve over HTTPS (libmicrohttpd's GnuTLS); its test's certificate
      curl jq iproute2 valgrind bc
      cppcheck                          # tools/lint.sh (with protobuf-c-compiler above)
      clang libclang-rt-dev libomp-dev) # clang + its runtimes: the libFuzzer targets (tools/fuzz.sh)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ "${1:-}" = "--python" ]; then
    here=$(cd "$(dirname "$0")/.." && pwd)
    [ -x "$here/.venv/bin/python" ] || python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install -q -r "$here/tools/requirements.txt"
fi
