#!/usr/bin/env bash
# `mpirun -np 2 roe serve`: rank 0 serves HTTP, every step runs on both ranks. The same tokens
# as one process (`roe generate`), 16 concurrent requests = each alone, a stream that
# concatenates to the whole text, a disconnect mid-stream that frees the slot, heartbeats that
# keep an idle server's ranks in step past the liveness bound (ROE_LIVENESS_S), and SIGTERM to rank 0 ending the
# whole job cleanly (exit 0).
. "$(dirname "$0")/../e2e/lib.bash"
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/../e2e/serve_lib.bash"
M=models/olmoe-tiny
[ -f $M/model.safetensors ] || { echo "skipped: $M has no weights (tools/train_bundled.py)"; exit 77; }
NAME=olmoe-tiny
export ROE_LIVENESS_S=4 # heartbeats every second; an idle pause below outlasts the bound
start_server "${MPIRUN[@]}" -x ROE_LIVENESS_S -np 2 -- --model $M --max-seqs 16 --max-model-len 256
rank0=$(sed -n 's/.*(pid \([0-9]*\), 2 ranks.*/\1/p' "$TMP/server.log" | head -1)
[ -n "$rank0" ] && EXTRA_PIDS+=("$rank0")
[ -n "$rank0" ] && pass "rank 0 (pid $rank0) serves, 2 ranks" || { fail "no 2-rank server line: $(cat "$TMP/server.log")"; finish; exit 1; }

body() { jq -nc --argjson p "$1" --argjson n "$2" --argjson x "${3:-{\}}" \
    '{model: "'$NAME'", prompt: $p, max_tokens: $n, ignore_eos: true, return_token_ids: true} + $x'; }

# the same tokens as one process
prompt="Q: 4821 + 379 = ? A:"
for roe in "" "--roe-k 4 --roe-tau 0.5"; do
    want=$(timeout 120 "$ROE" generate --model $M --prompt "$prompt" --max-tokens 16 --ignore-eos --json $roe |
           jq -c '.results[0].tokens')
    x='{}'
    [ -n "$roe" ] && x='{"roe_k": 4, "roe_tau": 0.5}'
    got=$(post /v1/completions "$(body "$(jq -n --arg p "$prompt" '$p')" 16 "$x")" | jq -c '.choices[0].token_ids')
    [ -n "$want" ] && [ "$got" = "$want" ] && pass "2 ranks = one process ${roe:-(plain)}" ||
        fail "2 ranks ${roe:-(plain)}: $got, one process $want"
done

# 16 concurrent = each alone
reqs=()
for i in $(seq 0 15); do
    case $((i % 3)) in
        0) p=$(jq -n --arg p "Q: $((i * 37 + 11)) + $((i * 5 + 2)) = ? A:" '$p'); x='{}' ;;
        1) p=$(jq -n --arg p "The $i little pigs" '$p'); x='{"roe_k": 4, "roe_tau": 0.5}' ;;
        2) p="[$(seq -s, $((i + 20)) $((i + 24)))]"; x="{\"temperature\": 0.8, \"seed\": $i}" ;;
    esac
    reqs+=("$(body "$p" $((10 + i % 4 * 4)) "$x")")
done
for i in $(seq 0 15); do post /v1/completions "${reqs[$i]}" >"$TMP/alone$i.json"; done
pids=()
for i in $(seq 0 15); do
    curl -s --max-time $((120 * SLOW)) -d "${reqs[$i]}" "$URL/v1/completions" >"$TMP/conc$i.json" &
    pids+=($!)
done
wait "${pids[@]}"
same=0
for i in $(seq 0 15); do
    a=$(jq -c '[.choices[0].text, .choices[0].token_ids]' "$TMP/alone$i.json" 2>/dev/null)
    b=$(jq -c '[.choices[0].text, .choices[0].token_ids]' "$TMP/conc$i.json" 2>/dev/null)
    [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "[null,null]" ] && same=$((same + 1)) ||
        fail "request $i: concurrent $(head -c 200 "$TMP/conc$i.json") != alone $(head -c 200 "$TMP/alone$i.json")"
done
[ $same = 16 ] && pass "2 ranks: 16 concurrent requests = each alone"

# n choices on either home rank: the prompt's cache is copied on the home rank (a control-plane
# binding when that is rank 1), each choice = the request alone with seed + i; prompt
# log-probabilities (echo) too
for k in 1 2; do
    req='{"prompt": "The '$k' little pigs", "max_tokens": 8, "ignore_eos": true, "temperature": 0.9, "return_token_ids": true'
    nb=$(post /v1/completions "$req, \"seed\": 3, \"n\": 3}")
    same=0
    for i in 0 1 2; do
        one=$(post /v1/completions "$req, \"seed\": $((3 + i))}" | jq -c .choices[0].token_ids)
        [ "$(echo "$nb" | jq -c ".choices[$i].token_ids")" = "$one" ] && same=$((same + 1))
    done
    [ $same = 3 ] && pass "2 ranks, n = 3 (request $k): each choice = alone with seed + i" ||
        fail "2 ranks, n = 3: $(echo "$nb" | jq -c '[.choices[].token_ids]')"
done
e1=$(post /v1/completions '{"prompt": "Q: 1 + 2 = ? A:", "max_tokens": 1, "echo": true, "logprobs": 1}' | jq -c .choices[0].logprobs.token_logprobs)
e2=$(post /v1/completions '{"prompt": "Q: 1 + 2 = ? A:", "max_tokens": 1, "echo": true, "logprobs": 1}' | jq -c .choices[0].logprobs.token_logprobs)
[ -n "$e1" ] && [ "$e1" = "$e2" ] && [ "$e1" != null ] && pass "2 ranks: echo log-probabilities on either home rank agree" ||
    fail "2 ranks echo: $e1 vs $e2"

# streaming
b=$(body '"Once upon a time"' 20)
post /v1/completions "$b" | jq -j '.choices[0].text' >"$TMP/whole.txt"
curl -sN --max-time $((120 * SLOW)) -d "$(echo "$b" | jq -c '. + {stream: true}')" "$URL/v1/completions" >"$TMP/sse"
stream_text "$TMP/sse" >"$TMP/stream.txt"
cmp -s "$TMP/whole.txt" "$TMP/stream.txt" && [ "$(grep '^data: ' "$TMP/sse" | tail -1)" = "data: [DONE]" ] &&
    pass "2 ranks: the stream concatenates to the whole text" || fail "2 ranks stream: '$(cat "$TMP/stream.txt")' vs '$(cat "$TMP/whole.txt")'"

# a disconnect mid-stream
curl -sN --max-time 120 -d '{"model": "'$NAME'", "prompt": "Once", "max_tokens": 240, "ignore_eos": true, "stream": true, "roe_k": 16, "roe_tau": 0.5}' \
    "$URL/v1/completions" >"$TMP/s1" &
cpid=$!
for i in $(seq 1 200); do [ "$(grep -c '^data: ' "$TMP/s1")" -ge 3 ] && break; sleep 0.05; done
kill $cpid 2>/dev/null; wait $cpid 2>/dev/null
wait_metric roe_requests_running "" 0 10 && [ "$(metric roe_requests_total 'outcome="cancelled"')" = 1 ] &&
    pass "2 ranks: a disconnect mid-stream cancels the request" || fail "2 ranks disconnect: running $(metric roe_requests_running)"

# prefix reuse on either home rank (docs/KV.md): one 40-token prompt 4 times in turn; homes go
# round-robin, so the 3rd and 4th find its first 2 blocks of 16 on the ranks the 1st and 2nd ran
# on (rank 0 finds rank 1's in its mirror of rank 1's pool): 64 positions, the same tokens and
# log-probabilities every time
ids=$(seq 5 44 | paste -sd, -)
h0=$(metric roe_prefix_cache_hit_tokens_total)
for i in 1 2 3 4; do post /v1/completions "$(body "[$ids]" 6 '{"logprobs": 2}')" |
    jq -c '[.choices[0].token_ids, .choices[0].logprobs.token_logprobs, .choices[0].logprobs.top_logprobs]' >"$TMP/px$i"; done
h1=$(metric roe_prefix_cache_hit_tokens_total)
[ $((h1 - h0)) -ge 64 ] && [ -s "$TMP/px1" ] && cmp -s "$TMP/px1" "$TMP/px3" && cmp -s "$TMP/px1" "$TMP/px4" && cmp -s "$TMP/px1" "$TMP/px2" &&
    pass "2 ranks: a repeated prompt hits the prefix cache on both homes ($((h1 - h0)) positions), same tokens and log-probabilities" ||
    fail "2 ranks prefix reuse: $((h1 - h0)) positions hit; $(head -c 150 "$TMP/px1") vs $(head -c 150 "$TMP/px4")"

# idle longer than the ranks' wait bound: heartbeats keep them in step
sleep 6
out=$(post /v1/completions '{"model": "'$NAME'", "prompt": "Hello", "max_tokens": 4, "ignore_eos": true}')
hb=$(metric roe_heartbeats_total)
[ "$(echo "$out" | jq '.usage.completion_tokens')" = 4 ] && [ "${hb:-0}" -ge 2 ] &&
    pass "2 ranks: serving after 6 s idle (ROE_LIVENESS_S=4), $hb heartbeats" || fail "after idle: $out (heartbeats $hb)"

# SIGTERM to rank 0: the job ends cleanly
kill -TERM "$rank0"
for i in $(seq 1 300); do kill -0 $SERVER_PID 2>/dev/null || break; sleep 0.1; done
if kill -0 $SERVER_PID 2>/dev/null; then fail "mpirun still running 30 s after SIGTERM to rank 0"; else
    wait $SERVER_PID
    rc=$?
    [ $rc = 0 ] && pass "SIGTERM to rank 0: every rank exits, mpirun exit 0" || fail "mpirun exit $rc: $(tail -3 "$TMP/server.log")"
fi
SERVER_PID=
finish
