#!/usr/bin/env bash
# Decode allocates nothing per token, counted by valgrind over the whole process (libc and
# OpenMP included): generating 40 tokens makes exactly as many heap allocations as 4.
. "$(dirname "$0")/lib.bash"
command -v valgrind >/dev/null || { echo "skipped: valgrind is not installed (tools/install-deps.sh installs it)"; exit 77; }
allocs() {
    valgrind --error-exitcode=3 "$ROE" generate --model tests/fixtures/olmoe/model \
        --prompt-ids 5,6,7,8 --prompt-ids 9,10 --max-tokens "$1" --ignore-eos --threads 2 2>&1 >/dev/null |
        grep -o 'total heap usage: [0-9,]* allocs' | tr -dc '0-9'
}
a4=$(allocs 4); a40=$(allocs 40)
if [ -n "$a4" ] && [ "$a4" = "$a40" ]; then pass "heap allocations: $a4 for 4 tokens, $a40 for 40"; else
    fail "heap allocations grow with tokens: '$a4' for 4, '$a40' for 40"; fi
finish
