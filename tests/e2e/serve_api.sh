#!/usr/bin/env bash
# `roe serve` answers as `roe generate` does: the same tokens over HTTP (plain and RoE K=4);
# 16 concurrent requests (greedy, RoE, and seeded sampling) each get exactly what the same
# request gets alone, in batched steps; streamed chunks concatenate to the non-streamed text
# (completions and chat), end with [DONE], and carry usage on request; /v1/models, /health and
# /metrics (Prometheus text, counts that add up); SIGTERM ends the server cleanly; on a KV pool
# too small for 8 concurrent requests, sequences are preempted and each output is unchanged.
# Outputs of the bundled model are never hard-coded: every expectation comes from the model.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
M=models/olmoe-tiny
[ -f $M/model.safetensors ] || { echo "skipped: $M has no weights (tools/train_bundled.py)"; exit 77; }
NAME=olmoe-tiny
start_server -- --model $M --max-seqs 16 --max-model-len 256 --roe-profile-dir configs

body() { # body PROMPT_JSON MAX_TOKENS [EXTRA_JSON]: a completion request
    jq -nc --argjson p "$1" --argjson n "$2" --argjson x "${3:-{\}}" \
        '{model: "'$NAME'", prompt: $p, max_tokens: $n, ignore_eos: true, return_token_ids: true} + $x'
}

# ---- the same tokens as roe generate ----
prompt="Q: 4821 + 379 = ? A:"
for roe in "" "--roe-k 4 --roe-tau 0.5"; do
    want=$(timeout $((120 * SLOW)) "$ROE" generate --model $M --prompt "$prompt" --max-tokens 16 --ignore-eos --json $roe |
           jq -c '.results[0].tokens')
    x='{}'
    [ -n "$roe" ] && x='{"roe_k": 4, "roe_tau": 0.5}'
    got=$(post /v1/completions "$(body "$(jq -n --arg p "$prompt" '$p')" 16 "$x")" | jq -c '.choices[0].token_ids')
    if [ -n "$want" ] && [ "$got" = "$want" ]; then pass "completion = roe generate ${roe:-(plain)}: $got"; else
        fail "completion ${roe:-(plain)}: got $got, roe generate gives $want"; fi
done

# a RoE profile by name, as `roe generate --roe-profile FILE`
want=$(timeout $((120 * SLOW)) "$ROE" generate --model $M --prompt "$prompt" --max-tokens 12 --ignore-eos --json \
       --roe-profile configs/roe-example-uniform.json | jq -c '.results[0].tokens')
got=$(post /v1/completions "$(body "$(jq -n --arg p "$prompt" '$p')" 12 '{"roe_profile": "roe-example-uniform"}')" |
      jq -c '.choices[0].token_ids')
[ -n "$want" ] && [ "$got" = "$want" ] && pass "roe_profile by name = roe generate --roe-profile" ||
    fail "roe_profile: got $got, roe generate gives $want"

# ---- 16 concurrent requests = each alone ----
reqs=()
for i in $(seq 0 15); do
    case $((i % 4)) in
        0) p=$(jq -n --arg p "Q: $((i * 37 + 11)) + $((i * 5 + 2)) = ? A:" '$p'); x='{}' ;;
        1) p="[$(seq -s, $((i + 20)) $((i + 20 + i % 7)))]"; x='{}' ;;  # token ids
        2) p=$(jq -n --arg p "The $i little pigs and the wolf" '$p'); x='{"roe_k": 4, "roe_tau": 0.5}' ;;
        3) p=$(jq -n --arg p "Once upon a time, number $i" '$p'); x="{\"temperature\": 0.8, \"top_p\": 0.9, \"seed\": $i}" ;;
    esac
    reqs+=("$(body "$p" $((12 + i % 5 * 5)) "$x")")
done
for i in $(seq 0 15); do post /v1/completions "${reqs[$i]}" >"$TMP/alone$i.json"; done
steps0=$(metric roe_steps_total); toks0=$(metric roe_generation_tokens_total)
pids=()
for i in $(seq 0 15); do
    curl -s --max-time $((120 * SLOW)) -H 'Content-Type: application/json' -d "${reqs[$i]}" "$URL/v1/completions" \
        >"$TMP/conc$i.json" &
    pids+=($!)
done
wait "${pids[@]}"
steps=$(( $(metric roe_steps_total) - steps0 )); toks=$(( $(metric roe_generation_tokens_total) - toks0 ))
same=0
for i in $(seq 0 15); do
    a=$(jq -c '[.choices[0].text, .choices[0].token_ids, .choices[0].finish_reason]' "$TMP/alone$i.json" 2>/dev/null)
    b=$(jq -c '[.choices[0].text, .choices[0].token_ids, .choices[0].finish_reason]' "$TMP/conc$i.json" 2>/dev/null)
    if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "[null,null,null]" ]; then same=$((same + 1)); else
        fail "request $i: concurrent $(head -c 300 "$TMP/conc$i.json") != alone $(head -c 300 "$TMP/alone$i.json")"; fi
done
[ $same = 16 ] && pass "16 concurrent requests = each alone (greedy, RoE K=4, seeded sampling)"
if [ "$steps" -gt 0 ] && [ $((toks / steps)) -ge 3 ]; then pass "they ran batched: $toks tokens in $steps steps"; else
    fail "the concurrent requests were not batched: $toks tokens in $steps steps"; fi

# ---- streaming = non-streaming ----
check_stream() { # NAME PATH BODY
    local name=$1 path=$2 b=$3
    post "$path" "$b" >"$TMP/whole.json"
    curl -sN --max-time $((120 * SLOW)) -H 'Content-Type: application/json' \
        -d "$(echo "$b" | jq -c '. + {stream: true, stream_options: {include_usage: true}}')" "$URL$path" >"$TMP/sse"
    jq -j '.choices[0] | (.text // .message.content)' "$TMP/whole.json" >"$TMP/whole.txt"
    stream_text "$TMP/sse" >"$TMP/stream.txt"
    local n_chunks last usage fin want_fin ntok
    n_chunks=$(grep -c '^data: ' "$TMP/sse")
    last=$(grep '^data: ' "$TMP/sse" | tail -1)
    usage=$(sed -n 's/^data: //p' "$TMP/sse" | grep -v DONE | jq -c 'select(.usage) | .usage.completion_tokens')
    fin=$(sed -n 's/^data: //p' "$TMP/sse" | grep -v DONE | jq -r '.choices[0].finish_reason // empty')
    want_fin=$(jq -r '.choices[0].finish_reason' "$TMP/whole.json")
    ntok=$(jq '.usage.completion_tokens' "$TMP/whole.json")
    if [ -s "$TMP/whole.txt" ] && cmp -s "$TMP/whole.txt" "$TMP/stream.txt" && [ "$last" = "data: [DONE]" ] &&
       [ "$usage" = "$ntok" ] && [ "$fin" = "$want_fin" ] && [ "$n_chunks" -gt 3 ]; then
        pass "$name: $n_chunks chunks concatenate to the whole text, finish $fin, usage $usage, [DONE]"
    else
        fail "$name: stream '$(cat "$TMP/stream.txt")' vs whole '$(cat "$TMP/whole.txt")', last '$last', usage '$usage' vs $ntok, finish '$fin' vs '$want_fin'"
    fi
}
check_stream "stream (completion)" /v1/completions "$(body '"Once upon a time"' 24)"
check_stream "stream (completion, RoE K=4)" /v1/completions "$(body '"Q: 12 + 30 = ? A:"' 20 '{"roe_k": 4, "roe_tau": 0.5}')"
chat='{"model": "'$NAME'", "messages": [{"role": "system", "content": "You add numbers."}, {"role": "user", "content": "Q: 7 + 8 = ? A:"}], "max_tokens": 20, "ignore_eos": true}'
check_stream "stream (chat)" /v1/chat/completions "$chat"
role=$(curl -sN --max-time $((60 * SLOW)) -d "$(echo "$chat" | jq -c '. + {stream: true}')" "$URL/v1/chat/completions" |
       sed -n 's/^data: //p' | head -1 | jq -r '.choices[0].delta.role')
[ "$role" = assistant ] && pass "chat stream opens with the assistant role" || fail "chat stream's first delta role: $role"
out=$(post /v1/chat/completions "$chat")
[ "$(echo "$out" | jq -r '.object + " " + .choices[0].message.role')" = "chat.completion assistant" ] &&
    pass "chat completion object" || fail "chat completion: $out"

# ---- other endpoints ----
out=$(curl -s "$URL/v1/models")
[ "$(echo "$out" | jq -r '.data[0].id')" = $NAME ] && pass "/v1/models lists $NAME" || fail "/v1/models: $out"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")" = 200 ] && pass "/health is 200" || fail "/health"
curl -s "$URL/metrics" >"$TMP/metrics"
missing=
for m in roe_requests_running roe_requests_waiting roe_prompt_tokens_total roe_generation_tokens_total \
         roe_time_to_first_token_seconds_bucket roe_inter_token_latency_seconds_bucket roe_kv_cache_usage_ratio \
         roe_roe_samples_total roe_requests_total roe_kv_preemptions_total; do
    grep -q "^$m{" "$TMP/metrics" || missing="$missing $m"
done
[ -z "$missing" ] && pass "/metrics has every series" || fail "/metrics lacks$missing"
grep -q '^# TYPE roe_time_to_first_token_seconds histogram' "$TMP/metrics" && grep -q 'le="+Inf"' "$TMP/metrics" &&
    pass "/metrics histograms in Prometheus form" || fail "/metrics histograms"
# RoE samples: K per generated token
s0=$(metric roe_roe_samples_total); t0=$(metric roe_generation_tokens_total)
post /v1/completions "$(body '"Hello"' 10 '{"roe_k": 4, "roe_tau": 0.5}')" >/dev/null
s1=$(metric roe_roe_samples_total); t1=$(metric roe_generation_tokens_total)
[ $((t1 - t0)) = 10 ] && [ $((s1 - s0)) = 40 ] && pass "roe_roe_samples_total counts K=4 x 10 tokens" ||
    fail "RoE samples: $((s1 - s0)) for $((t1 - t0)) tokens at K=4"
# prefix reuse (docs/KV.md): the same 40-token prompt twice; the second finds its first two blocks
# of 16 in the cache and gives the same tokens
ids=$(seq 5 44 | paste -sd, -)
h0=$(metric roe_prefix_cache_hit_tokens_total)
a=$(post /v1/completions "$(body "[$ids]" 6)" | jq -c '.choices[0].token_ids')
b=$(post /v1/completions "$(body "[$ids]" 6)" | jq -c '.choices[0].token_ids')
h1=$(metric roe_prefix_cache_hit_tokens_total)
[ $((h1 - h0)) -ge 32 ] && [ -n "$a" ] && [ "$a" = "$b" ] && pass "a repeated prompt hits the prefix cache ($((h1 - h0)) positions), same tokens" ||
    fail "prefix cache: $((h1 - h0)) positions hit; tokens $a then $b"
[ "$(metric roe_kv_pool_blocks 'state="held"')" = 0 ] && [ "$(metric roe_kv_pool_blocks 'state="cached"')" -ge 2 ] &&
    pass "idle: no pool block held, the prompt's blocks cached" || fail "pool: $(grep '^roe_kv_pool_blocks' "$TMP/metrics")"
[ "$(metric roe_requests_running)" = 0 ] && [ "$(metric roe_kv_cache_usage_ratio)" = 0 ] &&
    pass "idle: nothing running, no KV blocks held" || fail "idle server: $(grep -E '^roe_(requests_running|kv_cache_usage)' "$TMP/metrics")"
# ---- a pool too small for the requests together (docs/KV.md "Admission and preemption") ----
# 8 requests of 20 prompt tokens + 24 (11 blocks of 4 each) sent at once to a server whose pool
# holds 20 blocks: sequences are preempted and recomputed; each gets what it got above, alone,
# from the unconstrained server
for i in $(seq 0 7); do
    x='{}'
    [ $((i % 2)) = 1 ] && x='{"temperature": 0.9, "seed": '$((i + 3))'}'
    [ $i = 2 ] && x='{"roe_k": 4, "roe_tau": 0.5}'
    echo "$x" >"$TMP/px$i"
    seq $((i * 20 + 3)) $((i * 20 + 22)) | paste -sd, - >"$TMP/pp$i"
    post /v1/completions "$(body "[$(cat "$TMP/pp$i")]" 24 "$x")" | jq -c '.choices[0].token_ids' >"$TMP/pwant$i"
done
stop_server 0
start_server -- --model $M --max-seqs 8 --max-model-len 64 --kv-block-size 4 --kv-memory $((20 * 32768))
for i in $(seq 0 7); do
    curl -s --max-time $((120 * SLOW)) -o "$TMP/pgot$i" -H 'Content-Type: application/json' \
        -d "$(body "[$(cat "$TMP/pp$i")]" 24 "$(cat "$TMP/px$i")")" "$URL/v1/completions" &
done
wait $(jobs -p | grep -v "^$SERVER_PID$") 2>/dev/null
bad=
for i in $(seq 0 7); do
    [ -s "$TMP/pwant$i" ] && [ "$(jq -c '.choices[0].token_ids' "$TMP/pgot$i" 2>/dev/null)" = "$(cat "$TMP/pwant$i")" ] || bad="$bad $i"
done
p=$(metric roe_kv_preemptions_total)
[ -z "$bad" ] && [ "${p:-0}" -gt 0 ] && pass "8 concurrent requests on a pool of 20 blocks: $p preemptions, every output as unconstrained" ||
    fail "small pool: requests$bad differ or failed, $p preemptions"
[ "$(metric roe_kv_pool_blocks 'state="held"')" = 0 ] && [ "$(metric roe_requests_total 'outcome="failed"')" = 0 ] &&
    pass "small pool: none failed, every block back" || fail "small pool: $(grep -E '^roe_(kv_pool|requests_total)' "$TMP/metrics")"
stop_server 0
finish
