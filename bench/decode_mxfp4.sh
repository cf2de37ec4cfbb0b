#!/usr/bin/env bash
# gpt-oss with MXFP4 experts at batch 1 (issue 16's benchmark; docs/PERFORMANCE.md, "MXFP4"):
#  1. writes a random gpt-oss-20b-shaped MXFP4 checkpoint into OUT_DIR unless it has one already
#     (tools/make_random_checkpoint.py --preset gpt-oss-20b --mxfp4: 24 layers, 32 experts of 2880,
#     top-4, ~12 GB; extra arguments go to it, e.g. --layers 2 --experts 8 for a small check);
#  2. runs bench/decode_families.sh on it: tokens/s, bytes per decode step, the ratio of the
#     step's read rate to bench/membw, KV bytes per token (R reps, THREADS threads);
#  3. the expert matmul alone (bench/matmul, 2880 x 2880 as gpt-oss-20b's, one thread): MXFP4's
#     weight read rate next to bf16's at the same shape.
#
#   bench/decode_mxfp4.sh BUILD_DIR OUT_DIR [make_random_checkpoint.py flags...]
#   e.g. bench/decode_mxfp4.sh build .data/gpt-oss-20b-mxfp4      (PYTHON: one with numpy; default .venv/bin/python)
# The checkpoint stays in OUT_DIR (delete it when done: it is large).
set -euo pipefail
build=${1:?usage: bench/decode_mxfp4.sh BUILD_DIR OUT_DIR [make_random_checkpoint.py flags...]}
out=${2:?usage: bench/decode_mxfp4.sh BUILD_DIR OUT_DIR [make_random_checkpoint.py flags...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-$here/../.venv/bin/python}
[ -x "$py" ] || py=python3
if [ ! -f "$out/config.json" ]; then
    "$py" "$here/../tools/make_random_checkpoint.py" --preset gpt-oss-20b --mxfp4 --out "$out" "$@" >&2
fi
grep -q '"quant_method": "mxfp4"' "$out/config.json" || { echo "$out is not an MXFP4 checkpoint" >&2; exit 2; }
"$here/decode_families.sh" "$build" "$out"
for dt in mxfp4 bf16; do
    ROE_CPU_ISA=${ROE_CPU_ISA:-} "$build/bench/matmul" --dtype "$dt" --rows 2880 --cols 2880 --mats 40 --threads 1 \
        --reps 5 --json
done
