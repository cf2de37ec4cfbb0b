#!/usr/bin/env python3
"""Mix corpora into one (train / validation / test JSONL, {"source", "text", ...} per line),
shuffled by a fixed seed, for the specialising bundled model of issue 19: the bundled corpus
(tools/data/build_bundled_corpus.py, .data/olmoe-tiny) and the synthetic languages
(tools/data/synth_langs.py, .data/synth).

Usage: python tools/data/mix_corpus.py [--inputs .data/olmoe-tiny .data/synth] [--out .data/roe-mix]
"""
import argparse
import json
import os
import random

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", nargs="+", default=[os.path.join(REPO, ".data", "olmoe-tiny"),
                                                   os.path.join(REPO, ".data", "synth")])
    ap.add_argument("--out", default=os.path.join(REPO, ".data", "roe-mix"))
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for split in ("train", "validation", "test"):
        lines = []
        for d in args.inputs:
            path = os.path.join(d, split + ".jsonl")
            if not os.path.exists(path):
                raise SystemExit("mix_corpus: %s is missing (build it first: see this script's docstring)" % path)
            with open(path, encoding="utf-8") as f:
                lines.extend(l for l in f if l.strip())
        random.Random("%d-%s" % (args.seed, split)).shuffle(lines)
        with open(os.path.join(args.out, split + ".jsonl"), "w", encoding="utf-8") as f:
            f.writelines(lines)
        src = {}
        for l in lines:
            s = json.loads(l).get("source", "?")
            src[s] = src.get(s, 0) + 1
        print(split, len(lines), "documents", dict(sorted(src.items())))


if __name__ == "__main__":
    main()
