#!/usr/bin/env bash
# A rank that dies or stops answering ends the job within the bound, never a hang:
#  - SIGKILL of rank 1 mid-generation: every other rank exits non-zero within the bound
#    (mpirun tears the job down), and the output names the rank and the operation the
#    survivors were waiting in;
#  - SIGSTOP of rank 1 (alive, silent): the others time out after ROE_COMM_TIMEOUT_S with
#    "<operation> timed out after 5 s waiting for rank(s) 1", and the job exits non-zero;
#  - SIGSTOP of the coordinator: the workers time out waiting for rank 0;
#  - the coordinator stopped before MPI_Init: the other rank's MPI_Init (which waits for
#    every rank and has no timeout of its own) is bounded by roe's start-up alarm.
. "$(dirname "$0")/../e2e/lib.bash"
. "$(dirname "$0")/lib.bash"
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]+"${pids[@]}"}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
bound=5
# a long generation: the olmoe fixture with a longer context (RoPE takes any position)
mkdir "$tmp/m"
for f in tests/fixtures/olmoe/model/*; do ln -s "$PWD/$f" "$tmp/m/"; done
rm "$tmp/m/config.json"
sed 's/"max_position_embeddings": [0-9]*/"max_position_embeddings": 16384/' tests/fixtures/olmoe/model/config.json >"$tmp/m/config.json"

# fault NAME SIGNAL VICTIM_RANK: starts 3 ranks, signals the victim after 1.5 s; sets
# $elapsed (seconds from the signal to mpirun's exit), $rc and $err
fault() {
    local sig=$2 victim=$3
    # the job must end by itself: `timeout` only stops a hang, far past the bound
    # ROE_LOG=info: each worker says when it is ready ("worker: rank N"); the signal waits for
    # both, so that it lands in the generation's bounded waits, not in MPI's own start-up
    ROE_LOG=info ROE_COMM_TIMEOUT_S=$bound timeout -s KILL $((bound * 6)) "${MPIRUN[@]}" -x ROE_COMM_TIMEOUT_S -x ROE_LOG -np 3 "$ROE" \
        generate --model "$tmp/m" --prompt-ids 1,2,3 --prompt-ids 4,5 --prompt-ids 6 --max-tokens 5000 \
        --ignore-eos >/dev/null 2>"$tmp/err" &
    local tp=$! mp="" vp="" i
    # the ranks start (slowly on a loaded machine), then generate for a while before the signal
    for i in $(seq 1 600); do
        mp=$(pgrep -P $tp | head -1)
        [ "$(pgrep -P "${mp:-0}" | wc -l)" -ge 3 ] && [ "$(grep -c 'info worker: rank' "$tmp/err")" -ge 2 ] && break
        sleep 0.1
    done
    sleep 1.5
    for p in $(pgrep -P "${mp:-0}"); do
        pids+=("$p")
        [ "$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep '^OMPI_COMM_WORLD_RANK=' | cut -d= -f2)" = "$victim" ] && vp=$p
    done
    if [ -z "$vp" ]; then
        kill -9 $tp "$mp" 2>/dev/null
        wait $tp
        rc=-1
        elapsed=999 # fails the bound check
        err="rank $victim not found among mpirun's children (did the job finish early?)"
        return
    fi
    local t0 t1
    t0=$(date +%s.%N)
    kill -"$sig" "$vp"
    wait $tp
    rc=$?
    t1=$(date +%s.%N)
    elapsed=$(echo "$t1 - $t0" | bc)
    err=$(grep -v '^roe\[[0-9]*\] info ' "$tmp/err")
    [ $rc = 137 ] && [ "$sig" != KILL ] && err="$err [timeout killed the hung job]"
    # every rank is gone
    for p in "${pids[@]}"; do [ -e "/proc/$p" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] && err="$err [rank process $p left behind]"; done
    pids=()
}

within() { [ "$(echo "$1 <= $2" | bc)" = 1 ]; }

fault kill KILL 1
if [ "$rc" != 0 ] && within "$elapsed" $((bound + 5)); then pass "SIGKILL rank 1: job exits $rc after ${elapsed}s"; else
    fail "SIGKILL rank 1: exit $rc after ${elapsed}s (bound ${bound}s): $err"; fi
case "$err" in *"rank 1"*) pass "SIGKILL: the output names rank 1" ;; *) fail "SIGKILL: rank 1 not named: $err" ;; esac
if echo "$err" | grep -Eq "roe\[[02]\] error .*(waiting in|timed out).*'[^']+'.*rank\(s\)"; then
    pass "SIGKILL: a survivor names the operation: $(echo "$err" | grep -Em1 "roe\[[02]\] error")"
else fail "SIGKILL: no survivor named the operation it waited in: $err"; fi

fault stop STOP 1
if [ "$rc" != 0 ] && within "$elapsed" $((bound + 5)); then pass "SIGSTOP rank 1: job exits $rc after ${elapsed}s"; else
    fail "SIGSTOP rank 1: exit $rc after ${elapsed}s (bound ${bound}s): $err"; fi
# the operation is whichever the others were in when rank 1 stopped: usually a MoE exchange,
# sometimes rank 0's gather of the step's replies (rank 1 stopped after its last layer)
if echo "$err" | grep -Eq "'[^']+' timed out after $bound s waiting for rank\(s\) [0-9, ]*1"; then
    pass "SIGSTOP: $(echo "$err" | grep -Em1 "timed out after")"
else fail "SIGSTOP: no timeout naming rank 1 and the operation: $err"; fi

fault stop0 STOP 0
if [ "$rc" != 0 ] && within "$elapsed" $((bound + 5)); then pass "SIGSTOP rank 0: job exits $rc after ${elapsed}s"; else
    fail "SIGSTOP rank 0: exit $rc after ${elapsed}s: $err"; fi
if echo "$err" | grep -Eq "timed out after $bound s waiting for rank\(s\) [0-9, ]*0"; then
    pass "SIGSTOP rank 0: $(echo "$err" | grep -Em1 "timed out after")"
else fail "SIGSTOP rank 0: no timeout naming rank 0: $err"; fi

# rank 0 stops itself before exec'ing roe: rank 1 waits in MPI_Init for it
printf '#!/usr/bin/env bash\n[ "$OMPI_COMM_WORLD_RANK" = 0 ] && kill -STOP $$\nexec "$@"\n' >"$tmp/stop0"
chmod +x "$tmp/stop0"
t0=$(date +%s.%N)
ROE_COMM_TIMEOUT_S=$bound timeout -s KILL $((bound * 6)) "${MPIRUN[@]}" -x ROE_COMM_TIMEOUT_S -np 2 "$tmp/stop0" "$ROE" \
    generate --model "$tmp/m" --prompt-ids 1,2,3 --max-tokens 5 >/dev/null 2>"$tmp/err"
rc=$?
elapsed=$(echo "$(date +%s.%N) - $t0" | bc)
err=$(cat "$tmp/err")
if [ "$rc" != 0 ] && [ "$rc" != 137 ] && within "$elapsed" $((bound + 10)); then
    pass "rank 0 stopped before MPI_Init: job exits $rc after ${elapsed}s"
else fail "rank 0 stopped before MPI_Init: exit $rc after ${elapsed}s (137: killed by timeout, a hang): $err"; fi
if echo "$err" | grep -q "rank 1: MPI_Init did not finish within $bound s"; then
    pass "start-up: $(echo "$err" | grep -m1 "MPI_Init did not finish")"
else fail "start-up: no message naming MPI_Init: $err"; fi
if pgrep -f "$tmp/stop0" >/dev/null; then
    fail "a rank of the stopped job is left behind"
    pkill -9 -f "$tmp/stop0"
fi
finish
