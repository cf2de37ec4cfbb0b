#!/usr/bin/env bash
# Two hosts: two network namespaces (each with its own hostname) joined by a veth pair, one
# rank in each, Open MPI over TCP between them (btl tcp,self: no shared memory) started
# through an rsh agent that enters the other namespace. `roe generate` with RoE K = 4 on two
# sequences gives the same tokens and bit-identical logits as one process.
# Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): skipped, saying why, where namespaces
# cannot be created.
. "$(dirname "$0")/../e2e/lib.bash"
. "$(dirname "$0")/lib.bash"
ROE=$(cd "$(dirname "$ROE")" && pwd)/$(basename "$ROE")
command -v ip >/dev/null || { echo "skipped: 'ip' (iproute2) is not installed"; exit 77; }
command -v unshare >/dev/null || { echo "skipped: 'unshare' (util-linux) is not installed"; exit 77; }
tag=$$
nsa=roeA$tag nsb=roeB$tag va=rva$tag vb=rvb$tag
net=10.$((tag % 200 + 20)).$((tag / 200 % 250)).0
ipa=${net%.0}.1 ipb=${net%.0}.2
tmp=$(mktemp -d)
cleanup() {
    ip netns del "$nsa" 2>/dev/null
    ip netns del "$nsb" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
if ! ip netns add "$nsa" 2>"$tmp/why"; then
    echo "skipped: cannot create a network namespace: $(cat "$tmp/why") (needs root / CAP_NET_ADMIN)"
    exit 77
fi
if ! ip netns add "$nsb" || ! ip link add "$va" type veth peer name "$vb" ||
    ! ip link set "$va" netns "$nsa" || ! ip link set "$vb" netns "$nsb" ||
    ! ip -n "$nsa" addr add "$ipa/24" dev "$va" || ! ip -n "$nsb" addr add "$ipb/24" dev "$vb" ||
    ! ip -n "$nsa" link set "$va" up || ! ip -n "$nsb" link set "$vb" up ||
    ! ip -n "$nsa" link set lo up || ! ip -n "$nsb" link set lo up; then
    echo "skipped: cannot set up the veth pair between the namespaces"
    exit 77
fi
if ! ip netns exec "$nsa" unshare --uts true 2>"$tmp/why"; then
    echo "skipped: cannot create a UTS namespace: $(cat "$tmp/why")"
    exit 77
fi
# the "remote shell": mpirun starts its daemon on host B inside namespace B
cat >"$tmp/nsrsh" <<AGENT
#!/bin/sh
host=\$1; shift
case "\$host" in
    $ipa) ns=$nsa ;;
    $ipb) ns=$nsb ;;
    *) echo "nsrsh: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" unshare --uts sh -c "hostname \$ns; \$*"
AGENT
chmod +x "$tmp/nsrsh"
printf '%s slots=1\n%s slots=1\n' "$ipa" "$ipb" >"$tmp/hosts"

m=tests/fixtures/olmoe/model
args=(generate --model "$PWD/$m" --prompt-ids 1,2,3,4,5 --prompt-ids 7,7 --max-tokens 10 --ignore-eos
      --roe-k 4 --roe-tau 0.5 --roe-keep-clean 0)
timeout 60 "$ROE" "${args[@]}" --logits-out "$tmp/ref.f32" >"$tmp/ref.txt" 2>/dev/null || fail "one process failed"
timeout 120 ip netns exec "$nsa" unshare --uts sh -c "hostname $nsa; exec mpirun --allow-run-as-root \
    --hostfile $tmp/hosts -np 2 --mca plm_rsh_agent $tmp/nsrsh --mca btl tcp,self \
    --mca btl_tcp_if_include $net/24 --mca oob_tcp_if_include $net/24 -x OMP_NUM_THREADS=1 \
    -x ROE_LOG=info $ROE ${args[*]} --logits-out $tmp/two.f32" >"$tmp/two.txt" 2>"$tmp/two.err"
rc=$?
if [ $rc -eq 0 ] && diff -q "$tmp/ref.txt" "$tmp/two.txt" >/dev/null && cmp -s "$tmp/ref.f32" "$tmp/two.f32"; then
    pass "two hosts over TCP: same tokens, bit-identical logits"
else
    fail "two hosts over TCP: exit $rc, $(diff "$tmp/ref.txt" "$tmp/two.txt" | head -3) $(tail -5 "$tmp/two.err")"
fi
# the worker really ran in the other namespace
if grep -q "roe\[1\] info worker: rank 1" "$tmp/two.err"; then pass "rank 1 served from host B"; else
    fail "no sign of rank 1: $(tail -5 "$tmp/two.err")"; fi
finish
