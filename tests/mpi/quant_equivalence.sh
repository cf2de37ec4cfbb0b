#!/usr/bin/env bash
# Quantized weights (--weights q8 / q4, runtime/quant.h) under mpirun: every rank quantizes its
# own share at load (the session spec carries the format), and N ranks give the same tokens and
# bit-identical logits as one process, plain and with RoE K = 4; a checkpoint saved by
# `roe quantize` gives the same as quantizing at load, on 1 and 2 ranks.
. "$(dirname "$0")/../e2e/lib.bash"
. "$(dirname "$0")/lib.bash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

same() {
    if [ ! -s "$3" ]; then fail "$1: no reference logits"; return; fi
    if diff -q "$2" "$4" >/dev/null && cmp -s "$3" "$5"; then pass "$1"; else
        fail "$1: tokens or logits differ ($(diff "$2" "$4" | head -3 | tr '\n' ' ') $(cmp "$3" "$5" 2>&1 | head -1))"; fi
}

prompts=(--prompt-ids 1,2,3,4,5,6 --prompt-ids 9,8,7)
for m in tests/fixtures/olmoe/model models/olmoe-tiny tests/fixtures/glm4_moe/model tests/fixtures/gpt_oss/model; do
    for w in q8 q4; do
        for cfg in "--roe-k 1" "--roe-k 4 --roe-tau 0.5 --roe-keep-clean 0"; do
            # shellcheck disable=SC2086
            run_n 0 "$tmp/ref.txt" "$tmp/ref.f32" generate --model "$m" --weights $w "${prompts[@]}" --max-tokens 8 --ignore-eos $cfg ||
                { fail "$m $w [$cfg]: one process: $(tail -2 "$tmp/ref.txt.err")"; continue; }
            for n in 2 3; do
                # shellcheck disable=SC2086
                run_n "$n" "$tmp/o.txt" "$tmp/o.f32" generate --model "$m" --weights $w "${prompts[@]}" --max-tokens 8 --ignore-eos $cfg ||
                    { fail "$m $w [$cfg] N=$n: $(tail -3 "$tmp/o.txt.err")"; continue; }
                same "$m --weights $w [$cfg] N=$n" "$tmp/ref.txt" "$tmp/ref.f32" "$tmp/o.txt" "$tmp/o.f32"
            done
        done
        rm -rf "$tmp/saved"
        if "$ROE" quantize --model "$m" --weights $w --out "$tmp/saved" 2>"$tmp/q.err"; then
            run_n 0 "$tmp/ref.txt" "$tmp/ref.f32" generate --model "$m" --weights $w "${prompts[@]}" --max-tokens 8 --ignore-eos
            for n in 0 2; do
                run_n "$n" "$tmp/o.txt" "$tmp/o.f32" generate --model "$tmp/saved" "${prompts[@]}" --max-tokens 8 --ignore-eos
                same "$m saved at $w, N=$n" "$tmp/ref.txt" "$tmp/ref.f32" "$tmp/o.txt" "$tmp/o.f32"
            done
        else fail "$m: roe quantize --weights $w: $(cat "$tmp/q.err")"; fi
    done
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
