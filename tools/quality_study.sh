#!/usr/bin/env bash
# The RoE quality study of docs/QUALITY.md, end to end on the bundled model:
#   tune   per-task tau profiles on the validation splits (roe tune, TPE)
#   ksweep K in {1,2,4,8,16,32} on the test splits with the tuned profiles
#   tau    one tau for all middle MoE layers, K=8, text and choice test splits
#   gate   clean vs noisy gate weights, K=8, tuned profiles
#   adapt  adaptive K (entropy thresholds) vs fixed K
#   big    the 1.5x-parameter model (plain) vs the bundled model + RoE: quality and latency
# Results: docs/quality/results/*.json; then tools/quality_report.py writes the tables and plot.
#
#   tools/quality_study.sh [STAGE...]      (default: all stages)
#   env: ROE=build/roe MODEL=models/olmoe-tiny BIG=.data/olmoe-tiny-1.5x TRIALS=16 TUNE_LIMIT=80
#        LIMIT=0 OUT=docs/quality/results PROFILES=configs  (a dry run: LIMIT=5 TRIALS=2 OUT=/tmp/q PROFILES=/tmp/q)
set -euo pipefail
cd "$(dirname "$0")/.."
ROE=${ROE:-build/roe}
MODEL=${MODEL:-models/olmoe-tiny}
BIG=${BIG:-.data/olmoe-tiny-1.5x}
TRIALS=${TRIALS:-16}
TUNE_LIMIT=${TUNE_LIMIT:-80}
OUT=${OUT:-docs/quality/results}
LIMIT=${LIMIT:-0}        # items per test set (0: all); a dry run uses a few
mkdir -p "$OUT"
EV=$MODEL/eval
stages=${*:-tune ksweep tau gate adapt big}

PROFILES=${PROFILES:-configs}
profile() { echo "$PROFILES/roe-olmoe-tiny-$1.json"; }
run_eval() { # name data [flags...]
    local name=$1 data=$2
    shift 2
    if [ -s "$OUT/$name.json" ] && [ -z "${FORCE:-}" ]; then echo "have $name"; return; fi
    echo "eval $name"
    "$ROE" eval --model "${EVAL_MODEL:-$MODEL}" --data "$data" --limit "$LIMIT" --json "$@" > "$OUT/$name.json.tmp"
    mv "$OUT/$name.json.tmp" "$OUT/$name.json"
}

for stage in $stages; do
case $stage in
tune)
    for t in text arith choice; do
        [ -s "$(profile $t)" ] && [ -z "${FORCE:-}" ] && { echo "have $(profile $t)"; continue; }
        "$ROE" tune --model "$MODEL" --data "$EV/$t-validation.jsonl" --roe-k 8 --max-tau 0.5 \
            --roe-keep-clean 1 --trials "$TRIALS" --limit "$TUNE_LIMIT" --out "$(profile $t)" \
            2> "$OUT/tune-$t.log"
    done ;;
ksweep)
    for k in 1 2 4 8 16 32; do
        for t in text arith choice; do
            run_eval "k$k-$t" "$EV/$t-test.jsonl" --roe-profile "$(profile $t)" --roe-k "$k"
        done
    done ;;
tau)
    for tau in 0 0.1 0.2 0.3 0.5 0.7 1.0; do
        for t in text choice; do
            run_eval "tau$tau-$t" "$EV/$t-test.jsonl" --roe-k 8 --roe-tau "$tau" --roe-keep-clean 1
        done
    done ;;
gate)
    for t in text arith choice; do
        run_eval "gate-noisy-$t" "$EV/$t-test.jsonl" --roe-profile "$(profile $t)" --roe-k 8 --roe-gate noisy
        run_eval "gate-clean-$t" "$EV/$t-test.jsonl" --roe-profile "$(profile $t)" --roe-k 8 --roe-gate clean
    done ;;
adapt)
    for h in 0.5 1 2 3; do
        for t in text arith choice; do
            run_eval "adapt$h-$t" "$EV/$t-test.jsonl" --roe-profile "$(profile $t)" --roe-k 8 --roe-adaptive "$h"
        done
    done ;;
big)
    [ -d "$BIG" ] || { echo "no $BIG: train it with tools/train_bundled.py (see docs/QUALITY.md)"; exit 2; }
    for t in text arith choice; do
        EVAL_MODEL=$BIG run_eval "big-$t" "$EV/$t-test.jsonl"
    done
    for spec in "small-k1:$MODEL:1" "small-k8:$MODEL:8" "small-k32:$MODEL:32" "big-k1:$BIG:1"; do
        IFS=: read -r name m k <<< "$spec"
        flags=()
        [ "$k" -gt 1 ] && flags=(--roe-profile "$(profile text)" --roe-k "$k")
        "$ROE" bench --model "$m" --batch 1 --prompt-len 32 --gen-len 128 --threads 1 --json "${flags[@]}" \
            > "$OUT/latency-$name.json"
    done ;;
*) echo "unknown stage $stage" >&2; exit 2 ;;
esac
done
