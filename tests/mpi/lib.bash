# lib.bash — helpers for the multi-rank tests (sourced after tests/e2e/lib.bash).
# mpirun runs as root and oversubscribes the 2-core CI machine; one OpenMP thread per rank.
command -v mpirun >/dev/null || { echo "skipped: mpirun is not installed (tools/install-deps.sh installs openmpi-bin)"; exit 77; }
MPIRUN=(mpirun --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1)
export OMP_NUM_THREADS=1

# run_n N OUT LOGITS ARGS...: `roe ARGS --logits-out LOGITS` on N ranks (N = 0: no mpirun),
# stdout to OUT; returns roe's exit code. stderr goes to OUT.err.
run_n() {
    local n=$1 out=$2 logits=$3
    shift 3
    if [ "$n" = 0 ]; then
        timeout 120 "$ROE" "$@" --logits-out "$logits" >"$out" 2>"$out.err"
    else
        timeout 120 "${MPIRUN[@]}" -np "$n" "$ROE" "$@" --logits-out "$logits" >"$out" 2>"$out.err"
    fi
}
