#!/usr/bin/env bash
# `roe inspect` reports, for each fixture of the newer families, the parameters the forward
# reads, those one token uses, and the weight bytes one decode step reads exactly as
# tools/make_fixtures.py computed them independently (transformers' modules; the safetensors
# headers), and the KV cache per token from the config (fp32 K and V of every layer); the text
# form says them too.
. "$(dirname "$0")/lib.bash"
# num FILE KEY: the number of a top-level '"KEY": N' line of a JSON file
num() { grep -o "\"$2\":[[:space:]]*[0-9.e+]*" "$1" | head -1 | sed 's/.*:[[:space:]]*//'; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for fam in qwen2_moe qwen2_moe_b glm4_moe glm4_moe_b gpt_oss gpt_oss_b; do
    ref=tests/fixtures/$fam/reference.json
    cfg=tests/fixtures/$fam/model/config.json
    if ! timeout 60 "$ROE" inspect --model tests/fixtures/$fam/model --json >"$tmp/i.json" 2>"$tmp/err"; then
        fail "$fam: inspect failed: $(cat "$tmp/err")"; continue; fi
    for key in parameters active_parameters bytes_per_decode_step; do
        got=$(num "$tmp/i.json" $key) want=$(num "$ref" $key)
        if [ -n "$want" ] && [ "$got" = "$want" ]; then pass "$fam: $key $got"; else fail "$fam: $key $got, transformers says $want"; fi
    done
    L=$(num "$cfg" num_hidden_layers) kv=$(num "$cfg" num_key_value_heads) hd=$(num "$cfg" head_dim)
    [ -n "$hd" ] || hd=$(($(num "$cfg" hidden_size) / $(num "$cfg" num_attention_heads)))
    want=$((2 * 4 * L * kv * hd)) got=$(num "$tmp/i.json" kv_bytes_per_token)
    if [ "$got" = "$want" ]; then pass "$fam: kv_bytes_per_token $got"; else fail "$fam: kv_bytes_per_token $got, want $want"; fi
done
out=$(timeout 60 "$ROE" inspect --model tests/fixtures/glm4_moe/model)
case "$out" in
    *"parameters   0.52 M (0.30 M active per token)"*"read per decode step 0.5 MB"*"kv cache     1.2 KB per token"*)
        pass "text: parameters, active, bytes per step, KV per token" ;;
    *) fail "text form: $out" ;;
esac
case "$out" in *"sigmoid_group router, renormalised, 2 of 4 groups, x 2.5, shared expert of width 32"*)
    pass "text: the router and the shared expert" ;; *) fail "text router: $out" ;; esac
out=$(timeout 60 "$ROE" inspect --model tests/fixtures/gpt_oss/model)
case "$out" in *"2 attend a window of at most 6"*) pass "text: windowed layers" ;; *) fail "windows: $out" ;; esac
finish
