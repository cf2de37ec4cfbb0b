#!/usr/bin/env bash
# The engine's device path on a machine without a GPU: `--backend cpu-staged` runs the CPU
# kernels behind the device-memory contract (weights copied by mat_upload, activations and KV
# cache reached only through upload/download/copy/copy_rows, router logits downloaded, experts
# gathered by pair and combined by moe_combine; kernels/backend.h), so it must give the same
# tokens and bit-identical scores as `--backend cpu`: on the transformers fixtures (one shape of each
# newer family: shared experts, sinks, biases, YaRN, group routing, MLA's latent cache and per-head
# matmuls) and the
# bundled model, plain and RoE (fixed and adaptive K, both gates), several sequences; and, when
# mpirun is installed, on 2 and 3 ranks (the staged several-ranks path through comm/dispatch.c).
. "$(dirname "$0")/lib.bash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1

models=(tests/fixtures/olmoe/model tests/fixtures/mixtral/model tests/fixtures/qwen3_moe/model models/olmoe-tiny
        tests/fixtures/qwen2_moe/model tests/fixtures/glm4_moe/model tests/fixtures/gpt_oss/model
        tests/fixtures/deepseek_v3/model tests/fixtures/gpt_oss_mx/model)
prompts=(--prompt-ids 1,2,3,4,5,6 --prompt-ids 9,8,7 --prompt-ids 42)
configs=("--roe-k 1" "--roe-k 4 --roe-tau 0.5 --roe-keep-clean 0"
         "--roe-k 4 --roe-tau 0.8 --roe-keep-clean 0 --roe-adaptive 1.0 --roe-gate noisy")

# gen OUT [mpirun -np N] -- ARGS: roe generate; stdout OUT, scores OUT.f32
gen() {
    local out=$1
    shift
    local pre=()
    while [ "$1" != -- ]; do pre+=("$1"); shift; done
    shift
    timeout 300 "${pre[@]}" "$ROE" generate "$@" --logits-out "$out.f32" >"$out" 2>"$out.err"
}
same() { # NAME A B
    if [ ! -s "$2.f32" ]; then fail "$1: no reference scores"; return; fi
    if diff -q "$2" "$3" >/dev/null && cmp -s "$2.f32" "$3.f32"; then pass "$1"; else
        fail "$1: tokens or scores differ ($(diff "$2" "$3" | head -2 | tr '\n' ' ') $(cmp "$2.f32" "$3.f32" 2>&1 | head -1))"; fi
}

for m in "${models[@]}"; do
    name=$(basename "$(dirname "$m")")/$(basename "$m")
    for cfg in "${configs[@]}"; do
        # shellcheck disable=SC2086
        gen "$tmp/c" -- --backend cpu --model "$m" "${prompts[@]}" --max-tokens 10 --ignore-eos --seed 7 $cfg ||
            { fail "$name [$cfg] cpu: $(tail -2 "$tmp/c.err")"; continue; }
        # shellcheck disable=SC2086
        gen "$tmp/s" -- --backend cpu-staged --model "$m" "${prompts[@]}" --max-tokens 10 --ignore-eos --seed 7 $cfg ||
            { fail "$name [$cfg] cpu-staged: $(tail -2 "$tmp/s.err")"; continue; }
        same "$name [$cfg]: cpu-staged = cpu" "$tmp/c" "$tmp/s"
    done
done

if command -v mpirun >/dev/null; then
    # In the AddressSanitizer build, ranks run without LeakSanitizer: Open MPI's plugins leak
    # from modules unloaded by exit, which no suppression can name (tests/CMakeLists.txt)
    [ -n "${ASAN_OPTIONS:-}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
    MPI=(mpirun --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1)
    m=tests/fixtures/qwen3_moe/model
    cfg=(--roe-k 4 --roe-tau 0.5 --roe-keep-clean 0)
    gen "$tmp/c" -- --backend cpu --model $m "${prompts[@]}" --max-tokens 10 --ignore-eos "${cfg[@]}"
    for n in 2 3; do
        if gen "$tmp/s$n" "${MPI[@]}" -np $n -- --backend cpu-staged --model $m "${prompts[@]}" --max-tokens 10 --ignore-eos "${cfg[@]}"; then
            same "qwen3_moe RoE K=4: cpu-staged on $n ranks = cpu in one process" "$tmp/c" "$tmp/s$n"
            # gpt-oss (router bias, sinks, biased experts), GLM-4.5 (shared experts) and DeepSeek-V3
            # (MLA) across ranks too
            for f in gpt_oss glm4_moe deepseek_v3; do
                gen "$tmp/cf" -- --backend cpu --model tests/fixtures/$f/model "${prompts[@]}" --max-tokens 10 --ignore-eos "${cfg[@]}"
                gen "$tmp/sf" "${MPI[@]}" -np $n -- --backend cpu-staged --model tests/fixtures/$f/model "${prompts[@]}" \
                    --max-tokens 10 --ignore-eos "${cfg[@]}" || fail "$f cpu-staged on $n ranks: $(tail -3 "$tmp/sf.err")"
                same "$f RoE K=4: cpu-staged on $n ranks = cpu in one process" "$tmp/cf" "$tmp/sf"
            done
        else
            case "$(cat "$tmp/s$n.err")" in
                *"without MPI"* | *"MPI transport"*) echo "note: this build has no MPI transport: $n ranks not checked" ;;
                *) fail "cpu-staged on $n ranks: $(tail -3 "$tmp/s$n.err")" ;;
            esac
        fi
    done
fi
finish
