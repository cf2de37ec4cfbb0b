#!/usr/bin/env bash
# Fetches, HERE (a machine with Debian packages and a network), the .deb files of roe's build
# dependencies into .gpu-deps/, for a GPU machine that has CUDA, cmake and a compiler but none
# of these libraries and no network (docs/GPU.md). tools/gpu_check.sh unpacks them there with
# dpkg -x into a private prefix (never /). Carry the folder: run(carry=[".gpu-deps"]).
# Usage: tools/gpu_deps.sh   (adds /.gpu-deps/ to git's exclude file; ~5 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
exclude="$(git rev-parse --git-common-dir)/info/exclude"
grep -qx '/.gpu-deps/' "$exclude" 2>/dev/null || echo '/.gpu-deps/' >>"$exclude"
mkdir -p .gpu-deps
cd .gpu-deps
# -dev packages and the runtime libraries they link to; protoc-c and its libraries
pkgs=(libcjson-dev libcjson1 libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2
      libprotobuf-c-dev libprotobuf-c1 protobuf-c-compiler libprotoc32 libprotobuf32
      libmicrohttpd-dev libmicrohttpd12 pkgconf pkgconf-bin libpkgconf3)
apt-get download "${pkgs[@]}"
ls -la
# libmicrohttpd's TLS stack, in case the GPU machine's image lacks it (gpu_check.sh uses these
# only where the system has no libgnutls.so.30)
mkdir -p extra
(cd extra && apt-get download libgnutls30 libnettle8 libhogweed6 libgmp10 libp11-kit0 libtasn1-6 \
    libidn2-0 libunistring2 libffi8)
