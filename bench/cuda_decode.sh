#!/usr/bin/env bash
# GPU decode benchmark (issue 6; results go to docs/PERFORMANCE.md "GPU"): the OLMoE-1B-7B
# shape with random bf16 weights generated on the device (no checkpoint needed), one process,
# one GPU:
#   - decode step time at batch 1, 32 and 256, as a ratio to memory bandwidth: the bytes the
#     step must read (dense weights + every distinct expert chosen + the KV history, as
#     `roe bench` counts them) per second, over the (read + written) bytes per second of a
#     device-to-device copy measured in the same run (--copy-bytes);
#   - RoE K=8 (tau 0.5) at batch 1 as a ratio to K=1;
#   - the NCCL transport at one rank against a plain device copy (build/bench/nccl_alltoall).
# Usage: bench/cuda_decode.sh [BUILD_DIR] [OUT_DIR]; prints one summary JSON object last.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-${OUT:-/tmp}/cuda_bench}
mkdir -p "$out"
roe=$build/roe
GEN=${GEN:-32}
PROMPT=${PROMPT:-128}
COPY=${COPY:-2e9}

field() { grep "\"$2\"" "$1" | head -1 | sed -e 's/^[^:]*:[[:space:]]*//' -e 's/,$//'; }
# what to benchmark: the GPU with random OLMoE-1B-7B weights; BENCH_ARGS="--backend cpu --model
# models/olmoe-tiny" dry-runs this script on a CPU machine
read -r -a what <<<"${BENCH_ARGS:---backend cuda --random-model olmoe-1b7b}"

run() { # NAME ARGS...
    local name=$1
    shift
    echo "== roe bench $* (-> $out/$name.json)" >&2
    "$roe" bench "${what[@]}" --prompt-len "$PROMPT" --gen-len "$GEN" \
        --copy-bytes "$COPY" --json "$@" >"$out/$name.json"
}

run b1 --batch 1
run b32 --batch 32
run b256 --batch 256
run b1_k8 --batch 1 --roe-k 8 --roe-tau 0.5
"$build/bench/nccl_alltoall" --reps 20 >"$out/nccl.jsonl" || echo "nccl_alltoall failed or skipped (exit $?)" >&2

{
    echo "{"
    for b in b1 b32 b256; do
        echo "  \"$b\": {\"decode_step_mean_s\": $(field "$out/$b.json" decode_step_mean_s), \"bytes_per_step\": $(field "$out/$b.json" bytes_per_step), \"achieved_read_gbs\": $(field "$out/$b.json" achieved_read_gbs), \"copy_gbs\": $(field "$out/$b.json" copy_gbs), \"bandwidth_ratio\": $(field "$out/$b.json" bandwidth_ratio)},"
    done
    k1=$(field "$out/b1.json" decode_step_mean_s)
    k8=$(field "$out/b1_k8.json" decode_step_mean_s)
    echo "  \"roe_k8_over_k1_batch1\": $(awk -v a="$k8" -v b="$k1" 'BEGIN { printf "%.3f", a / b }'),"
    echo "  \"roe_k8_rows_computed_per_step\": $(field "$out/b1_k8.json" rows_computed_per_step),"
    echo "  \"nccl_1rank\": ["
    { grep '^{' "$out/nccl.jsonl" 2>/dev/null || true; } | sed -e 's/^/    /' -e '$!s/$/,/'
    echo "  ],"
    echo "  \"backend\": $(field "$out/b1.json" backend)"
    echo "}"
} | tee "$out/summary.json"
