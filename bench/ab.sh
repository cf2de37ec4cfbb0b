#!/usr/bin/env bash
# Two roe builds side by side: `roe bench FLAGS --json` with each binary in turn, rep by rep
# (A B A B ...: the machine's slow spells hit both), then the medians of the decode step and
# of prefill tokens/s, and every rep. For a change's before/after (docs/PERFORMANCE.md).
#
#   R=5 bench/ab.sh OLD_ROE NEW_ROE "FLAGS" ["FLAGS" ...]
#   e.g. bench/ab.sh /tmp/roe-before build/roe "--model .data/olmoe-4l --batch 1 --threads 2"
set -euo pipefail
old=${1:?usage: bench/ab.sh OLD_ROE NEW_ROE FLAGS...}
new=${2:?usage: bench/ab.sh OLD_ROE NEW_ROE FLAGS...}
shift 2
R=${R:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
get() { grep "\"$1\"" | head -1 | sed 's/.*:[[:space:]]*//; s/,$//'; }
run() { # BIN FLAGS: "step_s prefill_tok_s"
    local out
    # shellcheck disable=SC2086
    out=$("$1" bench $2 --json)
    echo "$(echo "$out" | get decode_step_median_s) $(echo "$out" | get prefill_tokens_per_s)"
}
med() { sort -g -k"$2" "$1" | awk -v c="$2" '{a[NR]=$c} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
for flags in "$@"; do
    : >"$tmp/a"
    : >"$tmp/b"
    for _ in $(seq "$R"); do
        run "$old" "$flags" >>"$tmp/a"
        run "$new" "$flags" >>"$tmp/b"
    done
    awk -v f="$flags" -v sa="$(med "$tmp/a" 1)" -v pa="$(med "$tmp/a" 2)" -v sb="$(med "$tmp/b" 1)" \
        -v pb="$(med "$tmp/b" 2)" 'BEGIN { printf "%s | decode step %.3f -> %.3f ms | prefill %.1f -> %.1f tok/s\n", f, sa * 1e3, sb * 1e3, pa, pb }'
    paste "$tmp/a" "$tmp/b" | awk '{ printf "  rep: step %.3f -> %.3f ms, prefill %.1f -> %.1f\n", $1 * 1e3, $3 * 1e3, $2, $4 }'
done
