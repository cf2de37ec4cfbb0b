# serve_lib.bash — helpers for the `roe serve` tests (sourced after lib.bash, not run).
# A test starts a real server on a free port (--port 0 --port-file), talks to it with curl and
# jq, and always kills it at exit (trap). Every wait is bounded.
command -v curl >/dev/null || { echo "skipped: curl is not installed (tools/install-deps.sh installs it)"; exit 77; }
command -v jq >/dev/null || { echo "skipped: jq is not installed (tools/install-deps.sh installs it)"; exit 77; }
TMP=$(mktemp -d)
SERVER_PID=
URL=
# a process or a process group to kill at exit (e.g. mpirun), besides the server
EXTRA_PIDS=()
cleanup() {
    for p in $SERVER_PID "${EXTRA_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
# one engine thread: ctest runs tests side by side on few cores, and OpenMP threads that wait
# for a descheduled sibling make every step crawl
export OMP_NUM_THREADS=1
# debug builds with sanitizers run several times slower: scale the time bounds
SLOW=1
if "$ROE" --version >/dev/null 2>&1 && nm -C "$ROE" 2>/dev/null | grep -q __asan_init; then SLOW=6; fi

# start_server LAUNCHER... -- ARGS...: runs `LAUNCHER $ROE serve ARGS` in the background (LAUNCHER
# may be empty) and waits for it to listen; sets SERVER_PID and URL. Fails the test if it does not.
start_server() {
    local launcher=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do launcher+=("$1"); shift; done
    [ "${1:-}" = -- ] && shift
    rm -f "$TMP/port"
    "${launcher[@]}" "$ROE" serve --port 0 --port-file "$TMP/port" "$@" >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    local i
    for i in $(seq 1 $((300 * SLOW))); do
        [ -s "$TMP/port" ] && break
        kill -0 $SERVER_PID 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -s "$TMP/port" ]; then
        echo "FAIL server did not start: $(tail -5 "$TMP/server.log")"
        exit 1
    fi
    URL="http://127.0.0.1:$(cat "$TMP/port")"
}

# stop_server [WANT_RC [signalled]]: SIGTERM, then the server must exit (with WANT_RC, default 0)
# in time. With "signalled" the test already sent its SIGTERM: a second one would mean "stop at
# once" (the default action, exit 143), so none is sent and the server's own exit is awaited.
stop_server() {
    local want=${1:-0} i rc
    [ "${2:-}" = signalled ] || kill -TERM $SERVER_PID 2>/dev/null
    for i in $(seq 1 $((300 * SLOW))); do
        kill -0 $SERVER_PID 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 $SERVER_PID 2>/dev/null; then
        fail "server did not exit within $((30 * SLOW)) s of SIGTERM"
        kill -9 $SERVER_PID
    fi
    wait $SERVER_PID
    rc=$?
    if [ "$rc" = "$want" ]; then pass "server exits $rc after SIGTERM"; else
        fail "server exited $rc after SIGTERM, expected $want: $(tail -3 "$TMP/server.log")"; fi
    SERVER_PID=
}

# post PATH BODY [CURL ARGS...]: the response body on stdout; the status code in $TMP/code
post() {
    local path=$1 body=$2
    shift 2
    curl -s --max-time $((120 * SLOW)) -o "$TMP/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "$body" "$@" "$URL$path" >"$TMP/code"
    cat "$TMP/resp"
}

# expect_status NAME WANT_CODE WANT_SUBSTRING PATH BODY: an OpenAI-style error with that code
expect_status() {
    local name=$1 want=$2 sub=$3 path=$4 body=$5 out code
    out=$(post "$path" "$body")
    code=$(cat "$TMP/code")
    if [ "$code" != "$want" ]; then fail "$name: HTTP $code, expected $want: $out"; return; fi
    if ! echo "$out" | jq -e '.error.message and .error.type' >/dev/null 2>&1; then
        fail "$name: no OpenAI-style error body: $out"; return; fi
    case "$out" in
        *"$sub"*) pass "$name (HTTP $code: $(echo "$out" | jq -r .error.message))" ;;
        *) fail "$name: message lacks '$sub': $out" ;;
    esac
}

# metric NAME [LABEL_FILTER]: the value of a /metrics series (first match)
metric() {
    curl -s --max-time 10 "$URL/metrics" | grep "^$1{" | grep -F -- "${2:-}" | head -1 | awk '{print $2}'
}

# wait_metric NAME FILTER WANT SECONDS: waits until the series equals WANT (numerically)
wait_metric() {
    local i v
    for i in $(seq 1 $(($4 * 10 * SLOW))); do
        v=$(metric "$1" "$2")
        [ -n "$v" ] && awk -v a="$v" -v b="$3" 'BEGIN{exit !(a == b)}' && return 0
        sleep 0.1
    done
    return 1
}

# stream_text FILE: the concatenated text of the SSE chunks in FILE (completions or chat)
stream_text() {
    sed -n 's/^data: //p' "$1" | grep -v '^\[DONE\]$' | jq -j '.choices[0] | (.text // .delta.content // empty)'
}
