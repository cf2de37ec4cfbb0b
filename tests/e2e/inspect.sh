#!/usr/bin/env bash
# `roe inspect` reports, for each fixture of the newer families, the parameters the forward
# reads, those one token uses, and the weight bytes one decode step reads exactly as
# tools/make_fixtures.py computed them independently (transformers' modules; the safetensors
# headers), and the KV cache per token from the config (K and V of every layer that keeps every
# position, a sliding-window layer holding only its window: kv_bytes_per_sequence_windowed; in the default
# --kv-dtype auto: bf16, f32 for an f32 checkpoint; DeepSeek-V3:
# the latent and the rope key, next to what full K and V would cost); the text form says them too.
# The FP8 fixtures count one byte per weight and their fp32 weight_scale_inv tensors.
. "$(dirname "$0")/lib.bash"
# num FILE KEY: the number of a top-level '"KEY": N' line of a JSON file
num() { grep -o "\"$2\":[[:space:]]*[0-9.e+]*" "$1" | head -1 | sed 's/.*:[[:space:]]*//'; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for fam in qwen2_moe qwen2_moe_b glm4_moe glm4_moe_b gpt_oss gpt_oss_b deepseek_v3 deepseek_v3_b deepseek_v3_fp8 glm4_moe_fp8 \
           deepseek_v3_fp8_b glm4_moe_fp8_b gpt_oss_mx gpt_oss_mx_b; do
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
    # the cache's default element (--kv-dtype auto): f32 for an f32 checkpoint, bf16 otherwise
    e=2; grep -q '"\(torch_\)\?dtype": "float32"' "$cfg" && e=4
    # sliding-window layers (layer_types) hold their window, not a row per token (docs/KV.md)
    W=$(grep -o '"sliding_attention"' "$cfg" | wc -l) win=$(num "$cfg" sliding_window)
    want=$((2 * e * (L - W) * kv * hd)) full=$want wantw=$((2 * e * W * kv * hd * ${win:-0}))
    if [ -n "$(num "$cfg" kv_lora_rank)" ]; then # MLA: the latent and the rope key; full: every head's K and V
        rope=$(num "$cfg" qk_rope_head_dim)
        want=$((e * L * ($(num "$cfg" kv_lora_rank) + rope)))
        full=$((e * L * $(num "$cfg" num_attention_heads) * ($(num "$cfg" qk_nope_head_dim) + rope + $(num "$cfg" v_head_dim))))
    fi
    got=$(num "$tmp/i.json" kv_bytes_per_token) gotf=$(num "$tmp/i.json" kv_bytes_per_token_full_kv)
    if [ "$got" = "$want" ]; then pass "$fam: kv_bytes_per_token $got"; else fail "$fam: kv_bytes_per_token $got, want $want"; fi
    if [ "$gotf" = "$full" ]; then pass "$fam: kv_bytes_per_token_full_kv $gotf"; else fail "$fam: kv_bytes_per_token_full_kv $gotf, want $full"; fi
    gotw=$(num "$tmp/i.json" kv_bytes_per_sequence_windowed)
    if [ "$gotw" = "$wantw" ]; then pass "$fam: kv_bytes_per_sequence_windowed $gotw"; else fail "$fam: kv_bytes_per_sequence_windowed $gotw, want $wantw"; fi
done
out=$(timeout 60 "$ROE" inspect --model tests/fixtures/glm4_moe/model)
case "$out" in
    *"parameters   0.52 M (0.30 M active per token)"*"read per decode step 0.5 MB"*"kv cache     0.6 KB per token (bf16 K and V"*)
        pass "text: parameters, active, bytes per step, KV per token" ;;
    *) fail "text form: $out" ;;
esac
case "$out" in *"sigmoid_group router, renormalised, 2 of 4 groups, x 2.5, shared expert of width 32"*)
    pass "text: the router and the shared expert" ;; *) fail "text router: $out" ;; esac
out=$(timeout 60 "$ROE" inspect --model tests/fixtures/deepseek_v3/model)
case "$out" in *"MLA: q_lora_rank 40, kv_lora_rank 24, qk_nope 10 + qk_rope 8, v 14"*"kv cache     0.2 KB per token (bf16 latent 24 + rope key 8, 3 layers; full K and V would be 1.2 KB, 6.0x)"*)
    pass "text: MLA's widths and its cache next to full K and V" ;; *) fail "text MLA: $out" ;; esac
out=$(timeout 60 "$ROE" inspect --model tests/fixtures/gpt_oss/model)
case "$out" in *"per token (bf16 K and V, 2 layers; 2 attend a window of at most 6 and hold "*) pass "text: windowed layers" ;; *) fail "windows: $out" ;; esac
# MXFP4 experts: named, and the checkpoint's parameters counted as values (2 a byte), not bytes
timeout 60 "$ROE" inspect --model tests/fixtures/gpt_oss_mx/model --json >"$tmp/mx.json"
if grep -q '"expert_dtype":[[:space:]]*"MXFP4"' "$tmp/mx.json" &&
   [ "$(num "$tmp/mx.json" checkpoint_parameters)" = "$(num tests/fixtures/gpt_oss_mx/reference.json parameters)" ]; then
    pass "MXFP4: expert dtype and checkpoint parameters"; else fail "MXFP4 inspect: $(cat "$tmp/mx.json")"; fi
out=$(timeout 60 "$ROE" inspect --model tests/fixtures/gpt_oss_mx/model)
case "$out" in *"experts 0.3 MB (MXFP4)"*) pass "text: MXFP4 expert bytes" ;; *) fail "MXFP4 text: $out" ;; esac
finish
