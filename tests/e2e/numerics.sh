#!/usr/bin/env bash
# Numbers that cannot be trusted are said, never emitted (issue 18):
#  - a checkpoint with NaN in it: `roe generate` fails (exit 1) naming non-finite scores, `roe
#    serve` answers 500 (a stream: an error event, then [DONE]) instead of token 0 repeated, and
#    `roe inspect --check-weights` names the tensor (exit 1; 0 on a clean checkpoint), an MXFP4
#    e8m0 scale of 0xff (NaN) included;
#  - every id of a list-valued eos_token_id, and of generation_config.json, ends generation;
#  - --logits-out holds log-probabilities whatever K: every row's log-sum-exp is 0.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
M=models/olmoe-tiny
[ -f $M/model.safetensors ] || { echo "skipped: $M has no weights (tools/train_bundled.py)"; exit 77; }
command -v perl >/dev/null || { echo "skipped: perl is not installed (it writes the NaN bytes)"; exit 77; }

# nan_copy DIR TENSOR: a copy of the bundled model whose TENSOR is all NaN
nan_copy() {
    mkdir -p "$1" && cp $M/*.json $M/model.safetensors "$1/"
    local f="$1/model.safetensors" hl hdr a b dt
    hl=$(od -An -tu8 -N8 "$f" | tr -d ' ')
    hdr=$(head -c $((8 + hl)) "$f" | tail -c "$hl")
    a=$(echo "$hdr" | jq ".[\"$2\"].data_offsets[0]"); b=$(echo "$hdr" | jq ".[\"$2\"].data_offsets[1]")
    dt=$(echo "$hdr" | jq -r ".[\"$2\"].dtype")
    case "$dt" in
        BF16) perl -e "print \"\\xc0\\x7f\" x $(((b - a) / 2))" ;;
        F32) perl -e "print \"\\x00\\x00\\xc0\\x7f\" x $(((b - a) / 4))" ;;
        *) echo "unexpected dtype $dt" >&2; return 1 ;;
    esac | dd of="$f" bs=1 seek=$((8 + hl + a)) conv=notrunc status=none
}
NAN=$TMP/nan-model
nan_copy "$NAN" model.norm.weight || { fail "could not make the NaN copy"; finish; exit 1; }

expect_fail "roe generate on NaN weights" "non-finite scores (NaN" "$ROE" generate --model "$NAN" --prompt "Hello" --max-tokens 4
out=$("$ROE" inspect --model "$NAN" --check-weights 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "tensor 'model.norm.weight'.*NaN" &&
    pass "inspect --check-weights names the tensor: $(echo "$out" | grep "NaN/Inf")" || fail "check-weights (exit $rc): $out"
# MXFP4: an e8m0 scale of 0xff is NaN (OCP MX), the scales tensor named
X=tests/fixtures/gpt_oss_mx/model XS=model.layers.2.mlp.experts.down_proj_scales
mkdir -p "$TMP/mxnan" && cp $X/* "$TMP/mxnan/"
hl=$(od -An -tu8 -N8 "$TMP/mxnan/model.safetensors" | tr -d ' ')
a=$(head -c $((8 + hl)) "$TMP/mxnan/model.safetensors" | tail -c "$hl" | jq ".[\"$XS\"].data_offsets[0]")
printf '\xff' | dd of="$TMP/mxnan/model.safetensors" bs=1 seek=$((8 + hl + a + 5)) conv=notrunc status=none
out=$("$ROE" inspect --model "$TMP/mxnan" --check-weights 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "tensor '$XS' (.*U8): 1 NaN, 0 infinite, the first at flat index 5" &&
    pass "inspect --check-weights names an MXFP4 scale of 0xff" || fail "MXFP4 check-weights (exit $rc): $out"
out=$("$ROE" inspect --model $X --check-weights 2>&1) && pass "inspect --check-weights on the MXFP4 fixture: clean" ||
    fail "MXFP4 check-weights clean: $out"
out=$("$ROE" inspect --model $M --check-weights --json 2>&1); rc=$?
[ $rc = 0 ] && echo "$out" | jq -e '.nonfinite_tensors == [] and .tensors_checked > 0' >/dev/null &&
    pass "inspect --check-weights on the clean model: exit 0, $(echo "$out" | jq .tensors_checked) tensors, none bad" ||
    fail "check-weights clean (exit $rc): $(echo "$out" | tail -3)"

start_server -- --model "$NAN" --max-model-len 256
expect_status "serve on NaN weights" 500 "non-finite scores" /v1/completions '{"prompt": "Hello", "max_tokens": 4}'
curl -sN --max-time 60 -d '{"prompt": "Hello", "max_tokens": 4, "stream": true}' "$URL/v1/completions" >"$TMP/s.sse"
grep -q '^data: {"error"' "$TMP/s.sse" && [ "$(grep '^data: ' "$TMP/s.sse" | tail -1)" = "data: [DONE]" ] &&
    ! grep -q '"text":"' "$TMP/s.sse" && pass "a stream on NaN weights: an error event, then [DONE], no token" ||
    fail "stream on NaN weights: $(head -c 400 "$TMP/s.sse")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")" = 200 ] && pass "the server goes on (/health 200)" || fail "/health after NaN"
stop_server 0

# ---- every end id: a list in config.json, and generation_config.json's ----
want=$("$ROE" generate --model $M --prompt "Once upon a time" --max-tokens 8 --ignore-eos --json | jq -c '.results[0].tokens')
third=$(echo "$want" | jq '.[2]')
first=$(echo "$want" | jq --argjson t "$third" 'index($t) + 1')
E=$TMP/eos-model
mkdir -p $E && cp $M/*.json $M/model.safetensors $E/
jq --argjson t "$third" '.eos_token_id = [0, $t]' $M/config.json >$E/config.json
got=$("$ROE" generate --model $E --prompt "Once upon a time" --max-tokens 8 --json | jq -c '.results[0].tokens | length')
[ "$got" = "$first" ] && pass "config.json eos_token_id [0, $third]: generation ends at $third (after $got tokens)" ||
    fail "list eos: $got tokens, want $first ($want)"
cp $M/config.json $E/config.json
echo "{\"eos_token_id\": [$third]}" >$E/generation_config.json
got=$("$ROE" generate --model $E --prompt "Once upon a time" --max-tokens 8 --json | jq -c '.results[0].tokens | length')
[ "$got" = "$first" ] && pass "generation_config.json eos_token_id [$third]: honoured too" || fail "generation_config eos: $got tokens"

# ---- --logits-out: log-probabilities, plain and RoE ----
lse() { # lse FILE: the largest |log-sum-exp| over the file's rows of the vocabulary
    local V
    V=$(jq .vocab_size $M/config.json)
    od -An -v -tf4 -w$((4 * V)) "$1" | awk '{m = $1; for (i = 2; i <= NF; i++) if ($i > m) m = $i;
        s = 0; for (i = 1; i <= NF; i++) s += exp($i - m); d = m + log(s); if (d < 0) d = -d; if (d > w) w = d}
        END {printf "%.2e", w}'
}
for roe in "" "--roe-k 4 --roe-tau 0.5"; do
    "$ROE" generate --model $M --prompt "Once upon a time" --max-tokens 6 --ignore-eos $roe --logits-out "$TMP/l.f32" >/dev/null 2>&1
    w=$(lse "$TMP/l.f32")
    awk -v w="$w" 'BEGIN{exit !(w < 1e-4)}' && pass "--logits-out ${roe:-(plain)}: log-probabilities (|log-sum-exp| <= $w)" ||
        fail "--logits-out ${roe:-(plain)}: rows are not log-probabilities (|log-sum-exp| up to $w)"
done
finish
