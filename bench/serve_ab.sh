#!/usr/bin/env bash
# Two roe builds' `roe serve` side by side under bench/serve_load, rep by rep (A B, B A, ...: the
# machine's slow spells hit both, and neither always runs first): each rep starts a fresh server of each build, sends the same
# load, and reads serve_load's JSON. Prints, per load, the medians over the reps of output
# tokens/s, TTFT, TPOT and the server's CPU time per output token (user + system, from
# /proc/PID/stat: unlike the wall-clock figures, barely moved by other processes on a shared
# machine) for each build, then every rep. For a change's before/after (docs/PERFORMANCE.md
# "Serving").
#
#   R=3 bench/serve_ab.sh OLD_ROE NEW_ROE "SERVE_LOAD FLAGS" ["SERVE_LOAD FLAGS" ...]
#   e.g. bench/serve_ab.sh /tmp/roe-before build/roe "--num-prompts 128 --max-concurrency 16"
# The model is MODEL (models/olmoe-tiny), the engine threads THREADS (0), the load generator
# this tree's build/bench/serve_load (LOAD).
set -euo pipefail
old=${1:?usage: bench/serve_ab.sh OLD_ROE NEW_ROE FLAGS...}
new=${2:?usage: bench/serve_ab.sh OLD_ROE NEW_ROE FLAGS...}
shift 2
R=${R:-3}
MODEL=${MODEL:-models/olmoe-tiny}
THREADS=${THREADS:-0}
LOAD=${LOAD:-build/bench/serve_load}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
g() { grep -o "\"$1\": [^,}]*" "$2" | sed 's/.*: //'; }
cpu_s() { awk '{print ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }
run() { # BIN FLAGS: "output_tok_s median_ttft_ms median_tpot_ms failed cpu_ms_per_token"
    rm -f "$tmp/port"
    "$1" serve --model "$MODEL" --port 0 --port-file "$tmp/port" --threads "$THREADS" --max-seqs 16 \
        >"$tmp/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do [ -s "$tmp/port" ] && break; sleep 0.1; done
    # shellcheck disable=SC2086
    local c0 c1
    c0=$(cpu_s $pid)
    "$LOAD" --port "$(cat "$tmp/port")" --model "$(basename "$MODEL")" $2 --json "$tmp/r.json" >/dev/null 2>&1 || true
    c1=$(cpu_s $pid)
    kill -TERM $pid
    wait $pid || true
    pid=
    echo "$(g output_throughput "$tmp/r.json") $(g median_ttft_ms "$tmp/r.json") $(g median_tpot_ms "$tmp/r.json") $(g failed "$tmp/r.json")" \
        "$(awk -v a="$c0" -v b="$c1" -v n="$(g total_output_tokens "$tmp/r.json")" 'BEGIN { print (n > 0 ? (b - a) * 1e3 / n : 0) }')"
}
med() { sort -g -k"$2" "$1" | awk -v c="$2" '{a[NR]=$c} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
for flags in "$@"; do
    : >"$tmp/a"
    : >"$tmp/b"
    for rep in $(seq "$R"); do # A B, then B A: neither build always goes first
        if [ $((rep % 2)) = 1 ]; then
            run "$old" "$flags" >>"$tmp/a"
            run "$new" "$flags" >>"$tmp/b"
        else
            run "$new" "$flags" >>"$tmp/b"
            run "$old" "$flags" >>"$tmp/a"
        fi
    done
    printf '%s | output tok/s %.1f -> %.1f | TTFT median %.1f -> %.1f ms | TPOT median %.2f -> %.2f ms | server CPU %.3f -> %.3f ms/token | failed %d, %d\n' \
        "$flags" "$(med "$tmp/a" 1)" "$(med "$tmp/b" 1)" "$(med "$tmp/a" 2)" "$(med "$tmp/b" 2)" \
        "$(med "$tmp/a" 3)" "$(med "$tmp/b" 3)" "$(med "$tmp/a" 5)" "$(med "$tmp/b" 5)" \
        "$(awk '{s += $4} END {print s}' "$tmp/a")" "$(awk '{s += $4} END {print s}' "$tmp/b")"
    paste "$tmp/a" "$tmp/b" | awk '{ printf "  rep: %.1f -> %.1f tok/s, TTFT %.1f -> %.1f ms, TPOT %.2f -> %.2f ms, CPU %.3f -> %.3f ms/token\n", $1, $6, $2, $7, $3, $8, $5, $10 }'
done
