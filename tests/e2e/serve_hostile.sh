#!/usr/bin/env bash
# `roe serve` against slow, many and odd clients (issue 18), loopback only, bounded in time:
#  - 4 x --max-connections slow clients, each from its own loopback address (heads and bodies
#    trickled a byte a second, reconnecting at once), while a normal client that honours 429 /
#    Retry-After gets >= 95% of its requests answered within 30 s each and /health (and
#    /metrics) answer within 1 s throughout;
#  - a per-address limit: 429 with Retry-After beyond it;
#  - a head or a body that trickles in past --header-timeout / --body-timeout: 408, in JSON;
#  - a stream waiting for the engine longer than --timeout is not cut: it ends with [DONE];
#  - a client that half-closes after sending still gets its answer (streamed or not);
#  - malformed or oversized HTTP, on a fresh or a kept-alive connection: OpenAI-style JSON
#    errors, never libmicrohttpd's HTML pages.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
M=models/olmoe-tiny
[ -f $M/model.safetensors ] || { echo "skipped: $M has no weights (tools/train_bundled.py)"; exit 77; }
HC=$(dirname "$ROE")/tests/hostile_clients
[ -x "$HC" ] || { echo "skipped: no $HC (built with the tests)"; exit 77; }
ip -4 addr show lo 2>/dev/null | grep -q "127.0.0.1/8" || [ "$(uname)" = Linux ] ||
    { echo "skipped: 127.0.0.0/8 is not all loopback here"; exit 77; }
C=/v1/completions

# ---- many slow clients from many addresses, one normal client, /health throughout ----
start_server -- --model $M --max-model-len 256 --max-connections 8 --max-seqs 4
port=${URL##*:}
out=$(timeout $((150 * SLOW)) "$HC" --port "$port" --slow 32 --requests 30 --interval 0.5 --seconds $((100 * SLOW)))
echo "  $out"
echo "$out" | jq -e '.pass and .answered >= 29 and .health_failed == 0' >/dev/null &&
    pass "32 slow clients (4 x --max-connections, 32 addresses): the normal client got $(echo "$out" | jq .answered)/30 answered (slowest $(echo "$out" | jq .slowest_s) s), /health and /metrics within $(echo "$out" | jq .health_worst_s) s" ||
    fail "under slow clients: $out"
[ "$(metric roe_http_connections_closed_total 'reason="evicted"')" != 0 ] && [ "$(metric roe_http_connections_closed_total 'reason="timeout"')" != 0 ] &&
    pass "slow clients were evicted ($(metric roe_http_connections_closed_total 'reason="evicted"')) and timed out ($(metric roe_http_connections_closed_total 'reason="timeout"'))" ||
    fail "no evictions or timeouts counted: $(curl -s "$URL/metrics" | grep closed_total)"
stop_server 0

# ---- per address; deadlines; --timeout never cuts a stream waiting for the engine ----
start_server -- --model $M --max-model-len 1024 --max-connections 8 --max-connections-per-address 4 \
    --header-timeout 2 --body-timeout 3 --timeout 2 --max-seqs 1
port=${URL##*:}
out=$("$HC" --port "$port" --hold 7 --from 127.0.0.5)
[ "$(echo "$out" | jq .refused_429)" = 3 ] && pass "--max-connections-per-address 4: 7 connections from one address, 3 told 429 with Retry-After" ||
    fail "per-address limit: $out"
slow_head() { # slow_head SECONDS: a head trickled a byte a second; prints the answer
    { printf 'GET /health HTTP/1.1\r\n'; for i in $(seq 1 "$1"); do printf 'X'; sleep 1; done; } |
        timeout $(($1 + 10)) curl -s --max-time $(($1 + 8)) telnet://127.0.0.1:"$port" 2>/dev/null
}
t0=$(date +%s)
got=$(slow_head 8)
dt=$(($(date +%s) - t0))
echo "$got" | grep -q "^HTTP/1.1 408" && echo "$got" | grep -q '"code":"request_timeout"' && [ $dt -le 6 ] &&
    pass "a head trickled a byte a second: 408 in JSON after $dt s (--header-timeout 2)" || fail "slow head after $dt s: $got"
t0=$(date +%s)
got=$({ printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n'
        for i in $(seq 1 8); do printf ' '; sleep 1; done; } | timeout 20 curl -s --max-time 15 telnet://127.0.0.1:"$port" 2>/dev/null)
dt=$(($(date +%s) - t0))
echo "$got" | grep -q "^HTTP/1.1 408" && echo "$got" | grep -q '"code":"request_timeout"' && [ $dt -le 7 ] &&
    pass "a body trickled a byte a second: 408 in JSON after $dt s (--body-timeout 3)" || fail "slow body after $dt s: $got"
# one slot: B waits in the queue behind A (K=64 steps) for longer than --timeout 2. A's length is
# calibrated to last about 5 s on this build (a sanitizer build is ~10x slower than a release one;
# an AMX host runs K=64's rows fast: up to 1,000 tokens, hence --max-model-len 1024 here)
probe=$(curl -s --max-time 120 -o /dev/null -w '%{time_total}' \
    -d '{"prompt": "Once", "max_tokens": 8, "ignore_eos": true, "roe_k": 64, "roe_tau": 0.5}' "$URL$C")
ntok=$(awk -v t="$probe" 'BEGIN { n = int(5 * 8 / (t > 0.001 ? t : 0.001)); print (n < 16 ? 16 : n > 1000 ? 1000 : n) }')
slow='{"prompt": "Once", "max_tokens": '$ntok', "ignore_eos": true, "roe_k": 64, "roe_tau": 0.5}'
curl -s --max-time 300 -d "$slow" "$URL$C" >"$TMP/a.json" &
apid=$!
sleep 0.5
dt=$(curl -sN --max-time 300 -o "$TMP/b.sse" -w '%{time_total}' -d '{"prompt": "Hi", "max_tokens": 5, "ignore_eos": true, "stream": true}' "$URL$C")
wait $apid
waited=$(metric roe_request_queue_time_seconds_sum)
[ "$(grep '^data: ' "$TMP/b.sse" | tail -1)" = "data: [DONE]" ] && awk -v w="$waited" 'BEGIN{exit !(w > 2)}' &&
    [ "$(jq .usage.completion_tokens "$TMP/a.json")" = "$ntok" ] &&
    pass "a stream that waited ${waited%.*}+ s in the queue (--timeout 2) ends with [DONE] after $dt s; the non-streamed one too" ||
    fail "stream (queued $waited s, $dt s): $(tail -c 200 "$TMP/b.sse"), A: $(head -c 200 "$TMP/a.json")"
stop_server 0

# ---- half-closed clients; malformed and oversized HTTP answered in JSON ----
start_server -- --model $M --max-model-len 256
port=${URL##*:}
req() { # req BODY: a completion request's bytes
    printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "${#1}" "$1"
}
req '{"prompt": "Once upon a time", "max_tokens": 6, "ignore_eos": true}' >"$TMP/half"
"$HC" --port "$port" --raw "$TMP/half" --half >"$TMP/half.out"
grep -q "^HTTP/1.1 200" "$TMP/half.out" && grep -q '"completion_tokens":6' "$TMP/half.out" &&
    pass "half-closed after sending: the answer comes (after an interim 100 Continue)" || fail "half-close: $(cat "$TMP/half.out")"
req '{"prompt": "Once upon a time", "max_tokens": 6, "ignore_eos": true, "stream": true}' >"$TMP/half"
"$HC" --port "$port" --raw "$TMP/half" --half >"$TMP/half.out"
grep -q "^HTTP/1.1 200" "$TMP/half.out" && grep -q "data: \[DONE\]" "$TMP/half.out" &&
    pass "half-closed after sending, streamed: every chunk and [DONE]" || fail "half-close stream: $(tail -c 300 "$TMP/half.out")"
raw() { # raw NAME WANT_STATUS WANT_CODE BYTES_FILE: the answer is that status with a JSON error
    "$HC" --port "$port" --raw "$4" >"$TMP/raw.out"
    local first body
    first=$(head -1 "$TMP/raw.out" | tr -d '\r')
    body=$(sed '1,/^\r$/d' "$TMP/raw.out" | sed -n '/^{/p' | tail -1)
    if [ "${first#HTTP/1.1 $2}" != "$first" ] && echo "$body" | jq -e --arg c "$3" '.error.message and .error.code == $c' >/dev/null 2>&1 &&
        ! grep -qi "<html" "$TMP/raw.out"; then
        pass "$1: $2 $(echo "$body" | jq -r .error.message)"
    else fail "$1: $(head -c 400 "$TMP/raw.out")"; fi
}
printf 'hello there\r\n\r\n' >"$TMP/r1"; raw "a request line that is not HTTP" 400 malformed_request "$TMP/r1"
printf 'GET /health HTTP/2.0\r\nHost: x\r\n\r\n' >"$TMP/r2"; raw "HTTP/2.0 in plain text" 505 http_version_not_supported "$TMP/r2"
printf 'GET /health HTTP/1.1\r\n\r\n' >"$TMP/r3"; raw "HTTP/1.1 without Host" 400 malformed_request "$TMP/r3"
{ printf 'GET /health HTTP/1.1\r\nHost: x\r\nX-Big: '; head -c 70000 /dev/zero | tr '\0' a; printf '\r\n\r\n'; } >"$TMP/r4"
raw "headers over 64 KiB" 431 request_header_too_large "$TMP/r4"
printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n' >"$TMP/r5"
raw "Content-Length over --max-body-bytes" 413 request_too_large "$TMP/r5"
printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n' >"$TMP/r6"
raw "Content-Length with Transfer-Encoding" 400 malformed_request "$TMP/r6"
# the same kinds on a kept-alive connection, after a good request: libmicrohttpd parses those
printf 'GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n' >"$TMP/r7"
"$HC" --port "$port" --raw "$TMP/r7" >"$TMP/raw.out"
grep -q '{"status": "ok"}' "$TMP/raw.out" && grep -q "HTTP/1.1 400 " "$TMP/raw.out" &&
    grep -q '"code":"malformed_request"' "$TMP/raw.out" && ! grep -qi "<html" "$TMP/raw.out" &&
    pass "a malformed request after a good one on a kept-alive connection: JSON 400, not libmicrohttpd's page" ||
    fail "kept-alive malformed: $(cat "$TMP/raw.out")"
{ printf 'GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nX-Big: '; head -c 120000 /dev/zero | tr '\0' a
  printf '\r\n\r\n'; } >"$TMP/r8"
"$HC" --port "$port" --raw "$TMP/r8" >"$TMP/raw.out"
grep -q "HTTP/1.1 431 " "$TMP/raw.out" && grep -q '"error"' "$TMP/raw.out" && ! grep -qi "<html" "$TMP/raw.out" &&
    pass "oversized headers on a kept-alive connection: JSON 431" || fail "kept-alive oversized: $(head -c 600 "$TMP/raw.out")"
stop_server 0
finish
