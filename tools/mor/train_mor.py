#!/usr/bin/env python3
"""Train models/mor-tiny (Mixture-of-Recursions, mor_llama) or models/llama-tiny (its vanilla
Llama of the same unrolled depth) on the bundled corpus, on CPU, the same way.

Both networks are the forward of tools/mor/mor_ref.py (the reference roe is tested against):
  --arch mor    expert choice, N_r = 3, middle_cycle, recursion-wise KV; trained with the
                official top-k routing (capacities 1, 2/3, 1/3 of the window, hierarchical)
                and the auxiliary BCE loss of the router logits against the top-k mask
                (coefficient 0.001, as the released configs); the saved model is then used
                with the causal inference rule (sigmoid >= 0.5), see docs/MODELS.md.
  --arch llama  plain Llama (model_type llama), the same unrolled depth and widths.
Same data (random 256-token windows of the bundled training stream, fixed seed), same
batch, tokens, AdamW schedule (linear warm-up, cosine to 5 %), fp32.

A run writes a JSONL log (one record per step, validation every --eval-every steps) and a
resumable checkpoint (parameters, optimizer, data RNG, step) at every evaluation;
--resume continues from it (the log is appended). --steps is the plan; --minutes is a hard
wall-clock cap: the LR schedule runs on max(step / steps, elapsed / cap) so that a slow run
still decays fully (the log says which bound ended it).

At the end the weights are rounded to bf16 and saved in the mor_llama format
(mor_ref.save_checkpoint; docs/MODELS.md) or as a transformers Llama checkpoint.

Prerequisites: .data/olmoe-tiny/{train,validation,test}.jsonl (tools/data/build_bundled_corpus.py)
Usage (recipe of models/mor-tiny and models/llama-tiny, see their README.md):
  python tools/mor/train_mor.py --arch mor   --steps 240 --minutes 25 --threads 1 --out models/mor-tiny
  python tools/mor/train_mor.py --arch llama --steps 240 --minutes 25 --threads 1 --out models/llama-tiny
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


def make_config(args, vocab):
    c = {
        "vocab_size": vocab, "hidden_size": args.hidden, "intermediate_size": args.ffn,
        "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads, "head_dim": args.hidden // args.heads,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 1024,
        "tie_word_embeddings": True, "hidden_act": "silu", "bos_token_id": 0, "eos_token_id": 0,
        "initializer_range": 0.02, "attention_bias": False, "mlp_bias": False,
    }
    if args.arch == "llama":
        c.update(model_type="llama", architectures=["LlamaForCausalLM"])
        return c
    Nr = args.num_recursion
    c.update(model_type="mor_llama", architectures=["MoRLlamaForCausalLM"])
    c["mor"] = {"num_recursion": Nr, "sharing": "middle_cycle", "router_type": "expert_choice",
                "router_func": "sigmoid", "alpha": 0.1,
                "capacity": [round((Nr - i) / Nr, 4) for i in range(Nr)],
                "threshold": 0.5, "kv_mode": "recursion_wise"}
    return c


class Net(torch.nn.Module):
    """The spec's tensors as parameters (names with '.' -> '__'), forward = mor_ref.forward."""

    def __init__(self, cfg, seed):
        super().__init__()
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        params = {}
        for name, shape in sorted(mor_ref.expected_shapes(cfg).items()):
            if name.endswith("norm.weight"):
                t = torch.ones(shape)
            else:   # HF init: normal(0, initializer_range) for embeddings, linears and routers
                t = torch.randn(shape, generator=g) * 0.02
            params[name.replace(".", "__")] = torch.nn.Parameter(t)
        self.p = torch.nn.ParameterDict(params)

    def weights(self):
        return {k.replace("__", "."): v for k, v in self.p.items()}

    def forward(self, ids, mode):
        return mor_ref.forward(self.weights(), self.cfg, ids, mode=mode)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["mor", "llama"], required=True)
    ap.add_argument("--data", default=os.path.join(REPO, ".data", "olmoe-tiny"))
    ap.add_argument("--tokenizer", default=os.path.join(REPO, "models", "olmoe-tiny"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--log", help="JSONL log (default tools/mor/logs/<arch>-train.jsonl)")
    ap.add_argument("--ckpt", help="resumable checkpoint (default .data/mor/<arch>-ckpt.pt)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--minutes", type=float, default=25.0, help="hard wall-clock cap (whole run, resumes included)")
    ap.add_argument("--steps", type=int, default=240, help="planned steps (cosine schedule)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--ffn", type=int, default=448)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=8, help="unrolled depth (MoR: 2 + num_recursion * B)")
    ap.add_argument("--num-recursion", type=int, default=3)
    ap.add_argument("--aux-coef", type=float, default=0.001, help="MoR router BCE coefficient (official 0.001)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--eval-every", type=int, default=100)
    args = ap.parse_args()
    args.log = args.log or os.path.join(HERE, "logs", f"{args.arch}-train.jsonl")
    args.ckpt = args.ckpt or os.path.join(REPO, ".data", "mor", f"{args.arch}-ckpt.pt")

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from tokenizers import Tokenizer
    vocab = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json")).get_vocab_size()
    train = torch.from_numpy(load_tokens(args.data, args.tokenizer, "train").astype(np.int64))
    val = torch.from_numpy(load_tokens(args.data, args.tokenizer, "validation").astype(np.int64))
    print("train tokens %d, validation tokens %d" % (len(train), len(val)), flush=True)

    cdict = make_config(args, vocab)
    cfg = mor_ref.MoRConfig(cdict)
    net = Net(cfg, args.seed)
    nparam = sum(p.numel() for p in net.parameters())
    decay, no_decay = [], []
    for n, p in net.p.items():
        (decay if p.dim() >= 2 and "embed" not in n else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)   # the same windows for both archs
    T = args.seq
    nvw = min(32, (len(val) - 1) // (T + 1))
    val_x = torch.stack([val[i * (T + 1):(i + 1) * (T + 1)] for i in range(nvw)])

    @torch.no_grad()
    def evaluate(mode):
        tot, depth_counts = 0.0, torch.zeros(cfg.num_recursion + 1 if cfg.mor else 1, dtype=torch.long)
        for i in range(0, nvw, 8):
            x = val_x[i:i + 8]
            logits, info = net(x[:, :-1], mode)
            tot += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))) * len(x)
            if "depth" in info:
                depth_counts += torch.bincount(info["depth"].reshape(-1), minlength=len(depth_counts))
        frac = (depth_counts[1:].double() / depth_counts.sum()).tolist() if cfg.mor else None
        return tot / nvw, frac

    step, tokens_seen, elapsed_before = 0, 0, 0.0
    if args.resume:
        ck = torch.load(args.ckpt, weights_only=False)
        net.p.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["gen"])
        step, tokens_seen, elapsed_before = ck["step"], ck["tokens"], ck["elapsed"]
        print(f"resumed at step {step} ({elapsed_before / 60:.1f} min used)", flush=True)

    def save_ckpt():
        os.makedirs(os.path.dirname(args.ckpt), exist_ok=True)
        torch.save({"model": net.p.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "step": step,
                    "tokens": tokens_seen, "elapsed": elapsed_before + time.time() - t_start, "config": cdict,
                    "args": vars(args)}, args.ckpt + ".tmp")
        os.replace(args.ckpt + ".tmp", args.ckpt)

    os.makedirs(os.path.dirname(args.log), exist_ok=True)
    logf = open(args.log, "a" if args.resume else "w")
    logf.write(json.dumps({"event": "resume" if args.resume else "start", "step": step, "args": vars(args),
                           "params": nparam, "train_tokens": len(train), "config": cdict}) + "\n")
    net.train()
    t_loop = time.time()
    progress, ended_by = 0.0, "steps"
    while True:
        elapsed = elapsed_before + time.time() - t_start
        progress = max(step / args.steps, elapsed / (args.minutes * 60))
        if progress >= 1.0:
            ended_by = "steps" if step >= args.steps else "minutes"
            break
        lr = args.lr * (step + 1) / args.warmup if step < args.warmup else \
            args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(train) - T - 1, (args.batch,), generator=gen)
        x = torch.stack([train[s:s + T + 1] for s in starts.tolist()])
        logits, info = net(x[:, :-1], "train")
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        loss = ce + args.aux_coef * info["sampling_loss"] if cfg.mor else ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(net.parameters(), args.clip)
        opt.step()
        step += 1
        tokens_seen += x[:, :-1].numel()
        rec = {"step": step, "loss": round(ce.item(), 4), "lr": lr, "gnorm": round(float(gnorm), 3),
               "tokens": tokens_seen, "elapsed": round(elapsed_before + time.time() - t_start, 1)}
        if cfg.mor:
            rec["aux"] = round(info["sampling_loss"].item(), 4)
            # agreement of the causal rule (sigmoid >= 0.5) with the top-k choice, steps 2..N_r,
            # over the tokens that were candidates (ran the step before)
            lg, d = info["router_logits"], info["depth"]
            acc = []
            for r in range(2, cfg.num_recursion + 1):
                cand = d >= r - 1
                acc.append(round(float(((lg[..., r - 1] >= 0) == (d >= r))[cand].double().mean()), 4))
            rec["rule_vs_topk_acc"] = acc
        if step % args.eval_every == 0:
            rec["val_loss"], frac = evaluate("infer")
            if cfg.mor:
                rec["val_depth_frac"] = [round(f, 4) for f in frac]
                rec["val_loss_topk"], _ = evaluate("train")
            net.train()
            save_ckpt()
        logf.write(json.dumps(rec) + "\n")
        logf.flush()
        if step % 10 == 0 or "val_loss" in rec:
            print("step %5d loss %.4f lr %.2e gnorm %.2f %.0f tok/s %.1f min%s%s" % (
                step, rec["loss"], lr, rec["gnorm"], (tokens_seen - 0) / max(1e-9, time.time() - t_loop),
                rec["elapsed"] / 60, "  aux %.4f acc %s" % (rec["aux"], rec["rule_vs_topk_acc"]) if cfg.mor else "",
                "  val %.4f" % rec["val_loss"] if "val_loss" in rec else ""), flush=True)

    val_infer, frac = evaluate("infer")
    end = {"event": "end", "steps": step, "tokens": tokens_seen, "ended_by": ended_by,
           "wall_s": round(elapsed_before + time.time() - t_start, 1), "val_loss": round(val_infer, 4)}
    if cfg.mor:
        end["val_depth_frac"] = [round(f, 4) for f in frac]
        end["val_loss_topk"] = round(evaluate("train")[0], 4)
    print("done:", end, flush=True)
    logf.write(json.dumps(end) + "\n")
    logf.close()
    save_ckpt()

    W = {k: v.detach() for k, v in net.weights().items()}
    out = dict(cdict)
    out.pop("initializer_range", None)
    mor_ref.save_checkpoint(args.out, out, W, dtype=torch.bfloat16, tokenizer_dir=args.tokenizer)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0, "do_sample": False}, f, indent=2)
        f.write("\n")
    print("saved", args.out, flush=True)


if __name__ == "__main__":
    main()
