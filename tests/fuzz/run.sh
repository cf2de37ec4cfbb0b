#!/usr/bin/env bash
# One fuzz target, as ctest runs it (label fuzz) and as tools/fuzz.sh runs it for longer:
#   1. replays every input of tests/fuzz/regressions/<name>/ (each once crashed, hung or
#      leaked; each must now pass);
#   2. fuzzes for SECONDS from the seed corpus tests/fuzz/corpus/<name>/, new inputs going
#      to a scratch directory ($ROE_FUZZ_WORK/<name>, default a temporary one) so the tree
#      is never written. A crash leaves its input in the scratch directory and fails.
# Usage: tests/fuzz/run.sh BINARY NAME SECONDS [extra libFuzzer flags...]
set -euo pipefail
bin=$1 name=$2 secs=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
corpus=$here/corpus/$name
regress=$here/regressions/$name
[ -d "$corpus" ] || { echo "fuzz $name: no seed corpus at $corpus"; exit 1; }
work=${ROE_FUZZ_WORK:-}
if [ -z "$work" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/$name/corpus" "$work/$name/crashes"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
    n=$(find "$regress" -type f | wc -l)
    echo "fuzz $name: replaying $n regression input(s)"
    find "$regress" -type f -print0 | xargs -0 "$bin" -runs=1 >"$work/$name/replay.log" 2>&1 ||
        { tail -40 "$work/$name/replay.log"; echo "fuzz $name: a regression input fails again"; exit 1; }
fi
echo "fuzz $name: ${secs}s from $(find "$corpus" -type f | wc -l) seed(s)"
# -timeout: an input taking over 30 s is a hang (generous: a loaded CI machine stalls); -rss_limit_mb: one over 2 GiB a bug
"$bin" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$work/$name/crashes/" "$@" "$work/$name/corpus" "$corpus" \
    >"$work/$name/fuzz.log" 2>&1 || {
    tail -60 "$work/$name/fuzz.log"
    echo "fuzz $name: FAILED; the input is in $work/$name/crashes/ (add it to $regress)"
    trap - EXIT
    exit 1
}
grep -E '^stat::(number_of_executed_units|new_units_added)|^Done ' "$work/$name/fuzz.log" || true
