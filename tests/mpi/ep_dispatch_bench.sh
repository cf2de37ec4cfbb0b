#!/usr/bin/env bash
# bench/ep_dispatch (docs/PERFORMANCE.md "Expert parallelism") in each of its modes, on a
# few sizes: it checks every pair's output against its row before timing a size, and exits
# non-zero when one is wrong. Keeps the benchmark working; its figures are not tested here.
. "$(dirname "$0")/../e2e/lib.bash"
. "$(dirname "$0")/lib.bash"
B=$(dirname "$ROE")/bench/ep_dispatch
[ -x "$B" ] || { echo "skipped: $B is not built"; exit 77; }

# run NAME RANKS ARGS...: the benchmark on RANKS ranks; passes when it exits 0 and printed a
# line per size (1, 2, 4, 8 rows per rank)
run() {
    local name=$1 n=$2 out
    shift 2
    if out=$(timeout 120 "${MPIRUN[@]}" -np "$n" "$B" --max-rows 8 --budget 0.01 --hidden 256 "$@" 2>&1) &&
        [ "$(grep -cE '^( +[0-9]+ |\{)' <<<"$out")" = 4 ]; then
        pass "$name"
    else
        fail "$name: $out"
    fi
}
run "2 ranks, caches warm" 2
run "2 ranks, caches cold" 2 --cold
run "3 ranks, bf16 wire" 3 --wire bf16
run "2 ranks, layer with experts of 20 us, rank 0 late, rank 1 hot" 2 --compute 20 --skew 200 --hot 0.75
run "2 ranks, json" 2 --json --cold
case "$(timeout 60 "${MPIRUN[@]}" -np 2 "$B" --max-rows 2 --budget 0.01 --json 2>&1 | head -1)" in
    *'"caches": "warm"'*'"ratio_raw_over_ours": '*) pass "json names the cache state and the ratio" ;;
    *) fail "json line" ;;
esac
expect_fail "unknown option" "unknown option '--bogus'" "${MPIRUN[@]}" -np 2 "$B" --bogus
finish
