#!/usr/bin/env bash
# A rank of `roe serve` dies under load (labels mpi, faults): the server runs on 2 ranks
# (build/roe-mpirun -n 2) with the default settings (--timeout 60, ROE_LIVENESS_S 5), 16
# requests are in flight (8 streamed, 8 not), and rank 1 is killed with SIGKILL. The death must
# be found within 10 s (the liveness bound: every wait for a rank once serving, with heartbeats
# on the control plane while idle), and then
#  - every in-flight request answered: 503 naming the dead rank (a streamed one, whose 200
#    headers went out, ends with an error event carrying the same, then data: [DONE]: never cut);
#  - every request that arrives after the kill: 503 as well;
#  - /health 503 at once;
#  - every process gone within 15 s of the kill, mpirun included (it ends about twice its
#    signal delay after the death, 2 x (ROE_LIVENESS_S + 1) s: Open MPI 4.1 waits that delay
#    twice while tearing down a job whose rank was killed).
. "$(dirname "$0")/../e2e/lib.bash"
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/../e2e/serve_lib.bash"
M=models/olmoe-tiny
[ -f $M/model.safetensors ] || { echo "skipped: $M has no weights (tools/train_bundled.py)"; exit 77; }
WRAP=$(dirname "$ROE")/roe-mpirun
[ -x "$WRAP" ] || { echo "skipped: no roe-mpirun next to $ROE"; exit 77; }
bound=5 # ROE_LIVENESS_S's default
unset ROE_COMM_TIMEOUT_S ROE_LIVENESS_S
# the ranks' steps are CPU time: on a machine loaded beyond its cores (load average L on N
# cores) a step, and with it every answer, takes up to ceil(L / N) times longer
LOADF=$(awk -v n="$(nproc)" '{f = int($1 / n + 0.999); print (f < 1 ? 1 : f)}' /proc/loadavg)
[ "$LOADF" -gt 1 ] && echo "note: load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores: time bounds x $LOADF"
SLOW=$((SLOW * LOADF))

# the wrapper gives mpirun the time the coordinator needs (odls_base_sigkill_timeout)
"$WRAP" --dry-run -n 2 -- serve | grep -q "odls_base_sigkill_timeout $((bound + 1))" &&
    pass "roe-mpirun: serve gets mpirun's signals ROE_LIVENESS_S + 1 s apart" ||
    fail "roe-mpirun --dry-run serve: $("$WRAP" --dry-run -n 2 -- serve)"

rm -f "$TMP/port"
"$WRAP" -n 2 --roe "$ROE" -- serve --port 0 --port-file "$TMP/port" --model $M --max-seqs 16 \
    --max-model-len 1024 >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for i in $(seq 1 $((300 * SLOW))); do
    [ -s "$TMP/port" ] && break
    kill -0 $SERVER_PID 2>/dev/null || break
    sleep 0.1
done
[ -s "$TMP/port" ] || { fail "server did not start: $(tail -5 "$TMP/server.log")"; finish; exit 1; }
URL="http://127.0.0.1:$(cat "$TMP/port")"
ranks=$(pgrep -P $SERVER_PID)
rank0= rank1=
for p in $ranks; do
    EXTRA_PIDS+=("$p")
    r=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep '^OMPI_COMM_WORLD_RANK=' | cut -d= -f2)
    [ "$r" = 0 ] && rank0=$p
    [ "$r" = 1 ] && rank1=$p
done
[ -n "$rank1" ] || { fail "rank 1 not found among mpirun's children ($ranks)"; finish; exit 1; }

# 16 requests, long enough to be in flight when the rank dies
req() { # req I STREAM: one request in the background; status and time in $TMP/c$I, body in $TMP/r$I
    curl -sN --max-time $((120 * SLOW)) -o "$TMP/r$1" -w '%{http_code} %{time_total}\n' \
        -d '{"model": "olmoe-tiny", "prompt": "Once upon a time '"$1"'", "max_tokens": 900, "ignore_eos": true, "stream": '"$2"'}' \
        "$URL/v1/completions" >"$TMP/c$1" 2>&1
}
pids=()
for i in $(seq 0 15); do
    req "$i" $([ $((i % 2)) = 0 ] && echo true || echo false) &
    pids+=($!)
done
wait_metric roe_requests_running "" 16 $((30 * SLOW)) && pass "16 requests in flight" ||
    fail "16 requests did not start: running $(metric roe_requests_running), waiting $(metric roe_requests_waiting)"
for i in $(seq 1 $((100 * SLOW))); do # the first stream is producing tokens
    n=$(grep -c '^data: ' "$TMP/r0" 2>/dev/null)
    [ "${n:-0}" -ge 2 ] && break
    sleep 0.1
done

t0=$(date +%s.%N)
kill -9 "$rank1"
# /health, polled: when it turns 503 (after the death is found), and that it stays so
( while :; do
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$URL/health" 2>/dev/null)
      echo "$(date +%s.%N) $code"
      [ "$code" = 503 ] || [ "$code" = 000 ] && [ -n "${seen:-}" ] && break
      [ "$code" = 503 ] && seen=1
      sleep 0.2
  done >"$TMP/health.log" ) &
hpid=$!
EXTRA_PIDS+=("$hpid")
sleep 0.5
for i in $(seq 16 19); do # new requests, after the kill
    req "$i" $([ $((i % 2)) = 0 ] && echo true || echo false) &
    pids+=($!)
done
wait "${pids[@]}"
t_answered=$(date +%s.%N)
# every answer came well before --timeout (60 s) could have cut anything
# the job ends by itself; mpirun waits ROE_COMM_TIMEOUT_S + 5 s before its SIGKILL
gone() { [ ! -e "/proc/$1" ] || [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" = Z ]; }
t_r0=
for i in $(seq 1 $(((2 * bound + 40) * 10 * SLOW))); do
    [ -z "$t_r0" ] && gone "$rank0" && t_r0=$(date +%s.%N)
    kill -0 $SERVER_PID 2>/dev/null || break
    sleep 0.1
done
t_exit=$(date +%s.%N)
[ -z "$t_r0" ] && t_r0=$t_exit
if kill -0 $SERVER_PID 2>/dev/null; then
    fail "mpirun still running $(echo "$t_exit - $t0" | bc) s after rank 1 died: a hang"
    rc=-1
else
    wait $SERVER_PID
    rc=$?
fi
SERVER_PID=

# every answer: a 503, or a stream ending with an error event and [DONE], naming rank 1
ok=0
for i in $(seq 0 19); do
    code=$(cut -d' ' -f1 "$TMP/c$i")
    body=$(cat "$TMP/r$i" 2>/dev/null)
    if [ "$code" = 503 ] && echo "$body" | jq -e '.error.code == "engine_failed" or .error.code == "shutting_down"' >/dev/null 2>&1; then
        msg=$(echo "$body" | jq -r .error.message)
    elif [ "$code" = 200 ] && [ "$(grep '^data: ' "$TMP/r$i" | tail -1)" = "data: [DONE]" ] &&
        grep '^data: {"error"' "$TMP/r$i" >/dev/null; then
        msg=$(grep '^data: {"error"' "$TMP/r$i" | head -1 | sed 's/^data: //' | jq -r .error.message)
    else
        fail "request $i: HTTP $code, not a 503 nor a stream ending in an error: $(tail -c 300 "$TMP/r$i" 2>/dev/null)"
        continue
    fi
    case "$msg" in
        *"rank(s) 1"* | *"shutting down"*) ok=$((ok + 1)) ;;
        *) fail "request $i: the error does not name rank 1: $msg" ;;
    esac
done
[ $ok = 20 ] && pass "16 in-flight and 4 new requests: each a 503 (or an error event) naming rank 1: $msg"
answered=$(echo "$t_answered - $t0" | bc)
[ "$(echo "$answered <= 10 * $SLOW" | bc)" = 1 ] &&
    pass "every request answered ${answered} s after the kill (bound ${bound} s)" ||
    fail "requests answered ${answered} s after the kill (bound ${bound} s)"
r0=$(echo "$t_r0 - $t0" | bc)
[ "$(echo "$r0 <= 12 * $SLOW" | bc)" = 1 ] && pass "the coordinator (rank 0) exits ${r0} s after the kill" ||
    fail "the coordinator exits ${r0} s after the kill (bound ${bound} s)"
elapsed=$(echo "$t_exit - $t0" | bc)
if [ "$rc" != 0 ] && [ "$rc" != -1 ] && [ "$(echo "$elapsed <= 15 * $SLOW" | bc)" = 1 ]; then
    pass "the job exits $rc, ${elapsed} s after the kill"
else fail "the job: exit $rc after ${elapsed} s: $(tail -5 "$TMP/server.log")"; fi
h503=$(awk '$2 == 503 {print $1; exit}' "$TMP/health.log")
h200=$(awk -v t="${h503:-0}" '$2 == 200 && $1 > t {print $1; exit}' "$TMP/health.log")
if [ -n "$h503" ] && [ -z "$h200" ] && [ "$(echo "$h503 - $t0 <= 10 * $SLOW" | bc)" = 1 ]; then
    pass "/health: 503 $(echo "$h503 - $t0" | bc) s after the kill, and never 200 again"
else fail "/health after the kill (at $t0): 503 at ${h503:-never}, 200 after it at ${h200:-never}: $(awk '{print $2}' "$TMP/health.log" | uniq -c | tr -s ' \n' ' ')"; fi
cp "$TMP/health.log" /tmp/roe_health_debug.log
grep -q "timed out after $bound s waiting for rank(s) 1" "$TMP/server.log" &&
    pass "the coordinator's log names rank 1: $(grep -m1 'the engine failed' "$TMP/server.log" | cut -c1-160)" ||
    fail "no log line naming rank 1: $(tail -5 "$TMP/server.log")"
left=
for p in $ranks; do [ -e "/proc/$p" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] && left="$left $p"; done
[ -z "$left" ] && pass "no rank process left behind" || fail "rank processes left:$left"
[ $FAIL = 0 ] || { echo "--- server log"; tail -30 "$TMP/server.log"; }
finish
