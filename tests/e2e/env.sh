#!/usr/bin/env bash
# `roe env` and the one table of environment knobs (base/env.c): it lists every knob of the
# table with its default, shows a set value and marks a bad one (exit 2); `roe --help` points
# at it; no ROE_* variable is read outside the table; every knob that can be malformed has its
# bad-value case in bad_input.sh.
. "$(dirname "$0")/lib.bash"

names=$(grep -o '\.name = "ROE_[A-Z0-9_]*"' base/env.c | grep -o 'ROE_[A-Z0-9_]*')
[ "$(echo "$names" | wc -l)" -ge 11 ] && pass "the table declares $(echo "$names" | wc -l) knobs" ||
    fail "too few knobs parsed from base/env.c: $names"

out=$(env -u ROE_EP_EARLY_US "$ROE" env 2>&1) && pass "roe env: exit 0" || fail "roe env: exit $?: $out"
for n in $names; do
    echo "$out" | grep -q "^$n " && pass "roe env lists $n" || fail "roe env lacks $n"
done
echo "$out" | grep -q "^ROE_EP_EARLY_US .*an integer in \[0, 10000000\]; default: 100$" &&
    pass "roe env: ROE_EP_EARLY_US's range and default" || fail "roe env: ROE_EP_EARLY_US: $out"
for n in OMPI_COMM_WORLD_SIZE OMPI_COMM_WORLD_LOCAL_RANK OMPI_COMM_WORLD_LOCAL_SIZE PMIX_RANK OMP_NUM_THREADS; do
    echo "$out" | grep -q "^$n " && pass "roe env lists the launcher's/OpenMP's $n" || fail "roe env lacks $n"
done

out=$(ROE_EP_WIRE=bf16 "$ROE" env 2>&1)
echo "$out" | grep -q "^ROE_EP_WIRE=bf16 " && pass "roe env shows a set value" || fail "roe env, set value: $out"
out=$(ROE_LOG=bogus "$ROE" env 2>&1)
rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "BAD: ROE_LOG='bogus' is not one of: error, warn, info, debug" &&
    pass "roe env marks a bad value, exit 2" || fail "roe env, bad value: exit $rc: $out"
"$ROE" --help 2>&1 | grep -q "^  env " && pass "roe --help mentions env" || fail "roe --help lacks env"

# every ROE_* variable goes through the table: no getenv("ROE_...") elsewhere (tests/ keep theirs)
stray=$(grep -rn 'getenv("ROE_' --include=*.c --include=*.h --include=*.cu base kernels comm runtime server launcher | grep -v '^base/env.c:')
[ -z "$stray" ] && pass "no ROE_* read outside base/env.c" || fail "ROE_* read outside the table: $stray"
read_names=$(grep -rho 'roe_env_get("ROE_[A-Z0-9_]*")' base kernels comm runtime server launcher | grep -o 'ROE_[A-Z0-9_]*' | sort -u)
missing=
for n in $read_names; do echo "$names" | grep -qx "$n" || missing="$missing $n"; done
[ -z "$missing" ] && pass "every roe_env_get names a knob of the table" || fail "read, not in the table:$missing"
untested=
for n in $names; do # a path or a string cannot be malformed; every other knob can
    grep "\"$n\"" base/env.c | grep -q 'ROE_ENV_PATH\|ROE_ENV_STRING' && continue
    grep -q "^bad_env $n=" tests/e2e/bad_input.sh || untested="$untested $n"
done
[ -z "$untested" ] && pass "bad_input.sh gives each checkable knob a bad value" ||
    fail "bad_input.sh has no bad value of:$untested"
finish
