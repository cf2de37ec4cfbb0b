#!/usr/bin/env bash
# GPU against CPU, end to end (`roe generate --backend cuda` vs `--backend cpu`), on every
# transformers fixture (the FP8 and MXFP4 ones included: kernels/cuda/matmul_block.cu) and the
# bundled model:
#   - greedy tokens identical, and the scores of every generated token (--logits-out) within a
#     normalised error max|gpu - cpu| / max|cpu| <= TOL (default 3e-2: the GPU rounds
#     activations to bf16 before each cuBLAS matmul, fp32 elsewhere; kernels/cuda/matmul.cu);
#   - RoE K=4 (tau 0.5, Gumbel routing in every MoE layer): the same, which also means the same
#     expert choices as the CPU for the same seed (different choices move the scores far more
#     than TOL; the router kernel's choices are checked bit for bit in test_cuda_ops);
#   - RoE with tau = 0 gives the plain model's scores bit for bit on the GPU;
#   - the same seed twice on the GPU gives bit-identical scores.
# Usage: e2e_cuda.sh ROE CMP_LOGITS. ROE_CUDA_WRAP prefixes the GPU runs (tools/gpu_check.sh:
# "compute-sanitizer --tool memcheck --error-exitcode 9"); ROE_CUDA_TOL overrides TOL;
# ROE_CUDA_E2E_MODELS (space-separated directories) replaces the list of models.
# Without a CUDA device (or CUDA in the build): "skipped: ..." and exit 77.
. "$(dirname "$0")/../e2e/lib.bash"
CMP=${2:?usage: $0 ROE CMP_LOGITS}
TOL=${ROE_CUDA_TOL:-3e-2}
read -r -a WRAP <<<"${ROE_CUDA_WRAP:-}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

probe=$("$ROE" generate --backend cuda --model tests/fixtures/olmoe/model --prompt-ids 1,2 --max-tokens 1 2>&1 >/dev/null)
case "$probe" in
    *"no CUDA device"* | *"built without CUDA"*) echo "skipped: no CUDA device ($(echo "$probe" | head -1))"; exit 77 ;;
esac

read -r -a models <<<"${ROE_CUDA_E2E_MODELS:-tests/fixtures/olmoe/model tests/fixtures/mixtral/model tests/fixtures/qwen3_moe/model models/olmoe-tiny tests/fixtures/qwen2_moe/model tests/fixtures/glm4_moe/model tests/fixtures/gpt_oss/model tests/fixtures/deepseek_v3/model tests/fixtures/deepseek_v3_b/model tests/fixtures/deepseek_v3_fp8/model tests/fixtures/glm4_moe_fp8/model tests/fixtures/gpt_oss_mx/model tests/fixtures/gpt_oss_mx_b/model}"
prompts=(--prompt-ids 1,2,3,4,5,6 --prompt-ids 9,8,7 --prompt-ids 42)

# gen BACKEND OUT ARGS...: roe generate, stdout to OUT, scores to OUT.f32, stderr to OUT.err
gen() {
    local backend=$1 out=$2
    shift 2
    local pre=()
    [ "$backend" = cuda ] && pre=("${WRAP[@]}")
    timeout 300 "${pre[@]}" "$ROE" generate --backend "$backend" "$@" --logits-out "$out.f32" >"$out" 2>"$out.err"
}

# close NAME CPU_OUT GPU_OUT: tokens identical, scores within TOL
close() {
    if ! diff -q "$2" "$3" >/dev/null; then
        fail "$1: greedy tokens differ: $(diff "$2" "$3" | head -4 | tr '\n' ' ')"
        return
    fi
    local r
    if r=$("$CMP" "$3.f32" "$2.f32" "$TOL"); then pass "$1: same tokens, $r"; else fail "$1: $r"; fi
}

for m in "${models[@]}"; do
    name=$(basename "$(dirname "$m")")/$(basename "$m")
    base=(--model "$m" "${prompts[@]}" --max-tokens 12 --ignore-eos --seed 7)
    roe=(--roe-k 4 --roe-tau 0.5 --roe-keep-clean 0)
    gen cpu "$tmp/c" "${base[@]}" || { fail "$name: cpu run: $(tail -2 "$tmp/c.err")"; continue; }
    if ! gen cuda "$tmp/g" "${base[@]}"; then fail "$name: cuda run: $(tail -3 "$tmp/g.err")"; continue; fi
    close "$name plain" "$tmp/c" "$tmp/g"
    gen cpu "$tmp/cr" "${base[@]}" "${roe[@]}" || { fail "$name: cpu RoE run: $(tail -2 "$tmp/cr.err")"; continue; }
    gen cuda "$tmp/gr" "${base[@]}" "${roe[@]}" || { fail "$name: cuda RoE run: $(tail -3 "$tmp/gr.err")"; continue; }
    close "$name RoE K=4 tau 0.5" "$tmp/cr" "$tmp/gr"
    gen cuda "$tmp/gr2" "${base[@]}" "${roe[@]}" || fail "$name: cuda RoE rerun: $(tail -3 "$tmp/gr2.err")"
    if cmp -s "$tmp/gr.f32" "$tmp/gr2.f32"; then pass "$name: RoE on the GPU is deterministic"; else
        fail "$name: the same seed gave other scores on the GPU"; fi
    gen cuda "$tmp/g0" "${base[@]}" --roe-k 4 --roe-tau 0 || fail "$name: cuda tau 0: $(tail -3 "$tmp/g0.err")"
    if cmp -s "$tmp/g.f32" "$tmp/g0.f32" && diff -q "$tmp/g" "$tmp/g0" >/dev/null; then
        pass "$name: RoE tau 0 = plain on the GPU (bit for bit)"; else fail "$name: RoE tau 0 differs from plain on the GPU"; fi
done
finish
