#!/usr/bin/env bash
# Serving benchmark: `roe serve` on one process under bench/serve_load (vllm-bench-serve style)
# at concurrency 1, 4 and 16, RoE K=1 and K=4, random token prompts; prints a markdown table
# (docs/PERFORMANCE.md "Serving") and keeps every run's JSON in bench/out/serve/. The peer
# in the same run: `roe bench`'s median decode step at the same batch, K and lengths (the
# engine alone, no HTTP, no scheduling); median TPOT / step is what serving adds per token.
#
#   bench/serve_bench.sh [MODEL_DIR] [BUILD_DIR] [PROMPTS_PER_CLIENT] [INPUT_LEN] [OUTPUT_LEN] [TAU] [THREADS]
#
# Each configuration sends PROMPTS_PER_CLIENT x concurrency requests (at least 16) to a fresh
# server (so one run's state never helps the next), as fast as `concurrency` clients allow.
set -euo pipefail
model=${1:-models/olmoe-tiny}
build=${2:-build}
per=${3:-8}
in_len=${4:-128}
out_len=${5:-128}
tau=${6:-0.5}
threads=${7:-0}
out=bench/out/serve
mkdir -p "$out"
printf '| K | concurrency | requests | req/s | output tok/s | TTFT mean / median / p99 (ms) | TPOT mean / median / p99 (ms) | ITL mean / median / p99 (ms) | failed | engine decode step (ms) | median TPOT / step |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
for k in 1 4; do
    for c in 1 4 16; do
        n=$((per * c)); [ $n -lt 16 ] && n=16
        "$build/roe" serve --model "$model" --port 0 --port-file "$out/port" --threads "$threads" --max-seqs 16 \
            >"$out/server-k$k-c$c.log" 2>&1 &
        pid=$!
        for _ in $(seq 1 300); do [ -s "$out/port" ] && break; sleep 0.1; done
        roe=()
        [ "$k" -gt 1 ] && roe=(--roe-k "$k" --roe-tau "$tau")
        "$build/bench/serve_load" --port "$(cat "$out/port")" --num-prompts "$n" --max-concurrency "$c" \
            --random-input-len "$in_len" --random-output-len "$out_len" "${roe[@]}" \
            --json "$out/k$k-c$c.json" >"$out/k$k-c$c.txt" 2>&1 || true
        kill -TERM $pid; wait $pid || true
        rm -f "$out/port"
        # the peer measured in the same run: the engine's own decode step at this batch (roe bench)
        "$build/roe" bench --model "$model" --batch "$c" --prompt-len "$in_len" --gen-len "$out_len" \
            --threads "$threads" --json "${roe[@]}" >"$out/bench-k$k-c$c.json" 2>/dev/null || true
        step=$(grep -o '"decode_step_median_s":[^,}]*' "$out/bench-k$k-c$c.json" | sed 's/.*:[[:space:]]*//')
        j="$out/k$k-c$c.json"
        g() { grep -o "\"$1\": [^,}]*" "$j" | sed 's/.*: //'; }
        printf '| %d | %d | %d | %.2f | %.1f | %.1f / %.1f / %.1f | %.2f / %.2f / %.2f | %.2f / %.2f / %.2f | %d | %.2f | %.2f |\n' \
            "$k" "$c" "$(g completed)" "$(g request_throughput)" "$(g output_throughput)" \
            "$(g mean_ttft_ms)" "$(g median_ttft_ms)" "$(g p99_ttft_ms)" \
            "$(g mean_tpot_ms)" "$(g median_tpot_ms)" "$(g p99_tpot_ms)" \
            "$(g mean_itl_ms)" "$(g median_itl_ms)" "$(g p99_itl_ms)" "$(g failed)" \
            "$(awk -v s="${step:-0}" 'BEGIN { print s * 1e3 }')" \
            "$(awk -v t="$(g median_tpot_ms)" -v s="${step:-0}" 'BEGIN { print (s > 0 ? t / (s * 1e3) : 0) }')"
    done
done
