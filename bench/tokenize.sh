#!/usr/bin/env bash
# Encode speed, one thread: roe (bench/tokenize_speed) against Hugging Face tokenizers
# (tools/bench_tokenizers.py: one encode() per string, and encode_batch with a one-thread
# Rayon pool) on the ~5,000 test strings of every family tokenizer in
# tests/data/tokenizer/families. Prints one line of JSON per family with the speed-ups.
#
#   bench/tokenize.sh [BUILD_DIR] [PYTHON]      (defaults: build, /work/venv/bin/python)
set -euo pipefail
build=${1:-build}
py=${2:-/work/venv/bin/python}
dir=tests/data/tokenizer/families
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gzip -dc "$dir/strings.jsonl.gz" > "$tmp/strings.jsonl"
for f in gpt2 neox llama3 qwen2 o200k deepseek_v3 llama2 llama2_metaspace wordbound; do
    roe=$("$build/bench/tokenize_speed" "$dir/$f/tokenizer.json" "$tmp/strings.jsonl" 2>/dev/null)
    hf=$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$py" tools/bench_tokenizers.py "$dir/$f/tokenizer.json" "$tmp/strings.jsonl")
    r=$(echo "$roe" | grep -o '"mb_per_s": [0-9.]*' | grep -o '[0-9.]*$')
    e=$(echo "$hf" | grep -o '"mb_per_s_encode": [0-9.]*' | grep -o '[0-9.]*$')
    b=$(echo "$hf" | grep -o '"mb_per_s_batch": [0-9.]*' | grep -o '[0-9.]*$')
    awk -v f="$f" -v r="$r" -v e="$e" -v b="$b" 'BEGIN {
        printf "{\"family\": \"%s\", \"roe_mb_s\": %.2f, \"tokenizers_encode_mb_s\": %.2f, \"tokenizers_batch1_mb_s\": %.2f, \"x_vs_encode\": %.1f, \"x_vs_batch\": %.1f}\n", f, r, e, b, r / e, r / b }'
done
