#!/usr/bin/env bash
# Expert-parallel benchmarks for docs/PERFORMANCE.md ("Expert parallelism"), all in one run:
#   1. dispatch + combine (bench/ep_dispatch.c) for 1..4096 rows per rank, hidden 2048,
#      top-8 of 64 experts, at 2 and 4 ranks, against raw MPI_Alltoallv of the same bytes
#      (caches warm; and cold at 2 ranks);
#   2. a layer at 2 ranks with synthetic experts of 100 us, overlap on versus off: ranks in
#      step, rank 0 arriving 1 ms late (its attention had more rows), and late with rank 1's
#      experts hot;
#   3. decode tokens/s of the OLMoE-1B-7B-shaped random model at 1 and 2 ranks (batch 1, 2
#      and 3 -- 3 puts two sequences on rank 0 --, overlap on and off), next to this
#      machine's memory read bandwidth.
#
#   bench/expert_parallel.sh [BUILD_DIR] [MODEL_DIR] [OUT_DIR]
#   defaults: build, .data/olmoe-1b7b-random (tools/make_random_checkpoint.py --out it), bench/out
#
# Runs nothing else heavy meanwhile: the machine's cores are the measurement.
set -euo pipefail
build=${1:-build}
model=${2:-.data/olmoe-1b7b-random}
out=${3:-bench/out}
mkdir -p "$out"
mpi=(mpirun --allow-run-as-root --oversubscribe)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
log=$out/expert_parallel-$stamp.jsonl
echo "# $(date -u) $(uname -n) $(nproc) cpus; $(lscpu | grep 'Model name' | sed 's/ \+/ /g')" | tee "$log"

echo "== membw" >&2
echo "{\"bench\": \"membw\", \"result\": $("$build/bench/membw" --json --mb 2048 --passes 5)}" | tee -a "$log"

# caches warm (as the previous iteration left them) at 2 and 4 ranks; cold (evicted before
# each measurement, as between two layers of a real model) at 2 ranks -- with 4 ranks on 2
# cores the eviction's CPU time makes the figure the scheduler's (bench/ep_dispatch.c)
for cfg in "2 " "4 " "2 --cold"; do
    read -r n caches <<<"$cfg"
    echo "== ep_dispatch, $n ranks ${caches:-(warm)}" >&2
    # shellcheck disable=SC2086
    "${mpi[@]}" -np "$n" -x OMP_NUM_THREADS=1 "$build/bench/ep_dispatch" --json --budget 1.5 $caches |
        sed 's/^/{"bench": "ep_dispatch", "result": /; s/$/}/' | tee -a "$log"
done
# overlap on vs off, experts of 100 us: ranks in step; rank 0 late by 1 ms (the others run
# their own rows early); late by 1 ms with rank 1's experts hot (3/4 of the picks)
for mode in "" "--skew 1000" "--skew 1000 --hot 0.75"; do
    echo "== ep_dispatch, 2 ranks, experts of 100 us ${mode:-in step}, overlap on vs off" >&2
    # shellcheck disable=SC2086
    "${mpi[@]}" -np 2 -x OMP_NUM_THREADS=1 "$build/bench/ep_dispatch" --json --max-rows 16 --compute 100 $mode |
        sed 's/^/{"bench": "ep_dispatch_overlap", "result": /; s/$/}/' | tee -a "$log"
done

if [ -d "$model" ]; then
    gen=32
    # ranks, batch, overlap, threads per rank (2 ranks x 2 threads: a rank's cores are not
    # idle while the other rank computes, at the price of sharing them)
    for cfg in "1 1 1 2" "2 1 1 1" "2 1 0 1" "2 1 1 2" "1 2 1 2" "2 2 1 1" "2 2 0 1" "1 3 1 2" "2 3 1 1" "2 3 0 1"; do
        read -r ranks batch overlap threads <<<"$cfg"
        echo "== decode: $ranks rank(s) x $threads thread(s), batch $batch, overlap $overlap" >&2
        if [ "$ranks" = 1 ]; then
            res=$(OMP_NUM_THREADS=$threads "$build/roe" bench --model "$model" --batch "$batch" --gen-len $gen --json)
        else
            res=$(ROE_EP_OVERLAP=$overlap OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=passive "${mpi[@]}" -np "$ranks" \
                -x OMP_NUM_THREADS -x OMP_WAIT_POLICY -x ROE_EP_OVERLAP "$build/roe" bench --model "$model" \
                --batch "$batch" --gen-len $gen --json)
        fi
        echo "{\"bench\": \"decode\", \"ranks\": $ranks, \"threads_per_rank\": $threads, \"batch\": $batch, \"overlap\": $overlap, \"result\": $(echo "$res" | tr -d '\n\t')}" | tee -a "$log"
    done
else
    echo "no model at $model: decode skipped (.venv/bin/python tools/make_random_checkpoint.py --out $model)" >&2
fi
echo "results: $log" >&2
