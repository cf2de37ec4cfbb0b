#!/usr/bin/env python3
"""Perplexity of models/mor-tiny and models/llama-tiny with the reference forward
(tools/mor/mor_ref.py, float32 of the bf16 weights; MoR with the causal inference rule, not
the training top-k), and the MoR per-depth token fractions at inference.

Two measurements per split (validation, test):
  stream   the bundled split's token stream (.data/olmoe-tiny/<split>.jsonl, documents joined
           by <|endoftext|>, tokenised as in training) cut into consecutive non-overlapping
           windows of 257 tokens: each window's 256 next-token predictions scored, context
           restarting at every window (the training window length).
  text     models/olmoe-tiny/eval/text-<split>.jsonl scored exactly as tools/eval_bundled.py
           does for olmoe-tiny: [<|endoftext|>] + tokens(text), every text token; comparable
           with that model card's perplexity.
Depth fractions: the share of scored positions whose token ran 1, 2, ... N_r recursions.
For llama, a few windows are also run through transformers' LlamaForCausalLM as a check.

Usage: python tools/mor/eval_mor.py models/mor-tiny [--split test validation] [--threads 1]
Writes <model>/metrics-<split>.json and prints a summary.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools"))
import mor_ref  # noqa: E402
from train_bundled import load_tokens  # noqa: E402

EOT = "<|endoftext|>"
WIN = 256


@torch.no_grad()
def score(W, cfg, seqs, batch=8):
    """Sum NLL, token count and depth histogram over a list of id lists (each scored from its
    second token); equal-length lists are batched."""
    nll, ntok = 0.0, 0
    depth = np.zeros(cfg.num_recursion + 1 if cfg.mor else 1, dtype=np.int64)
    groups = {}
    for s in seqs:
        groups.setdefault(len(s), []).append(s)
    for L, group in groups.items():
        for i in range(0, len(group), batch):
            x = torch.tensor(group[i:i + batch])
            logits, info = mor_ref.forward(W, cfg, x[:, :-1])
            nll += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum"))
            ntok += x[:, 1:].numel()
            if "depth" in info:
                depth += np.bincount(info["depth"].reshape(-1).numpy(), minlength=len(depth))
    return nll, ntok, depth


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--split", nargs="*", default=["test", "validation"])
    ap.add_argument("--data", default=os.path.join(REPO, ".data", "olmoe-tiny"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, help="smoke test: only the first N windows and passages")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, W = mor_ref.load(a.model, dtype=torch.float32)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    eot = tok.token_to_id(EOT)
    for split in a.split:
        t0 = time.time()
        stream = load_tokens(a.data, a.model, split).astype(np.int64)
        n = (len(stream)) // (WIN + 1)
        wins = [stream[i * (WIN + 1):(i + 1) * (WIN + 1)].tolist() for i in range(n)]
        rows = [json.loads(line) for line in open(os.path.join(REPO, "models", "olmoe-tiny", "eval", f"text-{split}.jsonl"))]
        if a.limit:
            wins, rows, n = wins[:a.limit], rows[:a.limit], min(n, a.limit)
        s_nll, s_tok, s_depth = score(W, cfg, wins)
        texts = [[eot] + tok.encode(r["text"], add_special_tokens=False).ids for r in rows]
        t_nll, t_tok, t_depth = score(W, cfg, texts, batch=1)
        res = {
            "model": os.path.relpath(os.path.abspath(a.model), REPO), "model_type": cfg.model_type, "split": split,
            "forward": "tools/mor/mor_ref.py, float32 of the bf16 weights" + (", inference rule" if cfg.mor else ""),
            "stream": {"windows": n, "window_tokens": WIN + 1, "tokens_scored": s_tok,
                       "nll_per_token": s_nll / s_tok, "perplexity": math.exp(s_nll / s_tok)},
            "text": {"file": f"models/olmoe-tiny/eval/text-{split}.jsonl", "passages": len(rows), "tokens": t_tok,
                     "nll_per_token": t_nll / t_tok, "perplexity": math.exp(t_nll / t_tok)},
        }
        if cfg.mor:
            for key, d in (("stream", s_depth), ("text", t_depth)):
                res[key]["depth_fraction"] = [round(float(v), 4) for v in d[1:] / d.sum()]
                res[key]["mean_recursions"] = round(float((np.arange(len(d)) * d).sum() / d.sum()), 4)
        if cfg.mor is None:
            from transformers import LlamaForCausalLM
            hf = LlamaForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager").eval()
            x = torch.tensor(wins[:4])
            with torch.no_grad():
                want = hf(x[:, :-1]).logits
            got, _ = mor_ref.forward(W, cfg, x[:, :-1])
            res["transformers_max_rel_diff"] = float((got - want).abs().max() / want.abs().max())
        res["seconds"] = round(time.time() - t0, 1)
        with open(os.path.join(a.model, f"metrics-{split}.json"), "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
