#!/usr/bin/env python3
"""Synthetic languages with a known distribution: data on which a small MoE's experts can
specialise, and whose best possible loss is computable (issue 19).

The grammar (fixed by --grammar-seed):
  * S languages. Language l has its own inventory of syllables (no syllable is shared between
    languages), and W words of 1-3 of its syllables (no word is shared: a word names its
    language). Their BPE tokens therefore mostly differ by language.
  * Each language is a first-order Markov chain over its words: a start distribution
    (Dirichlet(ALPHA) over the W words); after word w the sentence ends with probability
    q_l(w) (uniform in [Q_LO, Q_HI]), else the next word is one of w's F successors
    (Dirichlet(ALPHA) weights).
A document: a pair {a, b} of distinct languages drawn uniformly; then sentences, each in a or in b
with probability 1/2; after each sentence the document ends with probability P_END (at least one
sentence). Text: a sentence is its words joined by ' ' and ended by '.', sentences are joined by
' '.

The exact probability of a document's text (words name their language, and the text parses back
into words and sentences uniquely):
  P(text, and that it ends there) = P(pair) * prod_s [1/2 * P_lang(s)(s)] * (1 - P_END)^(n-1) * P_END
with P(pair) summed over the pairs that contain every language the text uses: 1 / C(S, 2) if it
uses two languages, (S - 1) / C(S, 2) = 2 / S if it uses one. `optimum_nll` is -log of it without
the final P_END (`roe eval` scores the text's tokens, not the separator after it), in nats; a
model's summed token loss on the same text cannot be lower in expectation (the tokenizer is
deterministic), so the difference is the model's gap to the optimum.

Outputs (--out, default .data/synth): train.jsonl, validation.jsonl, test.jsonl, one
{"source": "synth", "text": ..., "optimum_nll": ..., "languages": [a, b]} per line, and
grammar.json (the whole distribution). Deterministic given the seeds.

Usage: python tools/data/synth_langs.py [--out .data/synth] [--train-docs 100000]
       python tools/data/synth_langs.py --self-test
"""
import argparse
import itertools
import json
import math
import os
import random

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S, W, F = 32, 128, 6
ALPHA = 0.5
Q_LO, Q_HI = 0.06, 0.22
P_END = 1.0 / 8
CONS = "bcdfghjklmnprstvwz"
VOWELS = "aeiou"


def dirichlet(rng, n, alpha):
    g = [rng.gammavariate(alpha, 1.0) for _ in range(n)]
    s = sum(g)
    return [x / s for x in g]


def make_grammar(seed):
    rng = random.Random(seed)
    # syllables: consonant-vowel and consonant-vowel-consonant, shuffled, dealt out to languages
    syl = [c + v for c in CONS for v in VOWELS] + [c + v + d for c in CONS for v in VOWELS for d in "nrst"]
    rng.shuffle(syl)
    per = len(syl) // S
    langs = []
    for l in range(S):
        inv = syl[l * per:(l + 1) * per]
        words = set()
        while len(words) < W:
            k = rng.choice((1, 2, 2, 3))
            words.add("".join(rng.choice(inv) for _ in range(k)))
        words = sorted(words)
        rng.shuffle(words)
        start = dirichlet(rng, W, ALPHA)
        succ, probs, q = [], [], []
        for _ in range(W):
            succ.append(rng.sample(range(W), F))
            probs.append(dirichlet(rng, F, ALPHA))
            q.append(rng.uniform(Q_LO, Q_HI))
        langs.append({"syllables": inv, "words": words, "start": start, "succ": succ, "probs": probs, "end": q})
    return {"S": S, "W": W, "F": F, "alpha": ALPHA, "p_end": P_END, "seed": seed, "languages": langs}


def pick(rng, p):
    u, acc = rng.random(), 0.0
    for i, x in enumerate(p):
        acc += x
        if u < acc:
            return i
    return len(p) - 1


def sentence(rng, lang):
    w = pick(rng, lang["start"])
    out = [w]
    while rng.random() >= lang["end"][w]:
        w = lang["succ"][w][pick(rng, lang["probs"][w])]
        out.append(w)
    return out


def document(rng, g):
    a, b = rng.sample(range(g["S"]), 2)
    sents = []
    while True:
        l = a if rng.random() < 0.5 else b
        sents.append((l, sentence(rng, g["languages"][l])))
        if rng.random() < g["p_end"]:
            break
    text = " ".join(" ".join(g["languages"][l]["words"][w] for w in ws) + "." for l, ws in sents)
    return text, sents, sorted((a, b))


class Parser:
    """Text -> (language, word ids) per sentence, for the optimum of any text of the grammar."""

    def __init__(self, g):
        self.g = g
        self.word = {}
        for l, lang in enumerate(g["languages"]):
            for i, w in enumerate(lang["words"]):
                assert w not in self.word, "word %s in two languages" % w
                self.word[w] = (l, i)

    def parse(self, text):
        assert text.endswith(".")
        out = []
        for s in text[:-1].split(". "):
            ids = [self.word[w] for w in s.split(" ")]
            l = ids[0][0]
            assert all(x[0] == l for x in ids), "sentence mixes languages"
            out.append((l, [x[1] for x in ids]))
        return out


def log_p_sentence(lang, ws):
    lp = math.log(lang["start"][ws[0]])
    for prev, nxt in zip(ws, ws[1:]):
        lp += math.log(1 - lang["end"][prev])
        lp += math.log(lang["probs"][prev][lang["succ"][prev].index(nxt)])
    return lp + math.log(lang["end"][ws[-1]])


def optimum_nll(g, sents):
    """-log P(text) without the final end-of-document event, in nats (module docstring)."""
    used = sorted({l for l, _ in sents})
    assert 1 <= len(used) <= 2
    n_pairs = g["S"] * (g["S"] - 1) // 2
    lp = math.log((1 if len(used) == 2 else g["S"] - 1) / n_pairs)
    for l, ws in sents:
        lp += math.log(0.5) + log_p_sentence(g["languages"][l], ws)
    lp += (len(sents) - 1) * math.log(1 - g["p_end"])
    return -lp


def self_test():
    """The optimum against brute-force enumeration on a grammar small enough to enumerate."""
    g = make_grammar(7)
    # a tiny grammar: 3 languages of 3 words, 2 successors, documents of at most 2 sentences
    rng = random.Random(1)
    small = {"S": 3, "W": 3, "F": 2, "p_end": 0.5, "languages": []}
    for l in range(3):
        lang = g["languages"][l]
        small["languages"].append({"words": lang["words"][:3], "start": dirichlet(rng, 3, 1.0),
                                   "succ": [rng.sample(range(3), 2) for _ in range(3)],
                                   "probs": [dirichlet(rng, 2, 1.0) for _ in range(3)],
                                   "end": [rng.uniform(0.3, 0.7) for _ in range(3)]})
    # enumerate the generative process exactly for one given document, summing over pairs and
    # per-sentence language choices, and compare with optimum_nll
    for trial in range(200):
        text, sents, _ = document(rng, small)
        total = 0.0
        for a, b in itertools.combinations(range(3), 2):
            p = 1.0 / 3
            for l, ws in sents:
                ps = 0.0
                for choice in (a, b):
                    if choice == l:
                        ps += 0.5 * math.exp(log_p_sentence(small["languages"][l], ws))
                p *= ps
            total += p
        total *= (1 - small["p_end"]) ** (len(sents) - 1)
        got = optimum_nll(small, Parser(small).parse(text))
        assert abs(got + math.log(total)) < 1e-9, (text, got, -math.log(total))
    # the sampler draws what log_p_sentence assigns: empirical frequency of the most common
    # one-word sentences against their probability
    lang = small["languages"][0]
    counts = {}
    for _ in range(200000):
        ws = tuple(sentence(rng, lang))
        counts[ws] = counts.get(ws, 0) + 1
    for ws, c in sorted(counts.items(), key=lambda x: -x[1])[:5]:
        p = math.exp(log_p_sentence(lang, list(ws)))
        sd = math.sqrt(p * (1 - p) / 200000)
        assert abs(c / 200000 - p) < 5 * sd + 1e-9, (ws, c / 200000, p)
    print("self-test ok: optimum = brute-force enumeration on 200 documents; sampler frequencies match")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, ".data", "synth"))
    ap.add_argument("--grammar-seed", type=int, default=20261207)
    ap.add_argument("--train-docs", type=int, default=100000)
    ap.add_argument("--eval-docs", type=int, default=2000)
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    g = make_grammar(args.grammar_seed)
    parser = Parser(g)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "grammar.json"), "w") as f:
        json.dump(g, f)
    for split, n, seed in (("train", args.train_docs, 1), ("validation", args.eval_docs, 2), ("test", args.eval_docs, 3)):
        rng = random.Random(args.grammar_seed * 10 + seed)
        tot_nll = tot_chars = 0.0
        with open(os.path.join(args.out, split + ".jsonl"), "w") as f:
            for _ in range(n):
                text, sents, pair = document(rng, g)
                nll = optimum_nll(g, sents)
                assert parser.parse(text) == [(l, ws) for l, ws in sents]
                tot_nll += nll
                tot_chars += len(text)
                f.write(json.dumps({"source": "synth", "text": text, "optimum_nll": round(nll, 6),
                                    "languages": pair}) + "\n")
        print("%s: %d documents, %.0f chars, optimum %.4f nats/char" % (split, n, tot_chars, tot_nll / tot_chars))


if __name__ == "__main__":
    main()
