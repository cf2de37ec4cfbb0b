#!/usr/bin/env python3
"""Evaluate the bundled model (models/olmoe-tiny) with Hugging Face transformers.

The bf16 checkpoint is loaded upcast to fp32 (dtype=torch.float32) and run on CPU.
Metrics, on the eval sets in <model>/eval/ (formats: see the model card):

  text-<split>.jsonl    token-level NLL / perplexity. Each passage is scored as
                        [<|endoftext|>] + tokens(text): the NLL of every text token given the
                        document separator and the preceding text (the final separator is not
                        scored). Perplexity = exp(total NLL / total tokens); 95% CI by a
                        percentile bootstrap over passages (2000 resamples, seed 0).
  arith-<split>.jsonl   exact match of greedy decoding. Input [<|endoftext|>] + tokens(prompt);
                        greedy (argmax) tokens are generated until a token containing "\\n",
                        <|endoftext|>, or 12 new tokens; the decoded continuation, cut at the
                        first "\\n", must equal "answer" exactly (answer = " " + result).
                        95% Wilson interval.
  choice-<split>.jsonl  multiple choice by log-likelihood. For every choice, score
                        sum log p(tokens(choice) | [<|endoftext|>] + tokens(context));
                        acc = argmax of the sum; acc_norm = argmax of the sum divided by the
                        number of UTF-8 bytes of the choice. 95% Wilson intervals.
  routing               on the text-<split> passages: for each layer the fraction of the top-k
                        assignments that go to each expert (fair share 1/E); acceptance: every
                        expert used and none above 3x the fair share.

Usage: python tools/eval_bundled.py [--model models/olmoe-tiny] [--split test] [--json out.json]
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EOT = "<|endoftext|>"


def wilson(k, n, z=1.96):
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Evaluator:
    def __init__(self, model_dir):
        from transformers import AutoTokenizer, OlmoeForCausalLM
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = OlmoeForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                      attn_implementation="eager")
        self.model.eval()
        self.eot = self.tok.convert_tokens_to_ids(EOT)
        self.cfg = self.model.config

    def ids(self, s):
        return self.tok(s, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def logprobs(self, ids, router=False):
        x = torch.tensor([ids])
        out = self.model(input_ids=x, output_router_logits=router, use_cache=False)
        lp = torch.log_softmax(out.logits[0].float(), dim=-1)
        return lp, (out.router_logits if router else None)

    @torch.no_grad()
    def text_nll(self, rows):
        E, K, L = self.cfg.num_experts, self.cfg.num_experts_per_tok, self.cfg.num_hidden_layers
        counts = np.zeros((L, E), dtype=np.int64)
        per = []  # (nll_sum, ntok, nbytes)
        for r in rows:
            ids = [self.eot] + self.ids(r["text"])
            lp, rl = self.logprobs(ids, router=True)
            tgt = torch.tensor(ids[1:])
            nll = -lp[:-1].gather(1, tgt[:, None]).sum().item()
            per.append((nll, len(ids) - 1, len(r["text"].encode("utf-8"))))
            for li, lg in enumerate(rl):
                top = torch.topk(torch.softmax(lg.float(), -1), K, dim=-1).indices.reshape(-1)
                counts[li] += np.bincount(top.numpy(), minlength=E)
        per = np.array(per)
        tot_nll, tot_tok, tot_bytes = per[:, 0].sum(), per[:, 1].sum(), per[:, 2].sum()
        rng = np.random.default_rng(0)
        boots = []
        for _ in range(2000):
            idx = rng.integers(0, len(per), len(per))
            boots.append(per[idx, 0].sum() / per[idx, 1].sum())
        lo, hi = np.percentile(boots, [2.5, 97.5])
        frac = counts / counts.sum(axis=1, keepdims=True)
        return {
            "passages": len(rows), "tokens": int(tot_tok), "bytes": int(tot_bytes),
            "nll_per_token": tot_nll / tot_tok, "nll_per_token_ci95": [float(lo), float(hi)],
            "perplexity": math.exp(tot_nll / tot_tok),
            "perplexity_ci95": [math.exp(lo), math.exp(hi)],
            "bits_per_byte": tot_nll / tot_bytes / math.log(2),
        }, {
            "tokens": int(tot_tok), "experts": E, "top_k": K,
            "fraction": frac.round(5).tolist(),
            "max_over_fair": float((frac * E).max()), "min_over_fair": float((frac * E).min()),
            "per_layer_max_over_fair": (frac * E).max(axis=1).round(3).tolist(),
            "per_layer_min_over_fair": (frac * E).min(axis=1).round(3).tolist(),
            "all_used": bool((counts > 0).all()),
            "pass": bool((counts > 0).all() and (frac * E).max() <= 3.0),
        }

    @torch.no_grad()
    def greedy(self, ids, max_new, stop_on_newline=True):
        ids = list(ids)
        out = []
        for _ in range(max_new):
            logits = self.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
            t = int(torch.argmax(logits))
            out.append(t)
            ids.append(t)
            if stop_on_newline and (t == self.eot or "\n" in self.tok.decode([t])):
                break
        return out

    def arith(self, rows):
        hits, details = 0, []
        by_digits = {}
        for r in rows:
            gen = self.greedy([self.eot] + self.ids(r["prompt"]), 12)
            text = self.tok.decode([t for t in gen if t != self.eot]).split("\n")[0]
            ok = text == r["answer"]
            hits += ok
            a = r["prompt"].split()
            key = "%s-digit %s" % (max(len(a[1]), len(a[3])), a[2])
            s = by_digits.setdefault(key, [0, 0])
            s[0] += ok
            s[1] += 1
            if len(details) < 12:
                details.append({"prompt": r["prompt"], "answer": r["answer"], "got": text})
        n = len(rows)
        return {"items": n, "exact_match": hits / n, "exact_match_ci95": list(wilson(hits, n)),
                "by_kind": {k: {"n": v[1], "exact_match": v[0] / v[1]} for k, v in sorted(by_digits.items())},
                "examples": details}

    @torch.no_grad()
    def choice(self, rows):
        n, acc, accn = len(rows), 0, 0
        kinds = {}
        for r in rows:
            ctx = [self.eot] + self.ids(r["context"])
            s, sn = [], []
            for c in r["choices"]:
                cid = self.ids(c)
                lp, _ = self.logprobs(ctx + cid)
                tot = sum(lp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cid))
                s.append(tot)
                sn.append(tot / len(c.encode("utf-8")))
            a = int(np.argmax(s)) == r["label"]
            b = int(np.argmax(sn)) == r["label"]
            acc += a
            accn += b
            k = kinds.setdefault(r.get("kind", "all"), [0, 0, 0])
            k[0] += a
            k[1] += b
            k[2] += 1
        return {"items": n, "acc": acc / n, "acc_ci95": list(wilson(acc, n)),
                "acc_norm": accn / n, "acc_norm_ci95": list(wilson(accn, n)), "chance": 0.25,
                "by_kind": {k: {"n": v[2], "acc": v[0] / v[2], "acc_norm": v[1] / v[2]}
                            for k, v in sorted(kinds.items())}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "olmoe-tiny"))
    ap.add_argument("--split", default="test", choices=["validation", "test"])
    ap.add_argument("--json", default=None, help="write the metrics here (default <model>/metrics-<split>.json)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", action="store_true", help="also print greedy samples for domain prompts")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers
    t0 = time.time()
    ev = Evaluator(args.model)
    ed = os.path.join(args.model, "eval")
    res = {"model": os.path.relpath(os.path.abspath(args.model), REPO), "split": args.split,
           "transformers_version": transformers.__version__, "torch_version": torch.__version__}
    res["text"], res["routing"] = ev.text_nll(read_jsonl(os.path.join(ed, "text-%s.jsonl" % args.split)))
    print("text: ppl %.3f [%.3f, %.3f]  nll/token %.4f  bits/byte %.4f" % (
        res["text"]["perplexity"], *res["text"]["perplexity_ci95"], res["text"]["nll_per_token"],
        res["text"]["bits_per_byte"]), flush=True)
    print("routing: all used %s, max/fair %.2f, min/fair %.2f -> %s" % (
        res["routing"]["all_used"], res["routing"]["max_over_fair"], res["routing"]["min_over_fair"],
        "PASS" if res["routing"]["pass"] else "FAIL"), flush=True)
    res["arith"] = ev.arith(read_jsonl(os.path.join(ed, "arith-%s.jsonl" % args.split)))
    print("arith: exact match %.4f [%.4f, %.4f]  %s" % (
        res["arith"]["exact_match"], *res["arith"]["exact_match_ci95"],
        {k: round(v["exact_match"], 3) for k, v in res["arith"]["by_kind"].items()}), flush=True)
    res["choice"] = ev.choice(read_jsonl(os.path.join(ed, "choice-%s.jsonl" % args.split)))
    print("choice: acc %.4f [%.4f, %.4f]  acc_norm %.4f [%.4f, %.4f]  %s" % (
        res["choice"]["acc"], *res["choice"]["acc_ci95"], res["choice"]["acc_norm"],
        *res["choice"]["acc_norm_ci95"], res["choice"]["by_kind"]), flush=True)
    if args.samples:
        res["samples"] = []
        for p in ["A man said to the Universe:", "computer, computing machine (noun):",
                  "Q: 25 + 17 = ? A: 42\nQ: 4821 + 379 = ? A:", "Love is"]:
            g = ev.greedy([ev.eot] + ev.ids(p), 40, stop_on_newline=False)
            text = ev.tok.decode(g)
            res["samples"].append({"prompt": p, "greedy": text})
            print("--- %r -> %r" % (p, text), flush=True)
    res["eval_seconds"] = round(time.time() - t0, 1)
    out = args.json or os.path.join(args.model, "metrics-%s.json" % args.split)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print("wrote", out, "in %.0fs" % res["eval_seconds"])


if __name__ == "__main__":
    main()
