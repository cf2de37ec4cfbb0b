#!/usr/bin/env bash
# Soak: `roe serve` under bench/serve_load at fixed concurrency for a given time; samples the
# server's resident memory (VmRSS) every INTERVAL seconds and reports it with the load
# generator's result and the server's request counters. A healthy server has no failed request
# and no resident-memory growth after warm-up.
#
#   bench/serve_soak.sh [SECONDS] [CONCURRENCY] [MODEL_DIR] [BUILD_DIR] [INPUT_LEN] [OUTPUT_LEN] [INTERVAL] [THREADS]
set -euo pipefail
secs=${1:-600}
conc=${2:-16}
model=${3:-models/olmoe-tiny}
build=${4:-build}
in_len=${5:-128}
out_len=${6:-128}
every=${7:-10}
threads=${8:-0}
out=bench/out/serve
mkdir -p "$out"
rm -f "$out/soak-port"
"$build/roe" serve --model "$model" --port 0 --port-file "$out/soak-port" --threads "$threads" --max-seqs "$conc" \
    >"$out/soak-server.log" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do [ -s "$out/soak-port" ] && break; sleep 0.1; done
port=$(cat "$out/soak-port")
rss() { awk '/^VmRSS/ {print $2}' /proc/$pid/status; }
echo "t_s rss_kb" >"$out/soak-rss.txt"
echo "0 $(rss)" >>"$out/soak-rss.txt"
"$build/bench/serve_load" --port "$port" --duration "$secs" --max-concurrency "$conc" --num-prompts 1000 \
    --random-input-len "$in_len" --random-output-len "$out_len" --random-range-ratio 0.5 \
    --json "$out/soak.json" >"$out/soak.txt" 2>&1 &
load=$!
t0=$(date +%s)
while kill -0 $load 2>/dev/null; do
    sleep "$every"
    echo "$(($(date +%s) - t0)) $(rss)" >>"$out/soak-rss.txt"
done
wait $load || true
echo "$(($(date +%s) - t0)) $(rss)" >>"$out/soak-rss.txt"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^roe_requests_total|^roe_generation_tokens_total' >"$out/soak-metrics.txt" || true
kill -TERM $pid
wait $pid || true
trap - EXIT
cat "$out/soak.txt"
cat "$out/soak-metrics.txt"
# resident memory: first sample after warm-up (the first minute), last, max
awk 'NR > 1 { t[NR] = $1; r[NR] = $2; n = NR }
     END { w = 0; for (i = 2; i <= n; i++) if (t[i] >= 60 && !w) w = i; if (!w) w = 2;
           mx = 0; for (i = 2; i <= n; i++) if (r[i] > mx) mx = r[i];
           printf "RSS (MB): start %.1f, after warm-up (t=%ds) %.1f, end (t=%ds) %.1f, max %.1f; growth after warm-up %.1f MB\n",
                  r[2] / 1024, t[w], r[w] / 1024, t[n], r[n] / 1024, mx / 1024, (r[n] - r[w]) / 1024 }' "$out/soak-rss.txt"
