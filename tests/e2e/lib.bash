# lib.bash — helpers for the end-to-end tests of the roe binary (sourced, not run).
# Each test script takes the roe binary as $1, runs from the repository root, and exits
# 0 (pass), 1 (fail) or 77 (skipped, with the reason printed).
set -u
ROE=${1:?usage: $0 path/to/roe}
PASS=0
FAIL=0

pass() { PASS=$((PASS + 1)); echo "ok   $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }

# expect_fail NAME WANT_SUBSTRING CMD...: the command must exit non-zero without crashing
# (no signal: exit < 128) within 60 s, and print WANT_SUBSTRING on stderr.
expect_fail() {
    local name=$1 want=$2
    shift 2
    local err rc
    err=$(timeout 60 "$@" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -eq 0 ]; then fail "$name: exit 0, expected an error"; return; fi
    if [ $rc -eq 124 ]; then fail "$name: timed out (hang)"; return; fi
    if [ $rc -ge 128 ]; then fail "$name: killed by signal $((rc - 128)): $err"; return; fi
    case "$err" in
        *"$want"*) pass "$name (exit $rc: $(echo "$err" | head -1))" ;;
        *) fail "$name: message lacks '$want': $err" ;;
    esac
}

# json_ids FILE KEY N: the N-th (0-based) one-line JSON list named KEY, as space-separated ids
json_ids() {
    grep "\"$2\": \[" "$1" | sed -n "$(($3 + 1))p" | sed -e 's/.*\[//' -e 's/\].*//' -e 's/,/ /g' | tr -s ' ' | sed 's/^ //'
}

finish() {
    echo "$PASS passed, $FAIL failed"
    [ $FAIL -eq 0 ]
}
