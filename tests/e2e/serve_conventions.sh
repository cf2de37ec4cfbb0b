#!/usr/bin/env bash
# `roe serve` follows the conventions of the servers users already run (vLLM, SGLang,
# llama-server; issue 18): `model` optional, GET /v1/models/{id}, POST /tokenize and /detokenize
# as vLLM has them, function calling and structured output refused by name rather than ignored;
# `stop` strings matched across token boundaries and never streamed; `n` choices that share the
# prompt and each equal the request alone with seed + i; `logprobs` / `top_logprobs` in OpenAI's
# shapes (completions and chat); `echo` with the prompt's log-probabilities, as
# lm-evaluation-harness's local-completions asks for them.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
M=models/olmoe-tiny
[ -f $M/model.safetensors ] || { echo "skipped: $M has no weights (tools/train_bundled.py)"; exit 77; }
NAME=olmoe-tiny
C=/v1/completions
start_server -- --model $M --max-seqs 8 --max-model-len 256

# ---- model optional: the same answer as with it ----
with=$(post $C '{"model": "'$NAME'", "prompt": "Q: 2 + 2 = ? A:", "max_tokens": 8, "return_token_ids": true}' | jq -c .choices[0].token_ids)
without=$(post $C '{"prompt": "Q: 2 + 2 = ? A:", "max_tokens": 8, "return_token_ids": true}' | jq -c .choices[0].token_ids)
[ "$(cat "$TMP/code")" = 200 ] && [ -n "$with" ] && [ "$with" = "$without" ] &&
    pass "a request without 'model' is served by the one model: $without" || fail "without model: $without, with: $with"
out=$(post /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}')
[ "$(cat "$TMP/code")" = 200 ] && pass "chat without 'model'" || fail "chat without model: $out"
expect_status "an unknown model is still 404" 404 "does not exist" $C '{"model": "gpt-4", "prompt": "a"}'

# ---- GET /v1/models/{id} ----
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' "$URL/v1/models/$NAME")
[ "$code" = 200 ] && jq -e '.id == "'$NAME'" and .object == "model" and .max_model_len == 256' "$TMP/resp" >/dev/null &&
    pass "GET /v1/models/$NAME: the model" || fail "GET /v1/models/$NAME: $code $(cat "$TMP/resp")"
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' "$URL/v1/models/gpt-4")
[ "$code" = 404 ] && jq -e '.error.code == "model_not_found"' "$TMP/resp" >/dev/null &&
    pass "GET /v1/models/gpt-4: 404 model_not_found" || fail "GET /v1/models/gpt-4: $code $(cat "$TMP/resp")"

# ---- /tokenize and /detokenize: the ids a completion runs, and back ----
prompt="Q: 4821 + 379 = ? A:"
tok=$(post /tokenize "$(jq -nc --arg p "$prompt" '{prompt: $p, return_token_strs: true}')")
ids=$(echo "$tok" | jq -c .tokens)
want=$(post $C "$(jq -nc --arg p "$prompt" '{prompt: $p, max_tokens: 1, return_token_ids: true}')" | jq -c .prompt_token_ids)
[ -n "$ids" ] && [ "$ids" = "$want" ] && [ "$(echo "$tok" | jq '.count == (.tokens | length) and .max_model_len == 256')" = true ] &&
    pass "/tokenize: the ids a completion runs ($ids)" || fail "/tokenize: $tok, completion ran $want"
[ "$(echo "$tok" | jq -r '.token_strs | join("")')" = "$prompt" ] && pass "/tokenize token_strs join to the prompt" ||
    fail "token_strs: $(echo "$tok" | jq -c .token_strs)"
back=$(post /detokenize "{\"tokens\": $ids}" | jq -r .prompt)
[ "$back" = "$prompt" ] && pass "/detokenize gives the prompt back" || fail "/detokenize: '$back'"
chat_ids=$(post /tokenize '{"messages": [{"role": "user", "content": "hi"}]}' | jq -c .tokens)
want=$(post /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "return_token_ids": true}' | jq -c .prompt_token_ids)
[ -n "$chat_ids" ] && [ "$chat_ids" = "$want" ] && pass "/tokenize of messages: the chat prompt's ids" || fail "/tokenize messages: $chat_ids vs $want"
info=$(curl -s "$URL/tokenizer_info")
echo "$info" | jq -e '.eos_token == "<|endoftext|>" and .model_max_length == 256' >/dev/null &&
    pass "GET /tokenizer_info: eos_token, model_max_length (what lm-eval's remote tokenizer reads)" || fail "/tokenizer_info: $info"
expect_status "/detokenize of a bad id" 400 "not a token id" /detokenize '{"tokens": [1, -4]}'
expect_status "/tokenize of nothing" 400 "'prompt' is required" /tokenize '{}'
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/tokenize")
[ "$code" = 405 ] && pass "GET /tokenize: 405" || fail "GET /tokenize: $code"

# ---- refused by name, never ignored ----
expect_status "tools" 400 "'tools'" /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]}'
expect_status "tool_choice" 400 "'tool_choice'" /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "tool_choice": "required"}'
expect_status "response_format" 400 "'response_format'" /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}'
expect_status "suffix" 400 "'suffix'" $C '{"prompt": "a", "suffix": "b"}'
out=$(post /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "tools": [], "tool_choice": "none", "response_format": {"type": "text"}}')
[ "$(cat "$TMP/code")" = 200 ] && pass "their neutral values are accepted" || fail "neutral tools/response_format: $out"

# ---- stop strings: across token boundaries, never leaked into a stream ----
base=$(post $C '{"prompt": "Once upon a time", "max_tokens": 24, "ignore_eos": true, "logprobs": 0}')
toks=$(echo "$base" | jq -c '.choices[0].logprobs.tokens')
text=$(echo "$base" | jq -r '.choices[0].text')
# a stop string made of the end of one token and the start of the next (both at least 2 bytes)
stop=$(echo "$toks" | jq -r '[range(2; length - 1) as $i | select((.[$i] | length) >= 2 and (.[$i + 1] | length) >= 2) |
       (.[$i][-2:] + .[$i + 1][:2])] | first // empty')
want=$(jq -rn --arg t "$text" --arg s "$stop" '$t | .[0:index($s)]')
if [ -z "$stop" ]; then fail "no token pair to build a stop string from: $toks"; else
    got=$(post $C "$(jq -nc --arg s "$stop" '{prompt: "Once upon a time", max_tokens: 24, ignore_eos: true, stop: ["zz", $s]}')")
    [ "$(echo "$got" | jq -r .choices[0].text)" = "$want" ] && [ "$(echo "$got" | jq -r .choices[0].finish_reason)" = stop ] &&
        pass "stop '$stop' (across two tokens): the text ends before it, finish stop" ||
        fail "stop '$stop': $(echo "$got" | jq -c .choices[0]), want text '$want'"
    curl -sN --max-time 60 -d "$(jq -nc --arg s "$stop" '{prompt: "Once upon a time", max_tokens: 24, ignore_eos: true, stop: $s, stream: true}')" \
        "$URL$C" >"$TMP/stop.sse"
    [ "$(stream_text "$TMP/stop.sse")" = "$want" ] &&
        [ "$(sed -n 's/^data: //p' "$TMP/stop.sse" | grep -v DONE | jq -r '.choices[0].finish_reason // empty')" = stop ] &&
        pass "stop streamed: the chunks concatenate to the same text; no byte of '$stop' went out" ||
        fail "stop streamed: '$(stream_text "$TMP/stop.sse")', want '$want'"
fi
got=$(post /v1/chat/completions '{"messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 20, "ignore_eos": true, "stop": "e"}')
echo "$got" | jq -e '.choices[0].finish_reason == "stop" and (.choices[0].message.content | contains("e") | not)' >/dev/null &&
    pass "chat: stop \"e\" ends the message before its first e" || fail "chat stop: $got"

# ---- n: choices share the prompt, each = the request alone with seed + i ----
# (a prompt no earlier request began with: a cached block that continues it would be copied
# instead of run, docs/KV.md "Prefix reuse")
p0=$(metric roe_prompt_tokens_total)
req='{"prompt": "A long time ago", "max_tokens": 10, "ignore_eos": true, "temperature": 0.9'
nb=$(post $C "$req, \"seed\": 5, \"n\": 3, \"return_token_ids\": true}")
p1=$(metric roe_prompt_tokens_total)
same=0
for i in 0 1 2; do
    one=$(post $C "$req, \"seed\": $((5 + i)), \"return_token_ids\": true}" | jq -c .choices[0].token_ids)
    [ "$(echo "$nb" | jq -c ".choices[$i].token_ids")" = "$one" ] && same=$((same + 1))
done
np=$(echo "$nb" | jq .usage.prompt_tokens)
[ $same = 3 ] && [ "$(echo "$nb" | jq '[.choices[].index] == [0, 1, 2] and .usage.completion_tokens == 30')" = true ] &&
    pass "n = 3: choice i = the request alone with seed 5 + i" || fail "n = 3: $(echo "$nb" | jq -c '[.choices[] | [.index, .token_ids]]')"
[ $((p1 - p0)) = $((np + 2)) ] && pass "n = 3: the $np-token prompt ran once (+1 last position per other choice)" ||
    fail "n = 3: $((p1 - p0)) prompt tokens run for a $np-token prompt"
curl -sN --max-time 60 -d "$req, \"seed\": 5, \"n\": 2, \"stream\": true}" "$URL$C" >"$TMP/n.sse"
for i in 0 1; do
    got=$(sed -n 's/^data: //p' "$TMP/n.sse" | grep -v DONE | jq -j "select(.choices[0].index == $i) | .choices[0].text")
    [ "$got" = "$(echo "$nb" | jq -j ".choices[$i].text")" ] && pass "n = 2 streamed: choice $i's chunks = its text" ||
        fail "n = 2 streamed, choice $i: '$got'"
done

# ---- logprobs: OpenAI's shapes; the greedy token is the most likely ----
lp=$(post $C '{"prompt": "Once upon a time", "max_tokens": 6, "ignore_eos": true, "logprobs": 3}')
echo "$lp" | jq -e '.choices[0].logprobs | (.tokens | length) == 6 and (.token_logprobs | length) == 6 and
    ([.top_logprobs[] | length] | all(. == 3)) and (.text_offset[0] == 0) and
    ([range(0; 6) as $i | .token_logprobs[$i] == (.top_logprobs[$i] | [.[]] | max)] | all)' >/dev/null &&
    pass "completions logprobs 3: tokens, token_logprobs, 3 top_logprobs each (the greedy token's the max), text_offset" ||
    fail "completions logprobs: $(echo "$lp" | jq -c .choices[0].logprobs)"
[ "$(echo "$lp" | jq -r '.choices[0].logprobs.tokens | join("")')" = "$(echo "$lp" | jq -r .choices[0].text)" ] &&
    pass "logprobs tokens join to the text" || fail "logprobs tokens vs text: $lp"
lp=$(post /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "ignore_eos": true, "logprobs": true, "top_logprobs": 2}')
echo "$lp" | jq -e '.choices[0].logprobs.content | length == 4 and all(.token and (.logprob | type) == "number" and (.bytes | type) == "array" and (.top_logprobs | length) == 2)' >/dev/null &&
    pass "chat logprobs: content[] of {token, logprob, bytes, top_logprobs[2]}" || fail "chat logprobs: $lp"
curl -sN --max-time 60 -d '{"prompt": "Once upon a time", "max_tokens": 5, "ignore_eos": true, "logprobs": 1, "stream": true}' "$URL$C" >"$TMP/lp.sse"
n=$(sed -n 's/^data: //p' "$TMP/lp.sse" | grep -v DONE | jq -s '[.[] | .choices[0].logprobs // empty | .token_logprobs | length] | add')
[ "$n" = 5 ] && pass "streamed logprobs: every token's once" || fail "streamed logprobs: $n of 5"

# ---- echo: the prompt's text and log-probabilities first (how lm-eval scores a continuation) ----
ids=$(post /tokenize '{"prompt": "Q: 4821 + 379 = ? A:"}' | jq -c .tokens)
np=$(echo "$ids" | jq length)
ec=$(post $C "{\"prompt\": [$ids], \"max_tokens\": 1, \"temperature\": 0, \"logprobs\": 1, \"echo\": true}")
echo "$ec" | jq -e --argjson np "$np" '.choices[0] | (.text | startswith("Q: 4821 + 379 = ? A:")) and
    (.logprobs.token_logprobs | length) == $np + 1 and .logprobs.token_logprobs[0] == null and
    .logprobs.top_logprobs[0] == null and ([.logprobs.token_logprobs[1:][] | . < 0] | all)' >/dev/null &&
    pass "echo + logprobs (lm-eval's request, prompt [[ids]]): the prompt's text, then $np + 1 log-probabilities, the first null" ||
    fail "echo: $ec"
ec2=$(post $C '{"prompt": "Q: 4821 + 379 = ? A:", "max_tokens": 1, "logprobs": 1, "echo": true, "roe_k": 4, "roe_tau": 0.5}')
echo "$ec2" | jq -e '.choices[0].logprobs.token_logprobs[1] != null' >/dev/null && pass "echo with RoE K=4 scores the prompt too" || fail "echo RoE: $ec2"

stop_server 0
finish
