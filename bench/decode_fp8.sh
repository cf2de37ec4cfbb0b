#!/usr/bin/env bash
# Batch-1 decode of a DeepSeek-V3-shaped block-scaled FP8 checkpoint (issue 16's acceptance
# benchmark): tools/make_random_checkpoint.py --preset deepseek-v3 --fp8 cut to 2 layers at full
# width (hidden 7168, 1 dense + 1 MoE layer of 256 experts of 2048, top-8; about 16 GB: F8_E4M3
# linears with their F32 weight_scale_inv, bf16 embeddings, lm_head and norms), then
# bench/decode_families.sh on it: tokens/s, bytes per step, the ratio to bench/membw's read
# bandwidth, KV bytes per token (docs/PERFORMANCE.md).
#
#   bench/decode_fp8.sh BUILD_DIR CHECKPOINT_DIR [make_random_checkpoint.py flags...]
#   e.g. bench/decode_fp8.sh build .data/dsv3-fp8-2l                       # the full 16 GB shape
#        bench/decode_fp8.sh build /tmp/dsv3-fp8-s --experts 16 --vocab 4096  # a small check
# The checkpoint is written if CHECKPOINT_DIR has no config.json yet, and kept (delete it after:
# 16 GB). R (reps, default 3) and THREADS (default 1) pass to decode_families.sh; PYTHON is the
# tools' interpreter (default .venv/bin/python).
set -euo pipefail
build=${1:?usage: bench/decode_fp8.sh BUILD_DIR CHECKPOINT_DIR [make_random_checkpoint.py flags...]}
dir=${2:?usage: bench/decode_fp8.sh BUILD_DIR CHECKPOINT_DIR [make_random_checkpoint.py flags...]}
shift 2
py=${PYTHON:-.venv/bin/python}
here=$(dirname "$0")
if [ ! -f "$dir/config.json" ]; then
    "$py" "$here/../tools/make_random_checkpoint.py" --preset deepseek-v3 --fp8 --layers 2 --first-k-dense 1 \
        --out "$dir" "$@" >&2
fi
"$build/roe" inspect --model "$dir" >&2
"$here/decode_families.sh" "$build" "$dir"
