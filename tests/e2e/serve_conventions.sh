#!/usr/bin/env bash
# `roe serve` follows the conventions of the servers users already run (vLLM, SGLang,
# llama-server; issue 18): `model` optional, GET /v1/models/{id}, POST /tokenize and /detokenize
# as vLLM has them, function calling and structured output refused by name rather than ignored.
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

stop_server 0
finish
