#!/usr/bin/env bash
# Decode tokens/s at batch 1 on a model, against this machine's memory read bandwidth
# measured in the same run (PERFORMANCE-GOALS.md: a decode step reads the dense weights
# it touches + every distinct expert chosen + the KV history; floor = bytes / bandwidth).
#
#   bench/decode_bandwidth.sh [MODEL_DIR] [BUILD_DIR] [GEN_LEN]
#   default model: .data/olmoe-1b7b-random (tools/make_random_checkpoint.py --out it)
#
# Prints one JSON object per thread count with the ratio
#   (bytes one decode step must read / step time) / read bandwidth (same thread count).
set -euo pipefail
model=${1:-.data/olmoe-1b7b-random}
build=${2:-build}
gen=${3:-32}
[ -d "$model" ] || { echo "no model at $model: run .venv/bin/python tools/make_random_checkpoint.py --out $model" >&2; exit 2; }
bw=$("$build/bench/membw" --json --mb 2048 --passes 5)
echo "membw: $bw"
for threads in 1 2; do
    out=$("$build/roe" bench --model "$model" --batch 1 --prompt-len 16 --gen-len "$gen" --threads "$threads" --json)
    step=$(echo "$out" | grep '"decode_step_mean_s"' | grep -o '[0-9.e-]*,' | tr -d ,)
    bytes=$(echo "$out" | grep '"bytes_per_step"' | grep -o '[0-9.e+-]*,' | tr -d ,)
    tps=$(echo "$out" | grep '"decode_tokens_per_s"' | grep -o '[0-9.e+-]*,' | tr -d ,)
    if [ "$threads" = 1 ]; then key=read_gbs_1_thread; else key=read_gbs_all_threads; fi
    gbs=$(echo "$bw" | grep -o "\"$key\": [0-9.]*" | grep -o '[0-9.]*$')
    awk -v s="$step" -v b="$bytes" -v g="$gbs" -v t="$threads" -v tps="$tps" 'BEGIN {
        a = b / s / 1e9;
        printf "{\"threads\": %d, \"decode_tokens_per_s\": %.3f, \"step_ms\": %.2f, \"bytes_per_step_mb\": %.1f, \"achieved_gbs\": %.2f, \"membw_gbs\": %.2f, \"ratio\": %.3f}\n", t, tps, s * 1e3, b / 1e6, a, g, a / g }'
done
