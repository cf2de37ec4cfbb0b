#!/usr/bin/env bash
# The roe binary reproduces transformers' greedy continuations for each fixture family
# (tests/fixtures/*/reference.json), through `roe generate --prompt-ids`, in text and --json
# modes, and several prompts in one batch give the same tokens as each alone. These compare with
# transformers' fp32 forward, so they run the exact f32 KV cache (--kv-dtype f32); the default bf16
# cache (docs/KV.md) is checked for batch invariance at the end.
. "$(dirname "$0")/lib.bash"
for fam in olmoe mixtral qwen3_moe qwen2_moe qwen2_moe_b glm4_moe glm4_moe_b gpt_oss gpt_oss_b deepseek_v3 deepseek_v3_b \
           deepseek_v3_fp8 glm4_moe_fp8 deepseek_v3_fp8_b glm4_moe_fp8_b gpt_oss_mx gpt_oss_mx_b; do
    ref=tests/fixtures/$fam/reference.json
    for c in 0 1; do
        prompt=$(json_ids "$ref" prompt_ids $c | tr ' ' ',')
        want=$(json_ids "$ref" greedy_ids $c)
        n=$(echo "$want" | wc -w)
        got=$(timeout 120 "$ROE" generate --model tests/fixtures/$fam/model --prompt-ids "$prompt" \
              --max-tokens "$n" --ignore-eos --kv-dtype f32 2>/dev/null)
        if [ "$got" = "$want" ]; then pass "$fam case $c: $n greedy tokens"; else
            fail "$fam case $c: got '$got', want '$want'"; fi
    done
    # both cases in one batch
    p0=$(json_ids "$ref" prompt_ids 0 | tr ' ' ','); p1=$(json_ids "$ref" prompt_ids 1 | tr ' ' ',')
    w0=$(json_ids "$ref" greedy_ids 0); w1=$(json_ids "$ref" greedy_ids 1)
    out=$(timeout 120 "$ROE" generate --model tests/fixtures/$fam/model --prompt-ids "$p0" \
          --prompt-ids "$p1" --max-tokens 32 --ignore-eos --batch-rows 7 --kv-dtype f32 2>/dev/null)
    want=$(printf -- '--- [0]\n%s\n--- [1]\n%s' "$w0" "$w1")
    if [ "$out" = "$want" ]; then pass "$fam: two prompts in one batch"; else
        fail "$fam: batched output differs: $out"; fi
done
# the default bf16 KV cache: two prompts in one batch (chunks of 7 rows) give each one's tokens alone
for fam in deepseek_v3_b gpt_oss qwen2_moe_b; do
    ref=tests/fixtures/$fam/reference.json
    p0=$(json_ids "$ref" prompt_ids 0 | tr ' ' ','); p1=$(json_ids "$ref" prompt_ids 1 | tr ' ' ',')
    a0=$(timeout 120 "$ROE" generate --model tests/fixtures/$fam/model --prompt-ids "$p0" --max-tokens 24 --ignore-eos 2>/dev/null)
    a1=$(timeout 120 "$ROE" generate --model tests/fixtures/$fam/model --prompt-ids "$p1" --max-tokens 24 --ignore-eos 2>/dev/null)
    out=$(timeout 120 "$ROE" generate --model tests/fixtures/$fam/model --prompt-ids "$p0" \
          --prompt-ids "$p1" --max-tokens 24 --ignore-eos --batch-rows 7 2>/dev/null)
    want=$(printf -- '--- [0]\n%s\n--- [1]\n%s' "$a0" "$a1")
    if [ -n "$a0" ] && [ "$out" = "$want" ]; then pass "$fam, bf16 KV: two prompts in one batch = each alone"; else
        fail "$fam, bf16 KV: batched output differs: $out vs $want"; fi
done
# --json carries tokens and timings
js=$(timeout 120 "$ROE" generate --model tests/fixtures/olmoe/model --prompt-ids 1,2,3 --max-tokens 4 --json --ignore-eos)
case "$js" in
    *'"decode_tokens_per_s"'*'"prefill_tokens_per_s"'*|*'"prefill_tokens_per_s"'*) 
        echo "$js" | grep -q '"tokens":' && pass "--json has tokens and timings" || fail "--json lacks tokens: $js" ;;
    *) fail "--json lacks timings: $js" ;;
esac
# a MoR model with recursive KV sharing reads its own recursion-1 K/V back from the pool: in every
# KV element type (fp8 was once read as f32). On this fixture and prompt the fp8 cache keeps f32's
# greedy tokens.
ids=1,2,3,4,5,6,7,8,9,10,11,12
want=$(timeout 60 "$ROE" generate --model tests/fixtures/mor_ec_share/model --prompt-ids $ids --max-tokens 16 \
       --ignore-eos --kv-dtype f32 2>/dev/null)
got=$(timeout 60 "$ROE" generate --model tests/fixtures/mor_ec_share/model --prompt-ids $ids --max-tokens 16 \
      --ignore-eos --kv-dtype fp8 2>/dev/null)
[ -n "$want" ] && [ "$got" = "$want" ] && pass "mor_ec_share, fp8 KV: f32's 16 greedy tokens" ||
    fail "mor_ec_share, fp8 KV: '$got', f32 '$want'"
finish
