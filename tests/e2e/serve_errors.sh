#!/usr/bin/env bash
# `roe serve` under bad requests and pressure: every bad request gets the right 4xx with an
# OpenAI-style error body while a long request runs on, unharmed; a full queue answers 503 and
# loses nothing; connections over the limit get 429; a client that disconnects mid-stream, or
# while its request waits, frees its slot; SIGTERM lets the running request finish and /health
# turns 503 meanwhile.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
M=models/olmoe-tiny
[ -f $M/model.safetensors ] || { echo "skipped: $M has no weights (tools/train_bundled.py)"; exit 77; }
NAME=olmoe-tiny

# ---- a server that cannot start says why ----
expect_fail "bad host" "cannot resolve host" "$ROE" serve --model $M --host no.such.host.invalid --port 0
expect_fail "context beyond the model's" "exceeds the model's context" "$ROE" serve --model $M --max-model-len 99999
expect_fail "unknown flag" "unknown option" "$ROE" serve --model $M --frobnicate

# ---- bad requests, next to a long one that must come out intact ----
start_server -- --model $M --max-seqs 4 --max-model-len 256 --max-body-bytes 65536
long='{"model": "'$NAME'", "prompt": "Once upon a time", "max_tokens": 200, "ignore_eos": true, "return_token_ids": true}'
curl -s --max-time $((120 * SLOW)) -d "$long" "$URL/v1/completions" >"$TMP/long.json" &
long_pid=$!
C=/v1/completions
error_is() { # error_is NAME JQ_FILTER: the last error body ($TMP/resp) satisfies the filter
    jq -e "$2" "$TMP/resp" >/dev/null && pass "$1: $2" || fail "$1: not $2: $(cat "$TMP/resp")"; }
expect_status "malformed JSON" 400 "not valid JSON" $C '{"model": "'$NAME'", "prompt": "a",'
expect_status "body not an object" 400 "must be a JSON object" $C '["a"]'
expect_status "empty body" 400 "not valid JSON" $C ''
expect_status "missing prompt" 400 "'prompt' is required" $C '{"model": "'$NAME'"}'
expect_status "missing messages" 400 "'messages' is required" /v1/chat/completions '{"model": "'$NAME'"}'
expect_status "unknown model" 404 "does not exist" $C '{"model": "gpt-4", "prompt": "a"}'
error_is "unknown model" '.error.code == "model_not_found" and .error.param == "model"'
expect_status "model of the wrong type" 400 "'model' must be a string" $C '{"model": 7, "prompt": "a"}'
expect_status "max_tokens a string" 400 "'max_tokens' must be an integer" $C '{"model": "'$NAME'", "prompt": "a", "max_tokens": "5"}'
expect_status "max_tokens fractional" 400 "must be an integer" $C '{"model": "'$NAME'", "prompt": "a", "max_tokens": 2.5}'
expect_status "max_tokens zero" 400 "outside" $C '{"model": "'$NAME'", "prompt": "a", "max_tokens": 0}'
expect_status "temperature a string" 400 "'temperature' must be a number" $C '{"model": "'$NAME'", "prompt": "a", "temperature": "hot"}'
expect_status "temperature out of range" 400 "outside" $C '{"model": "'$NAME'", "prompt": "a", "temperature": 9}'
expect_status "stream not a boolean" 400 "'stream' must be true or false" $C '{"model": "'$NAME'", "prompt": "a", "stream": "yes"}'
expect_status "prompt of the wrong type" 400 "'prompt' must be a string or an array" $C '{"model": "'$NAME'", "prompt": {"a": 1}}'
expect_status "token id outside the vocabulary" 400 "is not a token id" $C '{"model": "'$NAME'", "prompt": [1, 99999]}'
expect_status "empty prompt" 400 "empty" $C '{"model": "'$NAME'", "prompt": ""}'
expect_status "batched prompts" 400 "one request per prompt" $C '{"model": "'$NAME'", "prompt": ["a", "b"]}'
long_prompt="[$(seq -s, 1 300)]"
expect_status "prompt too long" 400 "maximum context length is 256" $C '{"model": "'$NAME'", "prompt": '"$long_prompt"'}'
expect_status "prompt + max_tokens too long" 400 "maximum context length" $C '{"model": "'$NAME'", "prompt": "a", "max_tokens": 256}'
expect_status "n beyond the slots" 400 "n = 5" $C '{"model": "'$NAME'", "prompt": "a", "n": 5}'
expect_status "too many stop strings" 400 "'stop'" $C '{"model": "'$NAME'", "prompt": "a", "stop": ["a", "b", "c", "d", "e"]}'
expect_status "an empty stop string" 400 "'stop'" $C '{"model": "'$NAME'", "prompt": "a", "stop": [""]}'
expect_status "echo in chat" 400 "'echo'" /v1/chat/completions '{"messages": [{"role": "user", "content": "x"}], "echo": true}'
expect_status "top_logprobs without logprobs" 400 "needs 'logprobs'" /v1/chat/completions '{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}'
expect_status "logprobs beyond 20" 400 "'logprobs'" $C '{"prompt": "a", "logprobs": 21}'
# strict input (issue 18, finding 4): NUL, trailing data and duplicate keys are refused, never
# truncated or resolved silently; a value float32 cannot hold is named (finding 7)
expect_status "NUL in the prompt" 400 "NUL" $C '{"model": "'$NAME'", "prompt": "a\u0000b", "max_tokens": 2}'
error_is "NUL in the prompt" '.error.param == "prompt"'
expect_status "NUL in a chat message" 400 "messages[0].content" /v1/chat/completions '{"model": "'$NAME'", "messages": [{"role": "user", "content": "x\u0000"}]}'
expect_status "data after the JSON object" 400 "after its JSON object" $C '{"model": "'$NAME'", "prompt": "a"} {"prompt": "b"}'
expect_status "a key twice" 400 "appears more than once" $C '{"model": "'$NAME'", "prompt": "a", "max_tokens": 1, "max_tokens": 50}'
error_is "a key twice" '.error.param == "max_tokens"'
expect_status "top_p below float32" 400 "too small" $C '{"model": "'$NAME'", "prompt": "a", "top_p": 1e-50}'
error_is "top_p below float32" '.error.param == "top_p"'
expect_status "roe_k without tau" 400 "needs 'roe_tau'" $C '{"model": "'$NAME'", "prompt": "a", "roe_k": 4}'
expect_status "roe_k of the wrong type" 400 "'roe_k' must be an integer" $C '{"model": "'$NAME'", "prompt": "a", "roe_k": "4"}'
expect_status "roe_tau out of range" 400 "'roe_tau'" $C '{"model": "'$NAME'", "prompt": "a", "roe_k": 2, "roe_tau": 50}'
expect_status "roe_gate unknown" 400 "'roe_gate'" $C '{"model": "'$NAME'", "prompt": "a", "roe_gate": "loud"}'
expect_status "roe_profile unknown" 400 "'roe_profile'" $C '{"model": "'$NAME'", "prompt": "a", "roe_profile": "nope"}'
expect_status "roe_k over the step" 400 "rows per step" $C '{"model": "'$NAME'", "prompt": "a", "roe_k": 200, "roe_tau": 0.5}'
error_is "roe_k over the step (the scheduler's refusal)" '.error.param == "roe_k" and .error.code == null'
expect_status "chat: messages not an array" 400 "'messages' must be a non-empty array" /v1/chat/completions '{"model": "'$NAME'", "messages": "hi"}'
expect_status "chat: unknown role" 400 "role 'wizard'" /v1/chat/completions '{"model": "'$NAME'", "messages": [{"role": "wizard", "content": "x"}]}'
expect_status "chat: content of the wrong type" 400 "content" /v1/chat/completions '{"model": "'$NAME'", "messages": [{"role": "user", "content": 5}]}'
expect_status "unknown endpoint" 404 "no such endpoint" /v1/embeddings '{}'
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' -X PUT "$URL/v1/completions")
[ "$code" = 405 ] && jq -e .error "$TMP/resp" >/dev/null && pass "wrong method: 405" || fail "PUT /v1/completions: $code"
head -c 100000 /dev/zero | tr '\0' a >"$TMP/big"
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' --data-binary @"$TMP/big" "$URL$C")
[ "$code" = 413 ] && jq -e .error "$TMP/resp" >/dev/null && pass "oversize body: 413" || fail "oversize body: $code"
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big" "$URL$C")
[ "$code" = 413 ] && jq -e .error "$TMP/resp" >/dev/null && pass "oversize chunked body: 413" || fail "oversize chunked body: $code"
# invalid UTF-8 in the prompt
printf '{"model": "%s", "prompt": "a\xff\xfeb"}' $NAME >"$TMP/bad_utf8"
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' --data-binary @"$TMP/bad_utf8" "$URL$C")
[ "$code" = 400 ] && pass "invalid UTF-8 prompt: 400 ($(jq -r .error.message "$TMP/resp"))" || fail "invalid UTF-8: $code $(cat "$TMP/resp")"
# the long request was not disturbed: same tokens as alone
wait $long_pid
post $C "$long" >"$TMP/long_alone.json"
if [ "$(jq -c .choices[0].token_ids "$TMP/long.json")" = "$(jq -c .choices[0].token_ids "$TMP/long_alone.json")" ] &&
   [ "$(jq '.choices[0].token_ids | length' "$TMP/long.json")" = 200 ]; then
    pass "a long request running through all of that: 200 tokens, the same as alone"
else fail "long request beside bad ones: $(head -c 200 "$TMP/long.json")"; fi
refused=$(metric roe_requests_total 'outcome="refused"'); failed=$(metric roe_requests_total 'outcome="failed"')
[ "$failed" = 0 ] && pass "no request failed (refused at parse or admission: ${refused:-0})" || fail "$failed requests failed"

# ---- a client that disconnects mid-stream frees its slot ----
# RoE K=16 makes each token 16 rows: the request runs for seconds, long after the checks below
stream_body='{"model": "'$NAME'", "prompt": "Once", "max_tokens": 240, "ignore_eos": true, "stream": true, "roe_k": 16, "roe_tau": 0.5}'
fin0=$(metric roe_requests_total 'outcome="finished_length"')
curl -sN --max-time $((120 * SLOW)) -d "$stream_body" "$URL$C" >"$TMP/s1" &
cpid=$!
for i in $(seq 1 $((100 * SLOW))); do [ "$(grep -c '^data: ' "$TMP/s1")" -ge 3 ] && break; sleep 0.05; done
kill $cpid 2>/dev/null; wait $cpid 2>/dev/null
if wait_metric roe_requests_running "" 0 10 && [ "$(metric roe_requests_total 'outcome="cancelled"')" = 1 ] &&
   [ "$(metric roe_requests_total 'outcome="finished_length"')" = "$fin0" ]; then
    pass "disconnect mid-stream: cancelled after $(grep -c '^data: ' "$TMP/s1") chunks, slot and KV blocks freed ($(metric roe_kv_cache_usage_ratio))"
else fail "disconnect mid-stream: running $(metric roe_requests_running), cancelled $(metric roe_requests_total 'outcome="cancelled"')"; fi
[ "$(metric roe_kv_cache_blocks 'state="used"')" = 0 ] && pass "no KV blocks held after the disconnect" || fail "KV blocks held: $(metric roe_kv_cache_blocks 'state="used"')"
out=$(post $C '{"model": "'$NAME'", "prompt": "Hello", "max_tokens": 4, "ignore_eos": true}')
[ "$(echo "$out" | jq '.usage.completion_tokens')" = 4 ] && pass "the server serves on after the disconnect" || fail "after disconnect: $out"
expect_fail "port in use" "Address already in use" "$ROE" serve --model $M --port "${URL##*:}"
stop_server 0

# ---- one slot, a queue of one: the third request gets 503; nothing is lost ----
start_server -- --model $M --max-seqs 1 --max-queue 1
slow='{"model": "'$NAME'", "prompt": "Once", "max_tokens": 1000, "ignore_eos": true, "stream": true, "roe_k": 16, "roe_tau": 0.5}'
curl -sN --max-time $((120 * SLOW)) -d "$slow" "$URL$C" >"$TMP/a" &
apid=$!
for i in $(seq 1 $((100 * SLOW))); do [ "$(grep -c '^data: ' "$TMP/a")" -ge 2 ] && break; sleep 0.05; done
curl -s --max-time $((120 * SLOW)) -d '{"model": "'$NAME'", "prompt": "Hi", "max_tokens": 5}' "$URL$C" >"$TMP/b" &
bpid=$!
wait_metric roe_requests_waiting "" 1 10 || fail "the second request is not waiting: $(metric roe_requests_waiting)"
expect_status "queue full" 503 "at capacity" $C '{"model": "'$NAME'", "prompt": "Hey", "max_tokens": 5}'
error_is "queue full" '.error.code == "server_overloaded" and .error.param == null and .error.type == "server_error"'
ra=$(curl -s -D - -o /dev/null -d '{"prompt": "Hey", "max_tokens": 5}' "$URL$C" | tr -d '\r' | sed -n 's/^Retry-After: //Ip')
[ "$ra" = 1 ] && pass "a full queue's 503 says Retry-After: 1" || fail "503 without Retry-After: '$ra'"
# the waiting one gives up: its place in the queue is freed, not kept
kill $bpid 2>/dev/null; wait $bpid 2>/dev/null
wait_metric roe_requests_waiting "" 0 10 && [ "$(metric roe_requests_total 'outcome="cancelled"')" = 1 ] &&
    pass "a client that leaves while its request waits: cancelled, out of the queue" ||
    fail "cancel while waiting: cancelled $(metric roe_requests_total 'outcome="cancelled"'), waiting $(metric roe_requests_waiting)"
curl -s --max-time $((120 * SLOW)) -d '{"model": "'$NAME'", "prompt": "Yo", "max_tokens": 5, "ignore_eos": true}' "$URL$C" >"$TMP/d" &
dpid=$!
wait_metric roe_requests_waiting "" 1 10 || fail "the next request is not waiting"
kill $apid 2>/dev/null; wait $apid 2>/dev/null  # the running one leaves: the waiting one runs
wait $dpid
[ "$(jq '.usage.completion_tokens' "$TMP/d")" = 5 ] && [ "$(metric roe_requests_total 'outcome="cancelled"')" = 2 ] &&
    pass "the running client leaves: its slot goes to the waiting request, which completes" ||
    fail "after the running client left: $(cat "$TMP/d"), cancelled $(metric roe_requests_total 'outcome="cancelled"')"
stop_server 0

# ---- too many connections: 429; then SIGTERM: running requests finish, /health turns 503 ----
start_server -- --model $M --max-connections 2
slow='{"model": "'$NAME'", "prompt": "Once", "max_tokens": 600, "ignore_eos": true, "stream": true, "roe_k": 4, "roe_tau": 0.5}'
curl -sN --max-time $((120 * SLOW)) -d "$slow" "$URL$C" >"$TMP/a" &
apid=$!
curl -sN --max-time $((120 * SLOW)) -d "$slow" "$URL$C" >"$TMP/b" &
bpid=$!
for i in $(seq 1 $((100 * SLOW))); do
    [ "$(grep -c '^data: ' "$TMP/a")" -ge 2 ] && [ "$(grep -c '^data: ' "$TMP/b")" -ge 2 ] && break; sleep 0.05; done
expect_status "too many connections" 429 "too many connections" $C '{"model": "'$NAME'", "prompt": "Hi", "max_tokens": 5}'
ra=$(curl -s -D - -o /dev/null -d '{"prompt": "Hey", "max_tokens": 5}' "$URL$C" | tr -d '\r' | sed -n 's/^Retry-After: //Ip')
[ "$ra" = 1 ] && pass "429 says Retry-After: 1" || fail "429 without Retry-After: '$ra'"
kill $bpid 2>/dev/null; wait $bpid 2>/dev/null
# A and this query: 2 connections
wait_metric roe_http_connections "" 2 10 || fail "connections after one left: $(metric roe_http_connections)"
kill -TERM $SERVER_PID
# the signal is handled asynchronously: /health turns 503 once the server has seen it
for i in $(seq 1 $((50 * SLOW))); do
    code=$(curl -s -o "$TMP/resp" -w '%{http_code}' --max-time 10 "$URL/health")
    [ "$code" = 503 ] && break
    sleep 0.1
done
[ "$code" = 503 ] && pass "/health is 503 while shutting down" || fail "/health while shutting down: $code"
wait $apid
fin=$(sed -n 's/^data: //p' "$TMP/a" | grep -v DONE | tail -1 | jq -r '.choices[0].finish_reason')
[ "$(grep '^data: ' "$TMP/a" | tail -1)" = "data: [DONE]" ] && [ "$fin" = length ] &&
    pass "SIGTERM: the running stream finished ($(stream_text "$TMP/a" | wc -c) bytes, finish $fin)" ||
    fail "SIGTERM: the stream ended as: $(tail -c 300 "$TMP/a")"
stop_server 0 signalled
grep -q "signal 15" "$TMP/server.log" && pass "the server logged the signal" || fail "no signal line: $(tail -3 "$TMP/server.log")"
finish
