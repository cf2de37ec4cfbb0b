#!/usr/bin/env python3
"""Build the corpus of the bundled model (models/olmoe-tiny) reproducibly.

Sources (all available on a fresh Debian 12 machine through apt; the script installs the
packages itself when they are missing):

  * fortunes, fortunes-min  -> /usr/share/games/fortunes/*.u8 (quotations, jokes, poems);
                               every file except ascii-art; one document per fortune
  * dict-devil              -> Ambrose Bierce, "The Devil's Dictionary" (one document per entry)
  * wordnet-base            -> WordNet 3.0 glosses, one document per synset:
                               "dog, domestic dog (noun): a member of the genus Canis ..."
  * generated arithmetic    -> multi-digit addition / subtraction in question-answer form,
                               "Q: 4821 + 379 = ? A: 5200", 8 problems per document

Everything is deterministic: sorted file lists, exact-duplicate removal, fixed seeds.
Each text document is assigned to train / validation / test by a fixed-seed shuffle
(2% validation, 2% test per source); arithmetic problems of the three splits are drawn
with different seeds and held-out problems never occur in the training split.

Outputs (under --out, default .data/olmoe-tiny, git-ignored):
  train.jsonl, validation.jsonl, test.jsonl   one {"source": ..., "text": ...} per line
  SHA256SUMS                                  sha256sum-compatible checksums
and, with --eval-dir (default models/olmoe-tiny/eval), the small evaluation sets drawn
from the held-out splits (see models/olmoe-tiny/README.md for the format):
  text-{validation,test}.jsonl, arith-{validation,test}.jsonl, choice-{validation,test}.jsonl

The expected checksums are committed in tools/data/bundled_corpus.sha256; --check
compares against them (the text depends on the Debian package versions recorded there).

Usage:  python tools/data/build_bundled_corpus.py [--check]
"""
import argparse
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ["fortunes", "fortunes-min", "dict-devil", "wordnet-base"]
FORTUNE_DIR = "/usr/share/games/fortunes"
FORTUNE_EXCLUDE = {"ascii-art"}
DEVIL = "/usr/share/dictd/devil.dict.dz"
WORDNET_DIR = "/usr/share/wordnet"
SEED = 20240917
VAL_FRAC = 0.02
TEST_FRAC = 0.02
EOT = "<|endoftext|>"

# arithmetic: problems per split and per document
ARITH_N = {"train": 160000, "validation": 2000, "test": 2000}
ARITH_PER_DOC = 8


def ensure_packages():
    missing = []
    for p in PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            missing.append(p)
    if missing:
        print("installing", missing, file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        prefix = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(prefix + ["apt-get", "update"], check=True, env=env)
        subprocess.run(prefix + ["apt-get", "install", "-y", "--no-install-recommends"] + missing,
                       check=True, env=env)


def package_versions():
    out = {}
    for p in PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True, text=True)
        out[p] = r.stdout.strip()
    return out


def clean(text):
    text = text.replace("\r", "").replace("\t", "    ")
    text = "".join(ch for ch in text if ch == "\n" or ch.isprintable())
    lines = [ln.rstrip() for ln in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def read_fortunes():
    docs = []
    names = sorted(f[:-3] for f in os.listdir(FORTUNE_DIR) if f.endswith(".u8"))
    for name in names:
        if name in FORTUNE_EXCLUDE:
            continue
        with open(os.path.join(FORTUNE_DIR, name + ".u8"), encoding="utf-8", errors="replace") as f:
            raw = f.read()
        for chunk in re.split(r"^%\s*$", raw, flags=re.M):
            t = clean(chunk)
            if len(t) >= 20:
                docs.append(t)
    return docs


def read_devil():
    with gzip.open(DEVIL, "rt", encoding="utf-8", errors="replace") as f:
        raw = f.read()
    docs = []
    # entries start with an upper-case headword followed by a comma and a part of speech
    parts = re.split(r"\n\s*\n(?=[A-Z][A-Z' -]+, [a-z]+\.)", raw)
    for p in parts:
        t = clean(p)
        if re.match(r"^[A-Z][A-Z' -]+, [a-z]+\.", t) and len(t) >= 20:
            docs.append(t)
    return docs


WN_POS = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}


def read_wordnet():
    docs = []
    for pos in ["adj", "adv", "noun", "verb"]:
        with open(os.path.join(WORDNET_DIR, "data." + pos), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):
                    continue  # license header
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                n = int(fields[3], 16)
                words = []
                for i in range(n):
                    w = fields[4 + 2 * i]
                    w = re.sub(r"\([a-z]+\)$", "", w).replace("_", " ")
                    if w not in words:
                        words.append(w)
                gloss = clean(gloss.strip())
                if not gloss:
                    continue
                docs.append("%s (%s): %s" % (", ".join(words[:4]), WN_POS[pos], gloss))
    return docs


def split_docs(docs, seed):
    seen, uniq = set(), []
    for d in docs:
        if d not in seen:
            seen.add(d)
            uniq.append(d)
    rng = random.Random(seed)
    idx = list(range(len(uniq)))
    rng.shuffle(idx)
    nv = max(1, int(round(len(uniq) * VAL_FRAC)))
    nt = max(1, int(round(len(uniq) * TEST_FRAC)))
    val = [uniq[i] for i in sorted(idx[:nv])]
    test = [uniq[i] for i in sorted(idx[nv:nv + nt])]
    train = [uniq[i] for i in sorted(idx[nv + nt:])]
    return {"train": train, "validation": val, "test": test}


def arith_problem(rng):
    """One problem: operands of 1-4 digits (the first at least 2), + or -, result >= 0."""
    da = rng.choice([2, 3, 3, 4, 4])
    db = rng.randint(1, da)
    a = rng.randint(10 ** (da - 1), 10 ** da - 1)
    b = rng.randint(10 ** (db - 1) if db > 1 else 0, 10 ** db - 1)
    op = rng.choice("+-")
    if op == "-" and b > a:
        a, b = b, a
    c = a + b if op == "+" else a - b
    return a, op, b, c


def arith_line(a, op, b, c):
    return "Q: %d %s %d = ? A: %d" % (a, op, b, c)


def make_arith():
    held = {}
    out = {}
    for k, split in enumerate(["test", "validation", "train"]):
        rng = random.Random(SEED + 1000 + k)
        probs, seen = [], set()
        while len(probs) < ARITH_N[split]:
            p = arith_problem(rng)
            key = p[:3]
            if key in seen or key in held:
                continue
            seen.add(key)
            probs.append(p)
        if split != "train":
            for p in probs:
                held[p[:3]] = split
        out[split] = probs
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")


def make_eval_sets(splits, arith, eval_dir):
    """Small evaluation sets from the held-out splits (formats: see the model card)."""
    os.makedirs(eval_dir, exist_ok=True)
    for k, split in enumerate(["validation", "test"]):
        rng = random.Random(SEED + 2000 + k)
        docs = splits[split]
        by_src = {}
        for d in docs:
            by_src.setdefault(d["source"], []).append(d["text"])
        # (a) text passages for NLL: 100 fortunes, 20 devil, 100 wordnet, 30 arithmetic docs
        text = []
        for src, n in [("fortunes", 100), ("devil", 20), ("wordnet", 100), ("arithmetic", 30)]:
            pool = [t for t in by_src.get(src, []) if len(t) <= 1200]
            text += rng.sample(pool, min(n, len(pool)))
        write_jsonl(os.path.join(eval_dir, "text-%s.jsonl" % split),
                    [{"text": t} for t in text])
        # (b) arithmetic exact match: 400 problems
        probs = arith[split][:400]
        write_jsonl(os.path.join(eval_dir, "arith-%s.jsonl" % split),
                    [{"prompt": "Q: %d %s %d = ? A:" % (a, op, b), "answer": " %d" % c}
                     for a, op, b, c in probs])
        # (c) multiple choice: 150 wordnet "which gloss" + up to 150 fortune continuations;
        # the three distractors are drawn from other held-out documents of the same kind
        items = []
        wn = [t.split(": ", 1) for t in by_src["wordnet"] if len(t) <= 300]
        for i in rng.sample(range(len(wn)), 150):
            others = rng.sample([j for j in range(len(wn)) if j != i and wn[j][1] != wn[i][1]], 3)
            label = rng.randrange(4)
            choices = [" " + wn[j][1] for j in others]
            choices.insert(label, " " + wn[i][1])
            items.append({"context": wn[i][0] + ":", "choices": choices, "label": label,
                          "kind": "wordnet-gloss"})
        fo = []
        for t in by_src["fortunes"]:
            words = t.split(" ")
            if 16 <= len(words) <= 120 and "--" not in t:
                cut = len(words) // 2
                fo.append((" ".join(words[:cut]), " " + " ".join(words[cut:])))
        for i in rng.sample(range(len(fo)), min(150, len(fo))):
            others = rng.sample([j for j in range(len(fo)) if j != i], 3)
            label = rng.randrange(4)
            choices = [fo[j][1] for j in others]
            choices.insert(label, fo[i][1])
            items.append({"context": fo[i][0], "choices": choices, "label": label,
                          "kind": "fortune-continuation"})
        write_jsonl(os.path.join(eval_dir, "choice-%s.jsonl" % split), items)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, ".data", "olmoe-tiny"))
    ap.add_argument("--eval-dir", default=os.path.join(REPO, "models", "olmoe-tiny", "eval"))
    ap.add_argument("--no-eval", action="store_true", help="do not (re)write the evaluation sets")
    ap.add_argument("--no-apt", action="store_true", help="do not try to install missing packages")
    ap.add_argument("--check", action="store_true",
                    help="compare the checksums with tools/data/bundled_corpus.sha256")
    args = ap.parse_args()

    if not args.no_apt:
        ensure_packages()
    sources = {
        "fortunes": read_fortunes(),
        "devil": read_devil(),
        "wordnet": read_wordnet(),
    }
    splits = {"train": [], "validation": [], "test": []}
    for k, (src, docs) in enumerate(sorted(sources.items())):
        s = split_docs(docs, SEED + k)
        for name in splits:
            splits[name] += [{"source": src, "text": t} for t in s[name]]
        print("%-10s %6d docs -> train %d / validation %d / test %d" % (
            src, len(docs), len(s["train"]), len(s["validation"]), len(s["test"])), file=sys.stderr)
    arith = make_arith()
    for name in splits:
        probs = arith[name]
        for i in range(0, len(probs), ARITH_PER_DOC):
            splits[name].append({"source": "arithmetic",
                                 "text": "\n".join(arith_line(*p) for p in probs[i:i + ARITH_PER_DOC])})
    # deterministic interleaving of sources in each split
    for k, name in enumerate(["train", "validation", "test"]):
        random.Random(SEED + 500 + k).shuffle(splits[name])

    os.makedirs(args.out, exist_ok=True)
    sums = []
    for name in ["train", "validation", "test"]:
        path = os.path.join(args.out, name + ".jsonl")
        write_jsonl(path, splits[name])
        nbytes = sum(len(d["text"].encode()) for d in splits[name])
        print("%-10s %7d docs %9d bytes of text" % (name, len(splits[name]), nbytes), file=sys.stderr)
        sums.append((sha256_file(path), name + ".jsonl"))
    if not args.no_eval:
        make_eval_sets(splits, arith, args.eval_dir)
        for f in sorted(os.listdir(args.eval_dir)):
            if not re.match(r"^(text|arith|choice)-(validation|test)\.jsonl$", f):
                continue
            sums.append((sha256_file(os.path.join(args.eval_dir, f)), "eval/" + f))
    vers = package_versions()
    body = "".join("%s  %s\n" % s for s in sums)
    with open(os.path.join(args.out, "SHA256SUMS"), "w") as f:
        f.write(body)
    print(body, end="")
    print("# debian packages: " + " ".join("%s=%s" % kv for kv in sorted(vers.items())), file=sys.stderr)
    if args.check:
        ref = os.path.join(REPO, "tools", "data", "bundled_corpus.sha256")
        want = [ln for ln in open(ref).read().splitlines() if ln and not ln.startswith("#")]
        got = body.splitlines()
        if args.no_eval:
            want = [ln for ln in want if not ln.split()[1].startswith("eval/")]
        if want != got:
            print("CHECKSUM MISMATCH against %s" % ref, file=sys.stderr)
            sys.exit(1)
        print("checksums match %s" % ref, file=sys.stderr)


if __name__ == "__main__":
    main()
