#!/usr/bin/env bash
# bench/kv_paged.sh at the acceptance sizes (issue 20, docs/KV.md): 32 concurrent clients
# sharing a 1,000-token system prompt (TTFT of the requests after the first <= 0.2x the first's),
# the number of concurrent 2,048-token conversations in a fixed KV memory against the former
# allocation, and bf16 against f32 KV decode near the whole context. The bundled model's context
# (1,024) is too short, so this makes a small random OLMoE-shaped checkpoint with a 4,096-position
# context in .data/ (git-ignored; 0.16 GB, about 2 s) unless it is there:
#
#   tools/make_random_checkpoint.py --out .data/olmoe-kv4k --layers 4 --experts 16 --top-k 4 \
#       --hidden 512 --intermediate 256 --heads 8 --kv-heads 8 --vocab 50304 --max-position-embeddings 4096
#
# (OLMoE's layout and vocabulary, 4 layers of 8 heads of 64, 16 experts of 256, top-4: 8 KiB of
# bf16 KV per token, so a 2k conversation holds 16 MiB and the whole context 32 MiB).
#
#   bench/kv_paged_full.sh [BUILD_DIR] [KV_MEMORY] [THREADS]     (defaults: build 256M 0)
set -euo pipefail
build=${1:-build}
kvmem=${2:-256M}
threads=${3:-0}
model=.data/olmoe-kv4k
python=${PYTHON:-.venv/bin/python}
if [ ! -f $model/model.safetensors.index.json ]; then
    "$python" tools/make_random_checkpoint.py --out $model --layers 4 --experts 16 --top-k 4 --hidden 512 \
        --intermediate 256 --heads 8 --kv-heads 8 --vocab 50304 --max-position-embeddings 4096
fi
exec bash bench/kv_paged.sh $model "$build" 1000 32 2048 "$kvmem" 8 "$threads"
