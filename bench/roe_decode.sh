#!/usr/bin/env bash
# RoE decode cost: time per decode step (one token per sequence) for K in {1,4,8,16,32} at
# batch 1 and 16, as a ratio to K = 1, with the distinct (layer, expert) pairs each step
# touches and the rows computed after dedup. One thread, so steps are comparable.
#
#   bench/roe_decode.sh [MODEL_DIR] [TAU] [GEN_LEN] [BUILD_DIR]
set -euo pipefail
model=${1:-models/olmoe-tiny}
tau=${2:-0.3}
gen=${3:-32}
build=${4:-build}
printf '| batch | K | ms/step | ratio to K=1 | distinct experts/step | rows computed/step (naive) |\n|---|---|---|---|---|---|\n'
for batch in 1 16; do
    base=""
    for k in 1 4 8 16 32; do
        flags=()
        [ "$k" -gt 1 ] && flags=(--roe-k "$k" --roe-tau "$tau" --roe-keep-clean 1)
        out=$("$build/roe" bench --model "$model" --batch "$batch" --prompt-len 32 --gen-len "$gen" \
              --threads 1 --json "${flags[@]}")
        get() { echo "$out" | grep "\"$1\"" | head -1 | sed 's/.*:[[:space:]]*//; s/,$//'; }
        ms=$(awk -v s="$(get decode_step_mean_s)" 'BEGIN { printf "%.3f", s * 1e3 }')
        [ -z "$base" ] && base=$ms
        awk -v b="$batch" -v k="$k" -v ms="$ms" -v base="$base" -v e="$(get distinct_experts_per_step)" \
            -v rc="$(get rows_computed_per_step)" -v rn="$(get rows_naive_per_step)" \
            'BEGIN { printf "| %d | %d | %.3f | %.2f | %.1f | %.0f (%.0f) |\n", b, k, ms, ms / base, e, rc, rn }'
    done
done
