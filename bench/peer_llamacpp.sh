#!/usr/bin/env bash
# roe against llama.cpp on the same weights, interleaved rep by rep (not part of CI).
#
#   bench/peer_llamacpp.sh LLAMA_BUILD_DIR MODEL_DIR [OUT_DIR]
#
# LLAMA_BUILD_DIR: a CMake build of llama.cpp with llama-bench, llama-batched-bench and
#   llama-quantize built (GGML_NATIVE); its source tree is read from CMakeCache.txt (the
#   converter and include/). Build it outside this repository, e.g. from the llama-cpp-python
#   sdist: pip download --no-binary :all: --no-deps llama-cpp-python; tar xzf it;
#   cmake -S llama_cpp_python-*/vendor/llama.cpp -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
#   -DBUILD_SHARED_LIBS=OFF; cmake --build build -j2 --target llama-bench llama-batched-bench llama-quantize
# MODEL_DIR: a Hugging Face checkpoint roe reads (e.g. tools/make_random_checkpoint.py --layers 8).
# OUT_DIR (default MODEL_DIR.peer): the GGUFs (bf16 by llama.cpp's converter through
#   tools/peer_gguf.py, then Q8_0 and Q4_K_M by llama-quantize), roe's q8/q4 checkpoints
#   (roe quantize), raw results (results.jsonl), made once and reused.
#
# Then for each format (bf16 / Q8_0 / Q4_K_M against roe bf16 / q8 / q4), R times (env R, default
# 4): memory bandwidth (bench/membw), and for each thread count decode at batch 1 (GEN tokens after
# a 16-token prompt), prefill of PROMPT tokens, and at the last thread count batched decode of 4
# and 16 sequences; llama.cpp and roe alternate test by test. Prints
# medians, the paired ratio roe / llama.cpp (median over reps), and each decode's share of the
# memory bandwidth measured in the same rep (bytes a step reads / step time / membw). Finally
# the greedy tokens of both at bf16 from the same 32 prompt ids (GREEDY tokens).
#
# Env: ROE (build/roe), MEMBW (build/bench/membw), PY (.venv/bin/python, else /work/venv/bin/python),
#      R (4), THREADS ("1 2"), FORMATS ("bf16 q8 q4"), GEN (32), PROMPT (256), BATCHES ("4 16"),
#      GREEDY (32), REPACK (1; 0: llama.cpp's --repack 0), IDLE (90) and WAIT_S (120): see quiet() below. Run it on a quiet machine: every
#      other process costs both sides bandwidth, and stalls their threads at every barrier.
set -euo pipefail
llama=${1:?usage: bench/peer_llamacpp.sh LLAMA_BUILD_DIR MODEL_DIR [OUT_DIR]}
model=${2:?usage: bench/peer_llamacpp.sh LLAMA_BUILD_DIR MODEL_DIR [OUT_DIR]}
out=${3:-${model%/}.peer}
ROE=${ROE:-build/roe}
MEMBW=${MEMBW:-build/bench/membw}
R=${R:-4}
THREADS=${THREADS:-1 2}
FORMATS=${FORMATS:-bf16 q8 q4}
GEN=${GEN:-32}
PROMPT=${PROMPT:-256}
BATCHES=${BATCHES:-4 16}
GREEDY=${GREEDY:-32}
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo /work/venv/bin/python )}
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$llama/CMakeCache.txt")
[ -d "$src" ] || { echo "peer_llamacpp: no llama.cpp source tree in $llama/CMakeCache.txt" >&2; exit 2; }
for b in llama-bench llama-batched-bench llama-quantize; do
    [ -x "$llama/bin/$b" ] || { echo "peer_llamacpp: $llama/bin/$b is missing (build it)" >&2; exit 2; }
done
mkdir -p "$out"
gguf() { case $1 in bf16) echo "$out/model-bf16.gguf" ;; q8) echo "$out/model-q8_0.gguf" ;; q4) echo "$out/model-q4_k_m.gguf" ;; esac; }
roedir() { [ "$1" = bf16 ] && echo "$model" || echo "$out/roe-$1"; }

# ---- the weights, once ----
[ -f "$(gguf bf16)" ] || "$PY" tools/peer_gguf.py --llama-src "$src" --model "$model" --out "$(gguf bf16)" >&2
[ -f "$(gguf q8)" ] || "$llama/bin/llama-quantize" "$(gguf bf16)" "$(gguf q8)" Q8_0 >&2
[ -f "$(gguf q4)" ] || "$llama/bin/llama-quantize" "$(gguf bf16)" "$(gguf q4)" Q4_K_M >&2
for f in q8 q4; do [ -f "$(roedir $f)/model.safetensors" ] || "$ROE" quantize --model "$model" --weights $f --out "$(roedir $f)" >&2; done
topk=$("$PY" -c "import json,sys; c=json.load(open(sys.argv[1])); print(c.get('num_experts_per_tok', 8), c.get('num_experts', c.get('num_local_experts', 64)))" "$model/config.json")
declare -A llama_bytes
for f in $FORMATS; do llama_bytes[$f]=$("$PY" tools/peer_gguf.py --llama-src "$src" --step-bytes "$(gguf $f)" --top-k ${topk% *} --experts ${topk#* }); done
greedy_bin="$out/llama_greedy"
[ -x "$greedy_bin" ] || cc -O2 -I"$src/include" -I"$src/ggml/include" bench/peer/llama_greedy.c -o "$greedy_bin" \
    "$llama/src/libllama.a" "$llama/ggml/src/libggml.a" "$llama/ggml/src/libggml-cpu.a" "$llama/ggml/src/libggml-base.a" \
    -lstdc++ -lm -fopenmp -lpthread

# ---- one measurement = one JSON line in results.jsonl ----
res="$out/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
num() { grep -o "\"$1\":[[:space:]]*[-0-9.e+]*" | head -1 | sed 's/.*:[[:space:]]*//'; }
emit() { echo "{\"rep\": $rep, \"engine\": \"$1\", \"format\": \"$2\", \"test\": \"$3\", \"threads\": $4, \"tok_s\": ${5:-0}, \"bytes\": ${6:-0}, \"membw\": $membw}" >>"$res"; }
# llama-bench maps the file afresh in every process: its first repetition pays the page faults of
# every page it touches (roe bench touches them all before timing). So 3 repetitions, the first dropped.
later() { "$PY" -c "import json,statistics,sys; r=json.loads(sys.stdin.readline()); print(statistics.median(r['samples_ts'][1:]))"; }
# REPACK=0: llama.cpp without its repacked (AMX / interleaved) CPU weights: on the Intel host of
# 2026-12-07 evening its repacked Q8_0 / Q4_K_M prompt path crashed (SIGSEGV in llama-bench).
REPACK=${REPACK:-1}
llama_tg() { "$llama/bin/llama-bench" -m "$(gguf $1)" -t "$2" -p 0 -n "$GEN" -r 3 --repack "$REPACK" -o jsonl 2>/dev/null | later; }
llama_pp() { "$llama/bin/llama-bench" -m "$(gguf $1)" -t "$2" -p "$PROMPT" -n 0 -r 3 --repack "$REPACK" -o jsonl 2>/dev/null | later; }
# batched: a first configuration of one sequence takes the page faults; the B-sequence one is timed
llama_bb() { "$llama/bin/llama-batched-bench" -m "$(gguf $1)" -t "$2" -tb "$2" -c $(($3 * (16 + GEN) + 64)) -b 2048 -ub 512 \
                 -npp 16 -ntg "$GEN" -npl "1,$3" $([ "$REPACK" = 1 ] || echo --no-repack) --output-format jsonl 2>/dev/null | grep "\"pl\": *$3[,}]" | num speed_tg; }
# quiet: before each test, wait (at most WAIT_S seconds, default 120) until the CPUs were at least
# IDLE percent idle (default 90; 0: do not wait) over the last 2 seconds: others' work on a 2-core
# machine stalls an OpenMP thread at every barrier, on both sides.
IDLE=${IDLE:-90}
WAIT_S=${WAIT_S:-120}
quiet() {
    [ "$IDLE" -gt 0 ] || return 0
    local end=$((SECONDS + WAIT_S)) a b
    while [ $SECONDS -lt $end ]; do
        a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
        local tot=0 i
        for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
        [ $tot -gt 0 ] && [ $((100 * (b[4] - a[4]) / tot)) -ge "$IDLE" ] && return 0
    done
    echo "peer_llamacpp: the machine did not get $IDLE% idle within $WAIT_S s; measuring anyway" >&2
}
roe_run() { "$ROE" bench --model "$(roedir $1)" --threads "$2" --batch "$3" --prompt-len "$4" --gen-len "$5" --json 2>/dev/null; }
# Formats outer, reps inner: one format's two files (roe's and llama.cpp's) stay in the page cache
# together (the three formats of both at once need about 27 GB for the OLMoE shape at 8 layers).
for f in $FORMATS; do
    for rep in $(seq "$R"); do
        quiet; membw_all=$("$MEMBW" --json --mb 2048 --passes 3)
        for t in $THREADS; do
            if [ "$t" = 1 ]; then membw=$(echo "$membw_all" | num read_gbs_1_thread); else membw=$(echo "$membw_all" | num read_gbs_all_threads); fi
            quiet; emit llama "$f" decode "$t" "$(llama_tg $f $t)" "${llama_bytes[$f]}"
            quiet; o=$(roe_run $f $t 1 16 "$GEN"); emit roe "$f" decode "$t" "$(echo "$o" | num decode_tokens_per_s)" "$(echo "$o" | num bytes_per_step)"
            quiet; emit llama "$f" prefill "$t" "$(llama_pp $f $t)"
            quiet; o=$(roe_run $f $t 1 "$PROMPT" 1); emit roe "$f" prefill "$t" "$(echo "$o" | num prefill_tokens_per_s)"
            [ "$t" = "${THREADS##* }" ] || continue
            for b in $BATCHES; do
                quiet; emit llama "$f" "batch$b" "$t" "$(llama_bb $f $t $b)"
                quiet; o=$(roe_run $f $t "$b" 16 "$GEN"); emit roe "$f" "batch$b" "$t" "$(echo "$o" | num decode_tokens_per_s)"
            done
        done
        echo "peer_llamacpp: $f rep $rep of $R done ($res)" >&2
    done
done

# ---- the table: medians, paired ratios, bandwidth shares ----
"$PY" - "$res" <<'PYEOF'
import collections, json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = collections.defaultdict(dict)
for r in rows:
    by[(r["format"], r["test"], r["threads"])].setdefault(r["engine"], {})[r["rep"]] = r
names = {"bf16": "bf16 / bf16", "q8": "q8 / Q8_0", "q4": "q4 / Q4_K_M"}
print("| format (roe / llama.cpp) | test | threads | roe tok/s | llama.cpp tok/s | roe / llama.cpp (paired median, min-max) | best of reps: roe / llama.cpp, ratio | bandwidth share roe / llama.cpp |")
print("|---|---|---|---|---|---|---|---|")
for (f, test, t), e in sorted(by.items(), key=lambda k: (k[0][0], k[0][2], k[0][1])):
    if "roe" not in e or "llama" not in e:
        continue
    reps = sorted(set(e["roe"]) & set(e["llama"]))
    ro = [e["roe"][i]["tok_s"] for i in reps]
    ll = [e["llama"][i]["tok_s"] for i in reps]
    ratio = [a / b for a, b in zip(ro, ll) if b]
    if not ratio:  # llama.cpp gave no figure in any rep (a failed run prints 0)
        print(f"| {names.get(f, f)} | {test} | {t} | {statistics.median(ro):.1f} | failed | | | |")
        continue
    share = ""
    if test == "decode":
        sr = statistics.median(e["roe"][i]["tok_s"] * e["roe"][i]["bytes"] / 1e9 / e["roe"][i]["membw"] for i in reps)
        sl = statistics.median(e["llama"][i]["tok_s"] * e["llama"][i]["bytes"] / 1e9 / e["llama"][i]["membw"] for i in reps)
        share = f"{sr:.2f} / {sl:.2f}"
    best = f"{max(ro):.1f} / {max(ll):.1f}, {max(ro) / max(ll):.2f}" if max(ll) else ""
    print(f"| {names.get(f, f)} | {test} | {t} | {statistics.median(ro):.1f} | {statistics.median(ll):.1f} | "
          f"{statistics.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f}) | {best} | {share} |")
PYEOF

# ---- greedy agreement at bf16 ----
ids=$(seq 1 "$GREEDY" | awk '{ printf "%s%d", (NR > 1 ? "," : ""), ($1 * 7919) % 50000 + 100 }')
a=$("$greedy_bin" "$(gguf bf16)" "$ids" "$GREEDY" 2)
b=$("$ROE" generate --model "$model" --prompt-ids "$ids" --max-tokens "$GREEDY" --ignore-eos --json 2>/dev/null |
    "$PY" -c "import json,sys; print(','.join(map(str, json.load(sys.stdin)['results'][0]['tokens'])))" 2>/dev/null || true)
"$PY" - "$a" "$b" <<'PYEOF'
import sys
a, b = sys.argv[1].split(","), sys.argv[2].split(",") if sys.argv[2] else []
same = sum(x == y for x, y in zip(a, b))
first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
print(f"greedy tokens, bf16, same 32 prompt ids: {same} of {len(a)} positions agree; first divergence at {first}")
print(f"  llama.cpp: {','.join(a)}\n  roe:       {','.join(b)}")
PYEOF
