#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   1. a release build and every ctest test (unit, golden, end-to-end);
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build running the unit tests
#      (corrupt checkpoints, tokenizer, golden) and the bad-input end-to-end test.
# Usage: tools/test.sh            (from anywhere; builds in build/ and build-asan/)
#        ROE_TEST_SKIP_ASAN=1 tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"
if [ "${ROE_TEST_SKIP_ASAN:-0}" != 1 ]; then
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DROE_SANITIZE=ON -DROE_WITH_CUDA=OFF >/dev/null
    cmake --build build-asan -j "$jobs"
    # leak checking is on: every test must free what it allocates
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir build-asan --output-on-failure -j "$jobs" -L 'unit|e2e' -E 'decode_allocs'
fi
