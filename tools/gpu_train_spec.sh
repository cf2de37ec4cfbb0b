#!/usr/bin/env bash
# tools/gpu_train_spec.sh — issue 19's two trainings in one call of a lent GPU (docs/QUALITY.md,
# "Training on a lent GPU"): the specialising model (OLMoE, 8 layers, hidden 256, 64 experts of 32,
# top-8, tied; 15.9 M parameters, 4.86 M active) and the ~1.5x-active comparison model (hidden 320,
# 5 heads, experts of 40: 7.05 M active), side by side on the one GPU (each is far too small to
# fill it), each 10,000 steps of 8 x 256 tokens (20.5 M tokens) with the CPU recipe, capped at
# MINUTES (default 7) by --schedule time: a run that would outlast the cap ends with a full cosine
# schedule over fewer steps (its log says how many).
#
# Prepare here (CPU): the mix and its tokenizer (tools/train_bundled.py's docstring), then
#   tools/gpu_train_spec.sh --stage            # .gpu/roe-mix: token caches + tokenizer (~39 MB)
#   tools/device_slim.sh hide models tests/fixtures   # the tree + carry must stay under 64 MiB
# On the device (one call, then a second at once for the other model's files):
#   run(command="bash tools/gpu_train_spec.sh", carry=[".gpu"], timeout_s=600)
#   run(command="bash tools/gpu_train_spec.sh --second")      # within the warm machine's idle time
# and here afterwards: tools/device_slim.sh restore. A dry run on the CPU: DEVICE=cpu THREADS=1 MINUTES=1.
# $OUT gets the spec model (bf16 safetensors in shards of <= 15 MB, config, index) and both logs;
# the second call copies the comparison model's files (at most 8 files come back per call).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_train_out}
KEEP=/tmp/roe-gpu-train
if [ "${1:-}" = "--stage" ]; then
    src=.data/roe-mix
    mkdir -p .gpu/roe-mix/tok
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
    for split in train validation; do
        n=$(ls "$src"/$split.*.u16.npy 2>/dev/null | wc -l)
        [ "$n" = 1 ] || { echo "gpu_train_spec: want one $src/$split.*.u16.npy, found $n (run a CPU smoke training first: it writes them)" >&2; exit 1; }
        cp "$src"/$split.*.u16.npy .gpu/roe-mix/
    done
    cp "$src"/tok/* .gpu/roe-mix/tok/
    du -sh .gpu
    exit 0
fi
if [ "${1:-}" = "--second" ]; then
    mkdir -p "$OUT"
    cp "$KEEP"/big/* "$OUT"/
    ls -la "$OUT"
    exit 0
fi
MIN=${MINUTES:-7}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$KEEP"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
common=(--data .gpu/roe-mix --tokenizer .gpu/roe-mix/tok --device "${DEVICE:-cuda}" --threads "${THREADS:-4}" --experts 64 --topk 8
        --tie --pad-id 1 --steps 10000 --batch 8 --seq 256 --schedule time --minutes "$MIN" --ckpt-every 1000)
"$PY" tools/train_bundled.py "${common[@]}" --expert-ffn 32 --out "$OUT" --log "$OUT/spec_train_log.jsonl" \
    --ckpt "$KEEP/spec.pt" >"$KEEP/spec.out" 2>&1 &
a=$!
"$PY" tools/train_bundled.py "${common[@]}" --hidden 320 --heads 5 --expert-ffn 40 --out "$KEEP/big" \
    --log "$KEEP/big_train_log.jsonl" --ckpt "$KEEP/big.pt" >"$KEEP/big.out" 2>&1 &
b=$!
rc=0
wait $a || rc=$?
wait $b || rc=$?
tail -n 3 "$KEEP/spec.out" "$KEEP/big.out"
cp "$KEEP/big_train_log.jsonl" "$OUT"/ 2>/dev/null || true
ls -la "$OUT" "$KEEP/big" 2>/dev/null || true
exit $rc
