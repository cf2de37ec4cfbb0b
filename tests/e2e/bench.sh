#!/usr/bin/env bash
# `roe bench` runs through the batching core (runtime/batch.h) and reports figures that follow
# from its flags, whatever the machine's speed: every decode step holds every sequence's K rows
# (prefill first: no step mixes prompt rows with decode groups, even when the prompts take
# several steps), the step's bytes count the dense weights, its distinct experts and the KV
# history, and the JSON names what ran. Timings are not checked (bench/ measures them).
. "$(dirname "$0")/lib.bash"
M=tests/fixtures/olmoe/model
layers=$(grep -o '"num_hidden_layers": [0-9]*' $M/config.json | grep -o '[0-9]*$')
get() { echo "$1" | grep "\"$2\"" | head -1 | sed 's/.*:[[:space:]]*//; s/,$//'; }

# check NAME BATCH K PROMPT GEN: the JSON of one run against what its flags imply
check() {
    local name=$1 batch=$2 k=$3 prompt=$4 gen=$5 out
    local flags=(--model $M --batch "$batch" --prompt-len "$prompt" --gen-len "$gen" --threads 1 --json)
    [ "$k" -gt 1 ] && flags+=(--roe-k "$k" --roe-tau 0.5 --roe-keep-clean 0)
    if ! out=$(timeout 120 "$ROE" bench "${flags[@]}" 2>&1); then fail "$name: $out"; return; fi
    local naive; naive=$(get "$out" rows_naive_per_step)
    local want=$((batch * k * layers))
    if [ "$(get "$out" batch)" != "$batch" ] || [ "$(get "$out" roe_k)" != "$k" ] ||
        [ "$(get "$out" gen_len)" != "$gen" ] || [ "$(get "$out" prompt_len)" != "$prompt" ]; then
        fail "$name: the JSON does not echo the flags: $out"; return
    fi
    if ! awk -v a="$naive" -v b="$want" 'BEGIN { exit !(a == b) }'; then
        fail "$name: $naive row-layers per decode step, expected batch x K x layers = $want"; return
    fi
    local computed experts bytes
    computed=$(get "$out" rows_computed_per_step) experts=$(get "$out" distinct_experts_per_step)
    bytes=$(get "$out" bytes_per_step)
    if ! awk -v c="$computed" -v n="$naive" -v k="$k" -v b="$batch" -v l="$layers" \
        'BEGIN { exit !(c <= n && c >= b * l && (k > 1 || c == n)) }'; then
        fail "$name: $computed row-layers computed per step against $naive naive"; return
    fi
    if ! awk -v e="$experts" -v by="$bytes" 'BEGIN { exit !(e > 0 && by > 0) }'; then
        fail "$name: $experts distinct experts, $bytes bytes per step"; return
    fi
    pass "$name: $naive row-layers per step ($computed computed), $experts experts, $bytes bytes"
}

check "batch 1" 1 1 8 6
check "batch 3, RoE K = 4" 3 4 8 5
# 6 prompts of 40 tokens are 240 rows: two prefill steps of at most 128 rows; the first
# prompts are in the cache before the last, yet no decode step may start until all are
check "prompts over several steps" 6 1 40 4
check "prompts over several steps, RoE K = 2" 6 2 40 4
# the text form names the backend and the figures
if out=$(timeout 60 "$ROE" bench --model $M --gen-len 3 --prompt-len 4 2>&1) &&
    echo "$out" | grep -q '^decode: 1 rank(s), batch 1, K 1, .* tokens/s, .* MB read/step .*prefill .* tokens/s \[cpu'; then
    pass "text report"
else
    fail "text report: $out"
fi
# MoR (launcher/bench_mor.c): depth-wise batching and plain steps decode every token asked, the
# router's depths are mixed (between 1 and N_r = 3), and the KV held is below vanilla's; full depth: 3
command -v jq >/dev/null || echo "note: jq is not installed: the MoR checks below fail (tools/install-deps.sh installs it)"
for mode in depth step; do
    j=$(timeout 120 "$ROE" bench --model tests/fixtures/mor_ec/model --batch 3 --prompt-len 8 --gen-len 6 --mor-batching $mode --json 2>&1)
    if echo "$j" | jq -e '.decode_tokens_per_s > 0 and .mean_depth > 1 and .mean_depth < 3 and
            .kv_bytes_per_token_entries < .kv_bytes_per_token_vanilla' >/dev/null 2>&1; then pass "mor --mor-batching $mode"
    else fail "mor --mor-batching $mode: $j"; fi
    j=$(timeout 120 "$ROE" bench --model tests/fixtures/mor_ec/model --batch 3 --prompt-len 8 --gen-len 6 --mor-batching $mode --mor-full-depth --json 2>&1)
    if echo "$j" | jq -e '.mean_depth == 3 and .kv_bytes_per_token_entries == .kv_bytes_per_token_vanilla' >/dev/null 2>&1; then
        pass "mor --mor-batching $mode --mor-full-depth"
    else fail "mor --mor-batching $mode --mor-full-depth: $j"; fi
done
expect_fail "context too long" "exceeds the model's context" "$ROE" bench --model $M --prompt-len 100000 --gen-len 4
finish
