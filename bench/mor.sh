#!/usr/bin/env bash
# Mixture-of-Recursions decode throughput and KV bytes per token (issue 21, docs/KV.md "MoR",
# docs/MODELS.md "roe's engine for MoR"), one markdown row per (model, mode, batch):
#
#   MoR, continuous depth-wise batching       roe bench --mor-batching depth
#   MoR, plain steps (a recursion at a time)  roe bench --mor-batching step
#   MoR, every token at full depth            ... --mor-full-depth (both loops)
#   vanilla llama of the same unrolled depth  roe bench --mor-batching step
#
# at batch 1, 8 and 32 (greedy, PROMPT prompt tokens, GEN tokens per sequence timed), best of REPS
# runs, the modes interleaved; plus each run's mean depth and KV bytes per token held (blocks)
# against vanilla's.
#
#   bench/mor.sh [MOR_DIR] [LLAMA_DIR] [BUILD_DIR] [PROMPT] [GEN] [REPS] [THREADS]
#
# Defaults: models/mor-tiny and models/llama-tiny when they hold weights; otherwise random
# checkpoints of the spec's shape (V 4096, d 256, I 512, 8 unrolled layers, N_r 3, 4 query / 2 KV
# heads of 64; expert choice, recursion-wise; routers drawn so that depths are mixed), written by
# tools/mor/mor_ref.py's save_checkpoint into bench/out/mor/ (the script says which it used).
set -euo pipefail
mor=${1:-models/mor-tiny}
llama=${2:-models/llama-tiny}
build=${3:-build}
prompt=${4:-64}
gen=${5:-64}
reps=${6:-3}
threads=${7:-0}
out=bench/out/mor
mkdir -p "$out"
roe=$build/roe
py=${PYTHON:-/work/venv/bin/python}

have_weights() { [ -f "$1/model.safetensors" ] || [ -f "$1/model.safetensors.index.json" ]; }
if ! have_weights "$mor" || ! have_weights "$llama"; then
    echo "note: $mor or $llama has no weights: random checkpoints of the spec's shape in $out/"
    "$py" - "$out" <<'EOF'
import sys, torch
sys.path.insert(0, "tools/mor")
import mor_ref as M
out = sys.argv[1]
torch.manual_seed(21)
base = {"vocab_size": 4096, "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 8,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "max_position_embeddings": 1024, "tie_word_embeddings": True,
        "hidden_act": "silu", "bos_token_id": 0, "eos_token_id": 0}
mor = dict(base, model_type="mor_llama", architectures=["MoRLlamaForCausalLM"],
           mor={"num_recursion": 3, "sharing": "middle_cycle", "router_type": "expert_choice",
                "router_func": "sigmoid", "alpha": 0.1, "capacity": [1.0, 0.6667, 0.3333], "threshold": 0.5,
                "kv_mode": "recursion_wise"})
llama = dict(base, model_type="llama", architectures=["LlamaForCausalLM"])
for name, cfg in (("mor-random", mor), ("llama-random", llama)):
    c = M.MoRConfig(cfg)
    W = {}
    for k, s in M.expected_shapes(c).items():
        if k.endswith("norm.weight"):
            W[k] = torch.ones(s)
        elif "mor_router" in k:  # sigmoid(w . h) around 1/2 so that depths mix
            W[k] = torch.randn(s) * 0.3 / s[-1] ** 0.5
        else:
            W[k] = torch.randn(s) / s[-1] ** 0.5
    M.save_checkpoint(f"{out}/{name}", cfg, W, dtype=torch.bfloat16)
EOF
    mor=$out/mor-random
    llama=$out/llama-random
fi
echo "models: $mor, $llama; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$roe" inspect --model "$mor" | grep -E "recursions|mor kv"

# run MODEL BATCH ARGS...: the best decode tokens/s of REPS runs, and the last run's JSON
run() {
    local model=$1 batch=$2
    shift 2
    local best=0 j
    for _ in $(seq "$reps"); do
        j=$("$roe" bench --model "$model" --batch "$batch" --prompt-len "$prompt" --gen-len "$gen" \
            --threads "$threads" --json "$@")
        best=$(echo "$j" | jq --argjson b "$best" '[.decode_tokens_per_s, $b] | max')
    done
    echo "$j" | jq -c --argjson best "$best" '. + {best_tokens_per_s: $best}'
}

echo "| model | mode | batch | decode tokens/s (best of $reps) | vs vanilla | mean depth | KV B/token held | in entries | vanilla |"
echo "|---|---|---|---|---|---|---|---|---|"
for b in 1 8 32; do
    v=$(run "$llama" "$b" --mor-batching step)
    vt=$(echo "$v" | jq .best_tokens_per_s)
    row() { # row NAME JSON
        echo "$2" | jq -r --arg n "$1" --argjson vt "$vt" \
            '"| \(.model_type) | \($n) | \(.batch) | \(.best_tokens_per_s | floor) | \(.best_tokens_per_s / $vt * 100 | round / 100)x | \(.mean_depth * 100 | round / 100) | \(.kv_bytes_per_token_held | round) | \(.kv_bytes_per_token_entries | round) | \(.kv_bytes_per_token_vanilla | round) |"'
    }
    row "vanilla, plain steps" "$v"
    row "depth-wise batching" "$(run "$mor" "$b" --mor-batching depth)"
    row "plain steps" "$(run "$mor" "$b" --mor-batching step)"
    row "depth-wise batching, full depth" "$(run "$mor" "$b" --mor-batching depth --mor-full-depth)"
    row "plain steps, full depth" "$(run "$mor" "$b" --mor-batching step --mor-full-depth)"
done | tee "$out/table.md"
