#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   1. a release build, the static checks (tools/lint.sh: cppcheck, the layers' include
#      direction, function length), and every ctest test (unit, golden, end-to-end, mpi, faults);
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build running the tests of label
#      sanitize (unit, end-to-end, and the 2-rank communicator, server and server-fault tests),
#      LeakSanitizer on;
#   3. the short fuzz run (label fuzz, tools/fuzz.sh): each libFuzzer target replays its
#      regression inputs, then fuzzes for ROE_FUZZ_SECONDS (20) from its seed corpus.
# docs/RELIABILITY.md says what each covers and how to run the long versions.
# Usage: tools/test.sh            (from anywhere; builds in build/, build-asan/, build-fuzz/)
#        ROE_TEST_SKIP_ASAN=1 ROE_TEST_SKIP_FUZZ=1 tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
ROE_JOBS=$jobs tools/lint.sh
ctest --test-dir build --output-on-failure -j "$jobs"
if [ "${ROE_TEST_SKIP_ASAN:-0}" != 1 ]; then
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DROE_SANITIZE=ON -DROE_WITH_CUDA=OFF >/dev/null
    cmake --build build-asan -j "$jobs"
    # leak checking is on (the tests' environment sets it): every test must free what it allocates
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -L sanitize
fi
if [ "${ROE_TEST_SKIP_FUZZ:-0}" != 1 ]; then
    ROE_JOBS=$jobs tools/fuzz.sh
fi
