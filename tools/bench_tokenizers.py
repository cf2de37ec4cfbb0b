#!/usr/bin/env python3
"""Hugging Face `tokenizers` encode speed on one thread, for comparison with
bench/tokenize_speed (roe): every string of a JSON-lines file encoded with
encode(s, add_special_tokens=False), one call per string, and encode_batch over all of them
with the Rayon pool limited to one thread; the best of --reps passes (each at least --min-s).

  RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false \\
      python tools/bench_tokenizers.py TOKENIZER_JSON STRINGS_JSONL [--reps 5]

Prints one JSON object. bench/tokenize.sh sets the environment and runs both.
"""
import argparse
import json
import os
import time

import tokenizers
from tokenizers import Tokenizer


def best_pass(fn, reps, min_s):
    best = float("inf")
    for _ in range(reps):
        t0, passes = time.process_time(), 0  # CPU time of this (one-thread) process, as roe's bench
        while True:
            fn()
            passes += 1
            el = time.process_time() - t0
            if el >= min_s:
                break
        best = min(best, el / passes)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tokenizer")
    ap.add_argument("strings")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-s", type=float, default=0.5)
    args = ap.parse_args()
    if os.environ.get("RAYON_NUM_THREADS") != "1":
        raise SystemExit("set RAYON_NUM_THREADS=1 (one thread, as roe's figure)")
    tok = Tokenizer.from_file(args.tokenizer)
    with open(args.strings, encoding="utf-8") as f:
        strings = [json.loads(line) for line in f if line.strip()]
    nbytes = sum(len(s.encode()) for s in strings)
    one = best_pass(lambda: [tok.encode(s, add_special_tokens=False) for s in strings], args.reps, args.min_s)
    batch = best_pass(lambda: tok.encode_batch(strings, add_special_tokens=False), args.reps, args.min_s)
    print(json.dumps({"tokenizers": tokenizers.__version__, "strings": len(strings), "bytes": nbytes,
                      "s_per_pass_encode": round(one, 6), "mb_per_s_encode": round(nbytes / one / 1e6, 2),
                      "s_per_pass_batch": round(batch, 6), "mb_per_s_batch": round(nbytes / batch / 1e6, 2)}))


if __name__ == "__main__":
    main()
