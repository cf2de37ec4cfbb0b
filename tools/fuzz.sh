#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan, coverage-instrumented
# libraries) in build-fuzz/ and runs them: each replays its regression inputs, then fuzzes.
# Usage: tools/fuzz.sh                 every target for ROE_FUZZ_SECONDS (20) each, via ctest -L fuzz
#        tools/fuzz.sh 1800 config     one target (or several) for 30 minutes each, corpus and
#                                      crashes kept in $ROE_FUZZ_WORK (default build-fuzz/work)
# Targets: safetensors config tokenizer_load tokenizer_text control openai.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${ROE_JOBS:-$(nproc)}
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DROE_SANITIZE=ON \
    -DROE_FUZZ=ON -DROE_WITH_MPI=OFF -DROE_WITH_CUDA=OFF -DROE_FUZZ_SECONDS="${ROE_FUZZ_SECONDS:-20}" >/dev/null
targets=()
for src in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
cmake --build build-fuzz -j "$jobs" --target "${targets[@]}"
if [ $# -eq 0 ]; then
    exec ctest --test-dir build-fuzz --output-on-failure -j "$jobs" -L fuzz
fi
secs=$1
shift
export ROE_FUZZ_WORK=${ROE_FUZZ_WORK:-$PWD/build-fuzz/work}
for name in "$@"; do
    tests/fuzz/run.sh "build-fuzz/tests/fuzz/fuzz_$name" "$name" "$secs"
done
