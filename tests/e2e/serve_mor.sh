#!/usr/bin/env bash
# `roe serve` on Mixture-of-Recursions models (runtime/mor.h): concurrent requests decode by
# continuous depth-wise batching (one tick a scheduler step), and each request's tokens equal
# `roe generate`'s for its prompt alone (plain steps); a request cancelled mid-decode (its last
# token still in the shared block) leaves the server serving the next ones alike.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
prompts=("1,2,3,4,5,6,7,8" "9,8,7" "42" "5,5,5,5,5,5,5,5,5,5,5" "100,200,300")
for f in mor_ec mor_tc_share; do
    M=tests/fixtures/$f/model
    start_server -- --model "$M" --max-seqs 4
    i=0
    pids=()
    for p in "${prompts[@]}"; do
        curl -s -m $((60 * SLOW)) "$URL/v1/completions" -H 'Content-Type: application/json' \
            -d "{\"prompt\": [$p], \"max_tokens\": 16, \"temperature\": 0, \"ignore_eos\": true, \"return_token_ids\": true}" \
            >"$TMP/r$i.json" &
        pids+=($!)
        i=$((i + 1))
    done
    # one more, streamed and dropped after its first bytes: cancelled while its token is in flight
    timeout 2 curl -s -N "$URL/v1/completions" -H 'Content-Type: application/json' \
        -d '{"prompt": [7, 7, 7], "max_tokens": 200, "temperature": 0, "ignore_eos": true, "stream": true}' 2>/dev/null | head -c 50 >/dev/null
    wait "${pids[@]}"
    i=0
    for p in "${prompts[@]}"; do
        want=$(timeout 60 "$ROE" generate --model "$M" --prompt-ids "$p" --max-tokens 16 --ignore-eos --json | jq -c '.results[0].tokens')
        got=$(jq -c '.choices[0].token_ids // .choices[0].tokens // empty' "$TMP/r$i.json")
        if [ -n "$want" ] && [ "$got" = "$want" ]; then pass "$f: request $i served by depth-wise batching = generate alone"
        else fail "$f: request $i: served $got, generate alone $want ($(head -c 300 "$TMP/r$i.json"))"; fi
        i=$((i + 1))
    done
    stop_server
done
finish
