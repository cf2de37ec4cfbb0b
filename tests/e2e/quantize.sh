#!/usr/bin/env bash
# --weights q8 / q4 and `roe quantize` through the binary: a saved checkpoint generates what
# quantizing at load generates (tokens and --logits-out bytes), its size is what the format says,
# and bad input is refused with a message naming what is wrong.
. "$(dirname "$0")/lib.bash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
M=tests/fixtures/olmoe/model

for w in q8 q4; do
    if ! "$ROE" quantize --model $M --weights $w --out "$tmp/$w" 2>"$tmp/err"; then fail "quantize $w: $(cat "$tmp/err")"; continue; fi
    "$ROE" generate --model $M --weights $w --prompt-ids 1,2,3,4 --max-tokens 8 --ignore-eos --logits-out "$tmp/a.f32" >"$tmp/a.txt" 2>/dev/null
    "$ROE" generate --model "$tmp/$w" --prompt-ids 1,2,3,4 --max-tokens 8 --ignore-eos --logits-out "$tmp/b.f32" >"$tmp/b.txt" 2>/dev/null
    if [ -s "$tmp/a.f32" ] && cmp -s "$tmp/a.f32" "$tmp/b.f32" && diff -q "$tmp/a.txt" "$tmp/b.txt" >/dev/null; then
        pass "$w: the saved checkpoint generates what --weights $w does"
    else fail "$w: saved and load-time quantization differ"; fi
    "$ROE" generate --model $M --prompt-ids 1,2,3,4 --max-tokens 8 --ignore-eos --logits-out "$tmp/c.f32" >/dev/null 2>&1
    if cmp -s "$tmp/a.f32" "$tmp/c.f32"; then fail "$w: logits equal the unquantized model's"; else pass "$w: the weights are quantized"; fi
    for f in config.json generation_config.json; do
        if [ -f "$M/$f" ] && ! cmp -s "$M/$f" "$tmp/$w/$f"; then fail "$w: $f not copied"; fi
    done
    if grep -aq '_blocks' "$tmp/$w/model.safetensors" && grep -aq '_scales' "$tmp/$w/model.safetensors"; then
        pass "$w: blocks and scales tensors"; else fail "$w: no _blocks/_scales tensors"; fi
done
expect_fail "bad --weights" "is not bf16, q8 or q4" "$ROE" generate --model $M --weights q3 --prompt-ids 1
expect_fail "bad --weights (bench)" "is not bf16, q8 or q4" "$ROE" bench --model $M --weights fp8
expect_fail "quantize without --out" "needs --weights q8|q4 and --out" "$ROE" quantize --model $M --weights q8
expect_fail "quantize to bf16" "needs --weights q8|q4" "$ROE" quantize --model $M --weights bf16 --out "$tmp/x"
expect_fail "quantize over a model" "exists" "$ROE" quantize --model $M --weights q8 --out "$tmp/q8"
expect_fail "requantize a q8 checkpoint" "needs the float checkpoint" "$ROE" generate --model "$tmp/q8" --weights q4 --prompt-ids 1
expect_fail "quantized on cuda" "CPU backend only" "$ROE" generate --model $M --weights q8 --backend cuda --prompt-ids 1
expect_fail "quantized checkpoint on cuda" "CPU backend only" "$ROE" generate --model "$tmp/q8" --backend cuda --prompt-ids 1
# a checkpoint whose blocks lost their scales (the tensor renamed in the header, same length)
mkdir "$tmp/noscale" && cp "$tmp/q8"/* "$tmp/noscale/"
perl -0777 -pi -e 's/layers\.0\.self_attn\.q_proj\.weight_scales/layers.0.self_attn.q_proj.weight_scalez/' "$tmp/noscale/model.safetensors"
expect_fail "blocks without scales" "q_proj.weight_blocks' needs" "$ROE" generate --model "$tmp/noscale" --prompt-ids 1
# an FP8 block-scaled checkpoint: --weights q8 / q4 requantize its dequantized values at load
F=tests/fixtures/deepseek_v3_fp8/model
for w in q8 q4; do
    out=$("$ROE" generate --model $F --weights $w --prompt-ids 1,2,3,4 --max-tokens 8 --ignore-eos 2>"$tmp/err")
    if [ "$(echo "$out" | wc -w)" -eq 8 ]; then pass "fp8 checkpoint at --weights $w: $out"
    else fail "fp8 checkpoint at --weights $w: '$out' $(cat "$tmp/err")"; fi
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
