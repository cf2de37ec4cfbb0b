#!/usr/bin/env bash
# The mpirun side of the command line: the roe-mpirun wrapper (flags it picks, a real run),
# `roe inspect` per rank, and the errors a multi-rank job must report, not hang on:
# mismatched roe builds (control-plane versions), a placement file for another rank count,
# bad ROE_* settings.
. "$(dirname "$0")/../e2e/lib.bash"
. "$(dirname "$0")/lib.bash"
W=$(dirname "$ROE")/roe-mpirun
[ -x "$W" ] || W=launcher/roe-mpirun
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
M=tests/fixtures/mixtral/model
cores=$(lscpu -p=core,socket 2>/dev/null | grep -v '^#' | sort -u | wc -l)

# the wrapper's choices
cmd=$("$W" --roe "$ROE" --dry-run -n $((cores + 2)) -- generate --prompt hi)
case "$cmd" in
    *--oversubscribe*--bind-to\ none*OMP_NUM_THREADS*) pass "wrapper: more ranks than cores -> oversubscribed, unbound, threads set" ;;
    *) fail "wrapper oversubscription: $cmd" ;;
esac
if [ "$(id -u)" = 0 ]; then
    case "$cmd" in *--allow-run-as-root*) pass "wrapper: --allow-run-as-root as root" ;; *) fail "wrapper as root: $cmd" ;; esac
fi
cmd=$("$W" --roe "$ROE" --dry-run -n 1 --timeout 7 --placement /dev/null -- generate --prompt hi)
case "$cmd" in
    *"-x ROE_COMM_TIMEOUT_S"*"-x ROE_PLACEMENT"*) pass "wrapper: ROE_* settings forwarded to the ranks" ;;
    *) fail "wrapper env: $cmd" ;;
esac
printf 'nodeA slots=2\nnodeB slots=2\n' >"$tmp/hosts"
cmd=$("$W" --roe "$ROE" --dry-run --cpu --hostfile "$tmp/hosts" --net 10.0.0.0/24 -- generate --prompt hi)
case "$cmd" in
    *"--hostfile $tmp/hosts"*"-np 4"*"btl_tcp_if_include 10.0.0.0/24"*) pass "wrapper: hostfile -> 4 ranks over the given network" ;;
    *) fail "wrapper hostfile: $cmd" ;;
esac
cmd=$("$W" --roe "$ROE" --dry-run --gpus-per-node 1 -- bench)
case "$cmd" in
    *"-np 1"*"--map-by ppr:1:node:PE=$cores"*"--bind-to core"*) pass "wrapper: one rank per GPU, bound to its cores" ;;
    *) fail "wrapper gpus: $cmd" ;;
esac
expect_fail "wrapper: bad -n" "-n 'x' is not a positive integer" "$W" --roe "$ROE" -n x -- generate
expect_fail "wrapper: no subcommand" "no roe subcommand" "$W" --roe "$ROE" -n 2
expect_fail "wrapper: unknown option" "unknown option '--bogus'" "$W" --bogus
# a real run through the wrapper equals one process
ref=$("$ROE" generate --model $M --prompt-ids 5,4,3 --prompt-ids 2,2 --max-tokens 6 --ignore-eos 2>/dev/null)
got=$(timeout 60 "$W" --roe "$ROE" -n 2 -- generate --model $M --prompt-ids 5,4,3 --prompt-ids 2,2 --max-tokens 6 --ignore-eos 2>/dev/null)
if [ -n "$ref" ] && [ "$ref" = "$got" ]; then pass "wrapper: 2 ranks give one process's tokens"; else fail "wrapper run: '$got' vs '$ref'"; fi

# inspect: experts and resident bytes of every rank
out=$(timeout 60 "${MPIRUN[@]}" -np 3 "$ROE" inspect --model tests/fixtures/olmoe/model 2>&1)
if echo "$out" | grep -q "rank 0 .*experts 0-2, resident" && echo "$out" | grep -q "rank 2 .*experts 6-7, resident"; then
    pass "inspect under mpirun -np 3: uneven blocks 0-2 / 3-5 / 6-7"; else fail "inspect: $out"; fi
out=$("$ROE" inspect --model tests/fixtures/olmoe/model --ranks 16 --json)
if echo "$out" | grep -q '"experts":	"none"'; then pass "inspect --ranks 16: ranks beyond 8 experts own none"; else
    fail "inspect --ranks 16: $out"; fi

# errors
echo '{"ranks": 2, "experts": [[0, 1, 2, 3], [4, 5, 6, 7]]}' >"$tmp/p2.json"
expect_fail "placement for another rank count" "placement is for 2 ranks, but the job has 3" \
    env ROE_PLACEMENT="$tmp/p2.json" "${MPIRUN[@]}" -x ROE_PLACEMENT -np 3 "$ROE" generate --model $M --prompt-ids 1 --max-tokens 2
expect_fail "mismatched builds (control version)" "speaks control version" \
    "${MPIRUN[@]}" -np 1 "$ROE" generate --model $M --prompt-ids 1 --max-tokens 2 : \
    -np 1 env ROE_TEST_CONTROL_VERSION=99 "$ROE" generate --model $M --prompt-ids 1 --max-tokens 2
expect_fail "bad ROE_COMM" "ROE_COMM='carrier-pigeon' is not one of: auto, self, mpi" env ROE_COMM=carrier-pigeon "$ROE" inspect --model $M
expect_fail "bad ROE_COMM_TIMEOUT_S" "ROE_COMM_TIMEOUT_S='-3' is not a number in" env ROE_COMM_TIMEOUT_S=-3 "$ROE" inspect --model $M
expect_fail "bad ROE_EP_WIRE" "ROE_EP_WIRE='fp8' is not one of: f32, bf16" env ROE_EP_WIRE=fp8 "$ROE" generate --model $M --prompt-ids 1
expect_fail "bad ROE_HOME_POLICY" "ROE_HOME_POLICY='random' is not one of" env ROE_HOME_POLICY=random "$ROE" generate --model $M --prompt-ids 1
# bad input on rank 0 ends the workers too, with rank 0's message and exit code
expect_fail "bad flag under mpirun" "unknown option '--bogus'" "${MPIRUN[@]}" -np 2 "$ROE" generate --model $M --prompt-ids 1 --bogus
finish
