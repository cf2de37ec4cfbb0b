#!/usr/bin/env bash
# Who may use `roe serve` (issue 18): with --api-key (or ROE_API_KEY) no key, a wrong key and the
# right key give 401, 401, 200 on every route but /health (/metrics too, unless
# --public-metrics), 401 in OpenAI's error shape; HTTPS with a certificate the test makes itself
# (openssl), the right key over it; a warning at start when listening beyond loopback without a
# key; `roe env` never prints the key.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
M=models/olmoe-tiny
[ -f $M/model.safetensors ] || { echo "skipped: $M has no weights (tools/train_bundled.py)"; exit 77; }
command -v openssl >/dev/null || { echo "skipped: openssl is not installed (tools/install-deps.sh installs it)"; exit 77; }
KEY=sk-test-$$-$RANDOM

# code PATH [KEY] [BODY]: the HTTP status of a request (GET without a body, POST with one)
code() {
    local args=(-s -o "$TMP/resp" -w '%{http_code}' --max-time 60)
    [ -n "${2:-}" ] && args+=(-H "Authorization: Bearer $2")
    [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' -d "$3")
    curl "${args[@]}" "${CURL_EXTRA[@]}" "$URL$1"
}
CURL_EXTRA=()
check_keys() { # check_keys LABEL: every route with no key, a wrong key and the right one
    local body='{"prompt": "Q: 2 + 2 = ? A:", "max_tokens": 3}' got
    for route in "/v1/completions|$body" "/v1/chat/completions|{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 2}" \
                 "/v1/models|" "/v1/models/olmoe-tiny|" "/tokenize|{\"prompt\": \"hi\"}" "/metrics|"; do
        local path=${route%%|*} b=${route#*|}
        got="$(code "$path" "" "$b") $(code "$path" wrong-key "$b") $(code "$path" "$KEY" "$b")"
        [ "$got" = "401 401 200" ] && pass "$1 $path: no key, wrong key, right key: $got" || fail "$1 $path: $got"
    done
    code /v1/completions "" "$body" >/dev/null
    jq -e '.error.code == "invalid_api_key" and .error.type == "invalid_request_error" and (.error.message | length) > 0' "$TMP/resp" >/dev/null &&
        pass "$1 401 in OpenAI's shape: $(jq -c .error "$TMP/resp")" || fail "$1 401 body: $(cat "$TMP/resp")"
    got=$(curl -s -D - -o /dev/null "${CURL_EXTRA[@]}" "$URL/v1/models" | tr -d '\r' | sed -n 's/^WWW-Authenticate: //Ip')
    [ "$got" = Bearer ] && pass "$1 401 says WWW-Authenticate: Bearer" || fail "$1 WWW-Authenticate: '$got'"
    [ "$(code /health)" = 200 ] && pass "$1 /health needs no key" || fail "$1 /health without a key: $(cat "$TMP/resp")"
    [ "$(code /v1/models "" "" ; echo) $(CURL_EXTRA+=(-H "Authorization: bearer $KEY"); code /v1/models)" = "401 200" ] &&
        pass "$1 the scheme is case-insensitive (bearer)" || fail "$1 lower-case bearer"
}

start_server -- --model $M --max-model-len 256 --api-key "$KEY"
check_keys "--api-key:"
stop_server 0

# the key from the environment; /metrics public on request
ROE_API_KEY=$KEY start_server -- --model $M --max-model-len 256 --public-metrics
[ "$(code /v1/models) $(code /v1/models "$KEY")" = "401 200" ] && pass "ROE_API_KEY: 401 without it, 200 with it" || fail "ROE_API_KEY"
[ "$(code /metrics)" = 200 ] && pass "--public-metrics: /metrics without the key" || fail "--public-metrics: $(code /metrics)"
stop_server 0
out=$(ROE_API_KEY=$KEY "$ROE" env 2>&1)
echo "$out" | grep -q "ROE_API_KEY=(set, not shown)" && ! echo "$out" | grep -q -- "$KEY" &&
    pass "roe env: ROE_API_KEY set, its value not shown" || fail "roe env shows: $(echo "$out" | grep ROE_API_KEY)"

# ---- HTTPS: a certificate made here, the key over it ----
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 1 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 || { fail "openssl could not make a certificate"; finish; exit 1; }
start_server -- --model $M --max-model-len 256 --api-key "$KEY" --ssl-certfile "$TMP/cert.pem" --ssl-keyfile "$TMP/key.pem"
URL="https://127.0.0.1:${URL##*:}"
CURL_EXTRA=(--cacert "$TMP/cert.pem")
check_keys "HTTPS:"
out=$(curl -sN "${CURL_EXTRA[@]}" -H "Authorization: Bearer $KEY" -d '{"prompt": "Once", "max_tokens": 4, "stream": true}' "$URL/v1/completions")
[ "$(echo "$out" | grep '^data: ' | tail -1)" = "data: [DONE]" ] && pass "HTTPS: a stream ends with [DONE]" || fail "HTTPS stream: $out"
curl -s --max-time 5 -o /dev/null "http://127.0.0.1:${URL##*:}/health" && fail "plain HTTP was answered on the HTTPS port" ||
    pass "plain HTTP on the HTTPS port: refused"
grep -q "on https://" "$TMP/server.log" && pass "the server says https://" || fail "start line: $(head -1 "$TMP/server.log")"
stop_server 0
expect_fail "a certificate without its key" "go together" "$ROE" serve --model $M --port 0 --ssl-certfile "$TMP/cert.pem"
expect_fail "a key that is not the certificate's" "certificate or key" "$ROE" serve --model $M --port 0 \
    --ssl-certfile "$TMP/cert.pem" --ssl-keyfile "$TMP/cert.pem"

# ---- a warning when open beyond loopback without a key (0.0.0.0, port 0, stopped at once) ----
URL=http://127.0.0.1
start_server -- --model $M --max-model-len 256 --host 0.0.0.0
grep -q "WARNING: listening on 0.0.0.0 (beyond this machine) without an API key" "$TMP/server.log" &&
    pass "--host 0.0.0.0 without a key: a warning at start" || fail "no warning: $(cat "$TMP/server.log")"
stop_server 0
start_server -- --model $M --max-model-len 256 --host 0.0.0.0 --api-key "$KEY"
! grep -q WARNING "$TMP/server.log" && pass "--host 0.0.0.0 with a key: no warning" || fail "a warning with a key: $(cat "$TMP/server.log")"
stop_server 0
start_server -- --model $M --max-model-len 256
! grep -q WARNING "$TMP/server.log" && pass "loopback without a key: no warning" || fail "a warning on loopback"
stop_server 0
finish
