#!/usr/bin/env bash
# `mpirun -np N roe generate` gives the same tokens and bit-identical logits (--logits-out)
# as one process, for N = 1..4, on every transformers fixture (qwen2_moe, glm4_moe, gpt_oss and its MXFP4 experts,
# deepseek_v3, and the FP8 block-scaled deepseek_v3_fp8, glm4_moe_fp8 and their second shapes (_b): their shared experts, dense layers and MLA attention with its latent cache replicated
# like attention, their routers on every rank alike) and the bundled model, with
# RoE K = 4 (fixed and adaptive K, both gate modes) and K = 1, several concurrent sequences,
# ranks that are home to no sequence (3 sequences on 4 ranks, 1 on 3), both home policies,
# a per-layer placement file, the bf16 wire (not f32-exact, but the same on any N), and the paged KV
# cache with small blocks (--kv-block-size 3) against the default, and pools so small that
# sequences are preempted and recomputed (--kv-memory) against one that holds them all.
. "$(dirname "$0")/../e2e/lib.bash"
. "$(dirname "$0")/lib.bash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

models=(tests/fixtures/olmoe/model tests/fixtures/mixtral/model tests/fixtures/qwen3_moe/model
        tests/fixtures/qwen2_moe/model tests/fixtures/qwen2_moe_b/model tests/fixtures/glm4_moe/model
        tests/fixtures/glm4_moe_b/model tests/fixtures/gpt_oss/model tests/fixtures/gpt_oss_b/model
        tests/fixtures/deepseek_v3/model tests/fixtures/deepseek_v3_b/model
        tests/fixtures/deepseek_v3_fp8/model tests/fixtures/glm4_moe_fp8/model
        tests/fixtures/deepseek_v3_fp8_b/model tests/fixtures/glm4_moe_fp8_b/model
        tests/fixtures/gpt_oss_mx/model tests/fixtures/gpt_oss_mx_b/model)
if [ -f models/olmoe-tiny/model.safetensors ] || [ -f models/olmoe-tiny/model.safetensors.index.json ]; then
    models+=(models/olmoe-tiny)
else
    echo "note: models/olmoe-tiny has no weights yet (tools/train_bundled.py): the bundled model is not checked"
fi
prompts=(--prompt-ids 1,2,3,4,5,6 --prompt-ids 9,8,7 --prompt-ids 42)
configs=("--roe-k 1" "--roe-k 4 --roe-tau 0.5 --roe-keep-clean 0" "--roe-k 4 --roe-tau 0.8 --roe-keep-clean 0 --roe-adaptive 1.0 --roe-gate noisy")

# same NAME REF_OUT REF_LOGITS OUT LOGITS: tokens and logits bit-identical
same() {
    if [ ! -s "$3" ]; then fail "$1: no reference logits"; return; fi
    if diff -q "$2" "$4" >/dev/null && cmp -s "$3" "$5"; then pass "$1"; else
        fail "$1: tokens or logits differ ($(diff "$2" "$4" | head -3 | tr '\n' ' ') $(cmp "$3" "$5" 2>&1 | head -1))"; fi
}

for m in "${models[@]}"; do
    name=$(basename "$(dirname "$m")")/$(basename "$m")
    ci=0
    for cfg in "${configs[@]}"; do
        ref=$tmp/ref$ci
        # shellcheck disable=SC2086
        if ! run_n 0 "$ref.txt" "$ref.f32" generate --model "$m" "${prompts[@]}" --max-tokens 12 --ignore-eos --seed 7 $cfg; then
            fail "$name [$cfg]: one process failed: $(tail -2 "$ref.txt.err")"; continue; fi
        for n in 1 2 3 4; do
            # shellcheck disable=SC2086
            run_n "$n" "$tmp/o.txt" "$tmp/o.f32" generate --model "$m" "${prompts[@]}" --max-tokens 12 --ignore-eos --seed 7 $cfg ||
                { fail "$name [$cfg] N=$n: exit $?: $(tail -3 "$tmp/o.txt.err")"; continue; }
            same "$name [$cfg] N=$n" "$ref.txt" "$ref.f32" "$tmp/o.txt" "$tmp/o.f32"
        done
        ci=$((ci + 1))
    done
    # the paged KV cache with blocks of 3 positions (block edges inside every prompt) on 2 ranks,
    # RoE K = 4: the same bits as one process with the default blocks (docs/KV.md)
    # shellcheck disable=SC2086
    run_n 2 "$tmp/o.txt" "$tmp/o.f32" generate --model "$m" "${prompts[@]}" --max-tokens 12 --ignore-eos --seed 7 \
        ${configs[1]} --kv-block-size 3 || fail "$name paged N=2: $(tail -2 "$tmp/o.txt.err")"
    same "$name [${configs[1]}] blocks of 3, N=2" "$tmp/ref1.txt" "$tmp/ref1.f32" "$tmp/o.txt" "$tmp/o.f32"
    # RoE really changes the scores (so the comparisons above cover the RoE path)
    if cmp -s "$tmp/ref0.f32" "$tmp/ref1.f32"; then fail "$name: RoE K=4 logits equal the plain model's"; fi
    # one sequence on three ranks: ranks 1 and 2 are home to nothing
    run_n 0 "$tmp/r.txt" "$tmp/r.f32" generate --model "$m" --prompt-ids 3,1,4,1,5 --max-tokens 10 --ignore-eos --roe-k 4 --roe-tau 0.5 --roe-keep-clean 0
    run_n 3 "$tmp/o.txt" "$tmp/o.f32" generate --model "$m" --prompt-ids 3,1,4,1,5 --max-tokens 10 --ignore-eos --roe-k 4 --roe-tau 0.5 --roe-keep-clean 0 ||
        fail "$name one sequence N=3: $(tail -2 "$tmp/o.txt.err")"
    same "$name: one sequence on 3 ranks" "$tmp/r.txt" "$tmp/r.f32" "$tmp/o.txt" "$tmp/o.f32"
done

m=tests/fixtures/qwen3_moe/model
run_n 0 "$tmp/r.txt" "$tmp/r.f32" generate --model $m "${prompts[@]}" --prompt-ids 5,5,5,5,5,5,5,5,5 --max-tokens 12 --ignore-eos --roe-k 4 --roe-tau 0.5 --roe-keep-clean 0
# least-loaded homes
ROE_HOME_POLICY=least-loaded run_n 3 "$tmp/o.txt" "$tmp/o.f32" generate --model $m "${prompts[@]}" --prompt-ids 5,5,5,5,5,5,5,5,5 \
    --max-tokens 12 --ignore-eos --roe-k 4 --roe-tau 0.5 --roe-keep-clean 0 || fail "least-loaded: $(tail -2 "$tmp/o.txt.err")"
same "qwen3_moe: least-loaded homes, N=3" "$tmp/r.txt" "$tmp/r.f32" "$tmp/o.txt" "$tmp/o.f32"
# a placement file: interleaved experts, another map in layer 2 (layer 1 is dense)
echo '{"ranks": 2, "experts": [[0, 2, 4, 6], [1, 3, 5, 7]], "layers": {"2": [[0, 1, 2, 3, 4, 5, 6], [7]]}}' >"$tmp/p.json"
ROE_PLACEMENT=$tmp/p.json run_n 2 "$tmp/o.txt" "$tmp/o.f32" generate --model $m "${prompts[@]}" --prompt-ids 5,5,5,5,5,5,5,5,5 \
    --max-tokens 12 --ignore-eos --roe-k 4 --roe-tau 0.5 --roe-keep-clean 0 || fail "placement file: $(tail -2 "$tmp/o.txt.err")"
same "qwen3_moe: placement file, N=2" "$tmp/r.txt" "$tmp/r.f32" "$tmp/o.txt" "$tmp/o.f32"
# no overlap of experts with the transfer: same numbers
ROE_EP_OVERLAP=0 run_n 2 "$tmp/o.txt" "$tmp/o.f32" generate --model $m "${prompts[@]}" --prompt-ids 5,5,5,5,5,5,5,5,5 \
    --max-tokens 12 --ignore-eos --roe-k 4 --roe-tau 0.5 --roe-keep-clean 0 || fail "no overlap: $(tail -2 "$tmp/o.txt.err")"
same "qwen3_moe: ROE_EP_OVERLAP=0, N=2" "$tmp/r.txt" "$tmp/r.f32" "$tmp/o.txt" "$tmp/o.f32"
# early tasks at once (a rank missing another's headers runs its own rows on its experts,
# and the others' rows later, in a second pass): same numbers
ROE_EP_EARLY_US=0 run_n 3 "$tmp/o.txt" "$tmp/o.f32" generate --model $m "${prompts[@]}" --prompt-ids 5,5,5,5,5,5,5,5,5 \
    --max-tokens 12 --ignore-eos --roe-k 4 --roe-tau 0.5 --roe-keep-clean 0 || fail "early tasks: $(tail -2 "$tmp/o.txt.err")"
same "qwen3_moe: ROE_EP_EARLY_US=0, N=3" "$tmp/r.txt" "$tmp/r.f32" "$tmp/o.txt" "$tmp/o.f32"
# bf16 on the wire: every expert input and output rounded, on any number of ranks alike
ROE_EP_WIRE=bf16 run_n 0 "$tmp/b.txt" "$tmp/b.f32" generate --model $m "${prompts[@]}" --max-tokens 12 --ignore-eos --roe-k 4 --roe-tau 0.5 --roe-keep-clean 0
for n in 2 3; do
    ROE_EP_WIRE=bf16 run_n $n "$tmp/o.txt" "$tmp/o.f32" generate --model $m "${prompts[@]}" --max-tokens 12 --ignore-eos \
        --roe-k 4 --roe-tau 0.5 --roe-keep-clean 0 || fail "bf16 wire N=$n: $(tail -2 "$tmp/o.txt.err")"
    same "qwen3_moe: bf16 wire, N=$n vs one process" "$tmp/b.txt" "$tmp/b.f32" "$tmp/o.txt" "$tmp/o.f32"
done
# admission by free blocks, preemption and prefix reuse on every rank (docs/KV.md): 7 prompts on
# pools of 6 to 9 blocks of 4 positions per rank (one context of 21 positions: 1,536 bytes a
# block), so sequences are preempted on every home rank (rank 0 counts the others' blocks in its
# mirrors of their pools) and resume from their own cached blocks (prefix hits, on ranks 1 and 2
# too: the sizes are chosen so that some happen there): the same tokens and logits as one
# process whose pool holds them all (and which recomputes everything)
kvp=(--prompt-ids 1,2,3,4,5,6 --prompt-ids 9,8,7,6,5,4,3 --prompt-ids 42,41,40,39,38 --prompt-ids 7,7,7,7,7,7,7,7
     --prompt-ids 11,12,13,14,15,16 --prompt-ids 2,4,6,8,10,12,14 --prompt-ids 3,3,4,4,5,5)
run_n 0 "$tmp/r.txt" "$tmp/r.f32" generate --model $m "${kvp[@]}" --max-tokens 12 --ignore-eos --kv-block-size 4 \
    --roe-k 4 --roe-tau 0.5 --seed 7 --json
num() { grep -o "\"$1\":[[:space:]]*[0-9]*" "$2" | grep -o '[0-9]*$'; }
for nb in "1 6" "2 6" "2 9" "3 8"; do
    read -r ranks blocks <<<"$nb"
    run_n $ranks "$tmp/o.txt" "$tmp/o.f32" generate --model $m "${kvp[@]}" --max-tokens 12 --ignore-eos --kv-block-size 4 \
        --roe-k 4 --roe-tau 0.5 --seed 7 --json --kv-memory $((blocks * 1536)) || fail "preemption N=$ranks: $(tail -2 "$tmp/o.txt.err")"
    if cmp -s "$tmp/r.f32" "$tmp/o.f32" && [ "$(grep -o '"tokens":[^]]*' "$tmp/r.txt")" = "$(grep -o '"tokens":[^]]*' "$tmp/o.txt")" ]; then
        pass "qwen3_moe: pools of $blocks blocks, N=$ranks: the tokens and logits of an unconstrained pool"
    else fail "qwen3_moe: pools of $blocks blocks, N=$ranks: tokens or logits differ"; fi
    p=$(num preemptions "$tmp/o.txt"); h=$(num prefix_hit_tokens_other_ranks "$tmp/o.txt")
    if [ "${p:-0}" -gt 0 ]; then pass "N=$ranks, $blocks blocks: $p preemptions"; else fail "N=$ranks: no preemption (the test forces some)"; fi
    if [ "$ranks" -gt 1 ] && [ "$blocks" -gt 6 ]; then
        [ "${h:-0}" -gt 0 ] && pass "N=$ranks, $blocks blocks: $h positions found in the caches of ranks 1+, same logits as recomputed" ||
            fail "N=$ranks, $blocks blocks: no prefix hit on ranks 1+ (the test expects some)"
    fi
done
# the same with sliding-window layers in a pool of their own (gpt_oss, window 6: docs/KV.md "Sliding
# windows"): 5 prompts, 3 of them sharing 12-15 tokens, blocks of 4, f32 elements (2,048 bytes a
# block of the 2 full layers; the window pool takes 71,680 bytes beside), main pools of 7 to 10
# blocks per rank: preempted sequences release both pools' blocks and resume from prefix hits on
# every rank (rank 0 mirrors both pools of the others; a hit there adopts the main pool's blocks
# from 0 and the window pool's from the window's first: KV.md "Prefix reuse") — the same tokens
# and logits as one unconstrained process, which finds no prefix (every sequence starts at once)
# and so recomputes every position
gp=(--prompt-ids 5,6,7,8,9,10,11,12,13,14,15,16,17,18 --prompt-ids 5,6,7,8,9,10,11,12,13,14,15,16,17,18,19
    --prompt-ids 5,6,7,8,9,10,11,12,13,14,15,16,21 --prompt-ids 3,1,4,1,5,9,2,6
    --prompt-ids 5,6,7,8,9,10,11,12,13,14,15,16,17,18)
g=tests/fixtures/gpt_oss/model
run_n 0 "$tmp/r.txt" "$tmp/r.f32" generate --model $g "${gp[@]}" --max-tokens 10 --ignore-eos --kv-block-size 4 \
    --kv-dtype f32 --seed 7 --json || fail "gpt_oss: one process failed: $(tail -2 "$tmp/r.txt.err")"
for nb in "1 7" "2 7" "2 10" "3 8"; do
    read -r ranks blocks <<<"$nb"
    run_n $ranks "$tmp/o.txt" "$tmp/o.f32" generate --model $g "${gp[@]}" --max-tokens 10 --ignore-eos --kv-block-size 4 \
        --kv-dtype f32 --seed 7 --json --kv-memory $((71680 + blocks * 2048)) || fail "gpt_oss N=$ranks: $(tail -2 "$tmp/o.txt.err")"
    if cmp -s "$tmp/r.f32" "$tmp/o.f32" && [ "$(grep -o '"tokens":[^]]*' "$tmp/r.txt")" = "$(grep -o '"tokens":[^]]*' "$tmp/o.txt")" ]; then
        pass "gpt_oss: main pools of $blocks blocks, N=$ranks: the tokens and logits of an unconstrained pool"
    else fail "gpt_oss: main pools of $blocks blocks, N=$ranks: tokens or logits differ"; fi
    p=$(num preemptions "$tmp/o.txt"); h=$(num prefix_hit_tokens "$tmp/o.txt"); ho=$(num prefix_hit_tokens_other_ranks "$tmp/o.txt")
    [ "${p:-0}" -gt 0 ] && pass "gpt_oss N=$ranks, $blocks blocks: $p preemptions" || fail "gpt_oss N=$ranks: no preemption (the test forces some)"
    [ "$ranks" -lt 3 ] && { [ "${h:-0}" -gt 0 ] && pass "gpt_oss N=$ranks: $h prefix hit positions on rank 0" ||
        fail "gpt_oss N=$ranks: no prefix hit on rank 0 (the test expects some)"; }
    if [ "$ranks" -gt 1 ] && [ "$blocks" -gt 7 ]; then
        [ "${ho:-0}" -gt 0 ] && pass "gpt_oss N=$ranks, $blocks blocks: $ho prefix hit positions on ranks 1+, same logits as recomputed" ||
            fail "gpt_oss N=$ranks, $blocks blocks: no prefix hit on ranks 1+ (the test expects some)"
    fi
done
[ "$(num prefix_hit_tokens "$tmp/r.txt")" = 0 ] || fail "gpt_oss: the reference found a prefix (it must recompute)"
# every layer windowed (one pool with the window: Mixtral with sliding_window 5, a context of 24
# so that a pool of 6 or 7 blocks of 4 preempts): a hit on ranks 1+ adopts the pool's blocks from
# the window's first (lo > 0) after the chain hash of the block before it — the same bits as one
# unconstrained process (which finds no prefix)
w=$tmp/mixtral_window
mkdir -p "$w"
ln -s "$PWD/tests/fixtures/mixtral/model/model.safetensors" "$w/model.safetensors"
cp tests/fixtures/mixtral/model/generation_config.json "$w/"
sed -e 's/"sliding_window": null/"sliding_window": 5/' -e 's/"max_position_embeddings": [0-9]*/"max_position_embeddings": 24/' \
    tests/fixtures/mixtral/model/config.json >"$w/config.json"
grep -q '"sliding_window": 5' "$w/config.json" || fail "mixtral window: the fixture's config has no sliding_window to set"
A=5,6,7,8,9,10,11,12,13,14,15,16
wp=(--prompt-ids $A,17 --prompt-ids $A,17,18 --prompt-ids 3,1,4,1,5,9,2,6 --prompt-ids $A,21 --prompt-ids $A,17
    --prompt-ids 9,9,8,8,7,7 --prompt-ids $A,22,23)
run_n 0 "$tmp/r.txt" "$tmp/r.f32" generate --model "$w" "${wp[@]}" --max-tokens 8 --ignore-eos --kv-block-size 4 \
    --kv-dtype f32 --seed 7 --json || fail "mixtral window: one process failed: $(tail -2 "$tmp/r.txt.err")"
[ "$(num prefix_hit_tokens "$tmp/r.txt")" = 0 ] || fail "mixtral window: the reference found a prefix (it must recompute)"
for nb in "2 6" "2 7" "3 6" "3 7"; do
    read -r ranks blocks <<<"$nb"
    run_n $ranks "$tmp/o.txt" "$tmp/o.f32" generate --model "$w" "${wp[@]}" --max-tokens 8 --ignore-eos --kv-block-size 4 \
        --kv-dtype f32 --seed 7 --json --kv-memory $((blocks * 2816)) || fail "mixtral window N=$ranks: $(tail -2 "$tmp/o.txt.err")"
    if cmp -s "$tmp/r.f32" "$tmp/o.f32" && [ "$(grep -o '"tokens":[^]]*' "$tmp/r.txt")" = "$(grep -o '"tokens":[^]]*' "$tmp/o.txt")" ]; then
        pass "mixtral window 5: pools of $blocks blocks, N=$ranks: the tokens and logits of an unconstrained pool"
    else fail "mixtral window 5: pools of $blocks blocks, N=$ranks: tokens or logits differ"; fi
    ho=$(num prefix_hit_tokens_other_ranks "$tmp/o.txt")
    [ "${ho:-0}" -gt 0 ] && pass "mixtral window N=$ranks, $blocks blocks: $ho prefix hit positions on ranks 1+" ||
        fail "mixtral window N=$ranks, $blocks blocks: no prefix hit on ranks 1+ (the test expects some)"
done
# Mixture-of-Recursions (every KV mode and router kind) and plain llama: no MoE layer, so RoE K = 1;
# independent sequences homed on different ranks, each rank with its own KV pools (runtime/mor.h)
for m in tests/fixtures/mor_ec/model tests/fixtures/mor_ec_share/model tests/fixtures/mor_tc/model \
         tests/fixtures/mor_tc_share/model tests/fixtures/llama/model; do
    name=$(basename "$(dirname "$m")")
    run_n 0 "$tmp/r.txt" "$tmp/r.f32" generate --model $m "${prompts[@]}" --prompt-ids 5,4,3,2,1,5,4,3 --max-tokens 12 \
        --ignore-eos --seed 7 --kv-block-size 3 || { fail "$name: one process failed: $(tail -2 "$tmp/r.txt.err")"; continue; }
    for n in 2 3 4; do
        run_n $n "$tmp/o.txt" "$tmp/o.f32" generate --model $m "${prompts[@]}" --prompt-ids 5,4,3,2,1,5,4,3 --max-tokens 12 \
            --ignore-eos --seed 7 --kv-block-size 3 || { fail "$name N=$n: exit $?: $(tail -3 "$tmp/o.txt.err")"; continue; }
        same "$name N=$n vs one process" "$tmp/r.txt" "$tmp/r.f32" "$tmp/o.txt" "$tmp/o.f32"
    done
done
# --json works under mpirun and is printed once
out=$(timeout 60 "${MPIRUN[@]}" -np 2 "$ROE" generate --model $m --prompt-ids 1,2 --max-tokens 3 --json 2>/dev/null)
if [ "$(echo "$out" | grep -c '"decode_tokens_per_s"')" = 1 ]; then pass "--json under mpirun, printed by rank 0 only"; else
    fail "--json under mpirun: $out"; fi
finish
