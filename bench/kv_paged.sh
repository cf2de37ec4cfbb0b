#!/usr/bin/env bash
# The paged KV cache's benchmark (issue 20, docs/KV.md), three parts, one markdown line each:
#
#  1. prefix reuse: `roe serve` with CLIENTS concurrent clients whose prompts share a PREFIX-token
#     system prompt (bench/serve_load --shared-prefix-len). The first request runs alone on a fresh
#     server (it computes the prefix); then CLIENTS requests at once (they find it cached). Reported:
#     the first's TTFT, the others' median and p99, and median / first (the goal: <= 0.2).
#  2. capacity at a fixed KV memory: how many concurrent CONV-token conversations a pool of
#     KV_MEMORY holds, paged bf16 (blocks of 16: ceil((CONV + 1) / 16) blocks each) against the
#     former allocation (max_seqs slots of the model's whole context in fp32), and the ratio. The
#     paged count is checked by running `roe bench --batch N --prompt-len CONV` in that memory:
#     all N at once (none parked or preempted: kv_cache.max_parked, .preemptions), and N + 1 not.
#  3. bf16 against f32 KV: `roe bench` decode tokens/s at BATCH sequences near the model's whole
#     context, both dtypes in the same run, interleaved, best of two (the goal: bf16 not below f32).
#
#   bench/kv_paged.sh [MODEL_DIR] [BUILD_DIR] [PREFIX] [CLIENTS] [CONV] [KV_MEMORY] [BATCH] [THREADS]
#
# Defaults fit the bundled model (1024 positions): PREFIX 900, CLIENTS 32, CONV 960, KV_MEMORY 64M,
# BATCH 8. The issue's figures (a 1,000-token prompt, 2k conversations) need a model with a longer
# context: bench/kv_paged_full.sh makes one and runs this script at the issue's sizes. Outputs go
# to bench/out/kv/. KV_SERVE_ARGS: more `roe serve` flags for part 1 (e.g. --prefill-first).
set -euo pipefail
model=${1:-models/olmoe-tiny}
build=${2:-build}
prefix=${3:-900}
clients=${4:-32}
conv=${5:-960}
kvmem=${6:-64M}
batch=${7:-8}
threads=${8:-0}
out=bench/out/kv
mkdir -p "$out"
roe=$build/roe
inspect=$("$roe" inspect --model "$model" --json)
maxpos=$(echo "$inspect" | jq .max_position)
vocab=$(echo "$inspect" | jq .vocab_size)
# every layer, in the cache's default dtype (roe inspect: kv_dtype): as fp32
kv_tok=$(echo "$inspect" | jq 'if .kv_dtype == "bf16" then .kv_bytes_per_token * 2 else .kv_bytes_per_token end')
echo "model $model: $maxpos positions, vocab $vocab, $kv_tok KV bytes per token in fp32"

# ---- 1. a shared system prompt ----
rm -f "$out/port"
# shellcheck disable=SC2086 # KV_SERVE_ARGS: several flags, split on purpose
"$roe" serve --model "$model" --port 0 --port-file "$out/port" --threads "$threads" --max-seqs "$clients" \
    --max-model-len $((prefix + 64)) ${KV_SERVE_ARGS:-} >"$out/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do [ -s "$out/port" ] && break; sleep 0.1; done
port=$(cat "$out/port")
load=("$build/bench/serve_load" --port "$port" --model "$(basename "$model")" --vocab "$vocab"
      --shared-prefix-len "$prefix" --random-input-len 16 --random-output-len 8 --random-range-ratio 0)
"${load[@]}" --num-prompts 1 --max-concurrency 1 --seed 1 --json "$out/first.json" >/dev/null
"${load[@]}" --num-prompts "$clients" --max-concurrency "$clients" --seed 2 --json "$out/rest.json" >/dev/null
curl -s "http://127.0.0.1:$port/metrics" >"$out/metrics.txt" || true
kill $pid; wait $pid 2>/dev/null || true
trap - EXIT
first=$(jq '.mean_ttft_ms' "$out/first.json")
med=$(jq '.median_ttft_ms' "$out/rest.json")
p99=$(jq '.p99_ttft_ms' "$out/rest.json")
hits=$(grep '^roe_prefix_cache_hit_tokens_total' "$out/metrics.txt" | awk '{print $2}')
asked=$(grep '^roe_prefix_cache_query_tokens_total' "$out/metrics.txt" | awk '{print $2}')
printf '| prefix %d tokens, %d clients | first TTFT %.1f ms | others median %.1f ms, p99 %.1f ms | median / first %.3f (goal <= 0.2) | prefix hits %s of %s positions |\n' \
    "$prefix" "$clients" "$first" "$med" "$p99" "$(echo "$med / $first" | bc -l)" "${hits:-?}" "${asked:-?}"

# ---- 2. conversations at a fixed KV memory ----
bytes=$(numfmt --from=iec "$kvmem")
blk16=$((kv_tok / 2 * 16)) # one bf16 block of 16 positions, every layer
per_conv=$(( (conv + 1 + 15) / 16 ))
paged=$((bytes / blk16 / per_conv))
today=$((bytes / (kv_tok * maxpos)))
# at once: nothing parked or preempted (admission by free blocks would otherwise make N fit in turn)
at_once() { # at_once N: 0 if N conversations ran together in the pool
    "$roe" bench --model "$model" --batch "$1" --prompt-len "$conv" --gen-len 1 --threads "$threads" \
        --kv-memory "$bytes" --kv-dtype bf16 --no-warm --json >"$out/capacity-$1.json" 2>"$out/capacity.err" &&
        [ "$(jq '.kv_cache.max_parked + .kv_cache.preemptions' "$out/capacity-$1.json")" = 0 ]
}
if at_once "$paged"; then ok="ran at once"; else ok="FAILED: $(tail -1 "$out/capacity.err")"; fi
if at_once $((paged + 1)); then ok="$ok, but $((paged + 1)) too"; else ok="$ok; $((paged + 1)) did not"; fi
printf '| %s of KV, %d-token conversations | paged bf16: %d at once (%s) | former: %d slots of %d positions in fp32 | ratio %s |\n' \
    "$kvmem" "$conv" "$paged" "$ok" "$today" "$maxpos" "$( [ "$today" -gt 0 ] && echo "scale=1; $paged / $today" | bc || echo "inf (not one slot)")"

# ---- 3. bf16 against f32 decode ----
for rep in 1 2; do # interleaved, the best of two each: a shared machine's noise hits both alike
    for dt in f32 bf16; do
        "$roe" bench --model "$model" --batch "$batch" --prompt-len $((maxpos - 40)) --gen-len 32 --threads "$threads" \
            --kv-dtype "$dt" --json >"$out/decode-$dt-$rep.json"
    done
done
f=$(jq -s 'map(.decode_tokens_per_s) | max' "$out"/decode-f32-*.json)
b=$(jq -s 'map(.decode_tokens_per_s) | max' "$out"/decode-bf16-*.json)
printf '| decode, batch %d at %d positions | f32 KV %.1f tok/s | bf16 KV %.1f tok/s | bf16 / f32 %.3f (goal >= 1) |\n' \
    "$batch" $((maxpos - 8)) "$f" "$b" "$(echo "$b / $f" | bc -l)"
