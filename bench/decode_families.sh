#!/usr/bin/env bash
# Decode at batch 1 on several models, rep by rep with the memory read bandwidth (bench/membw) in
# between, so that a loaded machine's slow spells hit every model alike (docs/PERFORMANCE.md,
# "The newer families"). For each model: the bytes one decode step reads (roe bench's
# bytes_per_step: dense weights but one embedding row, the distinct experts chosen, the KV rows
# read), the median and the best step over the reps, and the ratio of the best step's read rate
# to the best bandwidth measured (the floor of a step is bytes / bandwidth; ratio_median: the median
# step's against the median bandwidth), and the KV cache per token (DeepSeek-V3's compressed
# latent next to what full K and V would cost).
#
#   R=3 THREADS=1 bench/decode_families.sh BUILD_DIR MODEL_DIR...
#   e.g. bench/decode_families.sh build .data/gpt-oss-20b-2l .data/olmoe-4l
# (tools/make_random_checkpoint.py --preset gpt-oss-20b --layers 2 --out .data/gpt-oss-20b-2l)
set -euo pipefail
build=${1:?usage: bench/decode_families.sh BUILD_DIR MODEL_DIR...}
shift
R=${R:-3}
T=${THREADS:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
get() { grep "\"$1\"" | head -1 | sed 's/.*:[[:space:]]*//; s/,$//'; }
key=read_gbs_1_thread
[ "$T" = 1 ] || key=read_gbs_all_threads
for _ in $(seq "$R"); do
    "$build/bench/membw" --json --mb 2048 --passes 5 | grep -o "\"$key\": [0-9.]*" | grep -o "[0-9.]*$" >>"$tmp/bw"
    for m in "$@"; do
        out=$("$build/roe" bench --model "$m" --batch 1 --prompt-len 16 --gen-len 32 --threads "$T" --json)
        echo "$(echo "$out" | get decode_step_median_s) $(echo "$out" | get bytes_per_step)" \
            "$(echo "$out" | get kv_bytes_per_token) $(echo "$out" | get kv_bytes_per_token_full_kv)" >>"$tmp/$(basename "$m")"
    done
done
bw=$(sort -g "$tmp/bw" | tail -1)
bwmed=$(sort -g "$tmp/bw" | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
echo "{\"threads\": $T, \"reps\": $R, \"membw_gbs_best\": $bw, \"membw_gbs_median\": $bwmed, \"membw_gbs_all\": [$(paste -sd, "$tmp/bw")]}"
for m in "$@"; do
    f="$tmp/$(basename "$m")"
    sort -g -k1 "$f" | awk -v m="$m" -v bw="$bw" -v bwmed="$bwmed" '{s[NR] = $1; b = $2; kv = $3; kvf = $4} END {
        med = NR % 2 ? s[(NR + 1) / 2] : (s[NR / 2] + s[NR / 2 + 1]) / 2;
        printf "{\"model\": \"%s\", \"bytes_per_step_mb\": %.1f, \"step_ms_median\": %.1f, \"step_ms_best\": %.1f, \"tokens_per_s_best\": %.2f, \"tokens_per_s_median\": %.2f, \"achieved_gbs_best\": %.2f, \"ratio_best\": %.3f, \"ratio_median\": %.3f, \"kv_bytes_per_token\": %d, \"kv_bytes_per_token_full_kv\": %d}\n",
               m, b / 1e6, med * 1e3, s[1] * 1e3, 1 / s[1], 1 / med, b / s[1] / 1e9, b / s[1] / 1e9 / bw, b / med / 1e9 / bwmed, kv, kvf }'
done
