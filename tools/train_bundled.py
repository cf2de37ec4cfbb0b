#!/usr/bin/env python3
"""Train the bundled model models/olmoe-tiny (an OLMoE, `model_type: olmoe`) on CPU.

Uses transformers' own OlmoeForCausalLM for training (so the trained network *is* the HF
Olmoe forward), fp32 weights and math, AdamW, linear warm-up then cosine decay, the
standard Switch-Transformer load-balancing loss on the router logits
(output_router_logits=True), computed per layer (see per_layer_balance_loss).

The cosine schedule runs over the planned --steps; --minutes is a hard wall-clock cap.
LR progress is max(step / steps, elapsed / minutes), so on a machine slower than
planned the schedule still decays fully before the cap (on a fast enough machine the
run is exactly --steps steps and deterministic given the seed).

Prerequisites: python tools/data/build_bundled_corpus.py && python tools/bundled_tokenizer.py

Usage (the recipe of the bundled model, see models/olmoe-tiny/README.md):
  python tools/train_bundled.py --minutes 55 --steps 3000 --batch 8 --seq 256 --aux-coef 0.08
The specialising model of issue 19 (64 experts, top-8, expert FFN 32, a separate pad id; trained
over several sessions: --resume continues from --ckpt with the optimizer, data-sampler and
schedule state, and --minutes caps one run, checkpointing every --ckpt-every minutes):
  python tools/data/synth_langs.py && python tools/data/mix_corpus.py
  python tools/bundled_tokenizer.py --data .data/roe-mix --out .data/roe-mix/tok --pad
  python tools/train_bundled.py --data .data/roe-mix --tokenizer .data/roe-mix/tok --out .data/roe-spec \
      --log .data/roe-spec/train_log.jsonl --ckpt .data/roe-spec/ckpt.pt --experts 64 --topk 8 \
      --expert-ffn 32 --tie --pad-id 1 --steps 10000 --batch 8 --seq 256 --schedule steps --minutes 120 [--resume]
Smoke run:
  python tools/train_bundled.py --minutes 1.5 --steps 40 --out /tmp/olmoe-smoke --log /tmp/smoke.jsonl --ckpt /tmp/smoke.pt
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EOT = "<|endoftext|>"


def load_tokens(data_dir, tok_dir, split):
    """Token stream of a split: every document followed by <|endoftext|> (cached as uint16)."""
    from tokenizers import Tokenizer
    tok_path = os.path.join(tok_dir, "tokenizer.json")
    src = os.path.join(data_dir, split + ".jsonl")
    if not os.path.exists(src):  # a copy of the token caches alone (tools/gpu_train_spec.sh carries no text)
        import glob
        found = glob.glob(os.path.join(data_dir, "%s.*.u16.npy" % split))
        if len(found) != 1:
            raise SystemExit("train_bundled: %s is missing and %s holds %d token caches for it (want 1)"
                             % (src, data_dir, len(found)))
        return np.load(found[0])
    with open(tok_path, "rb") as f:
        import hashlib
        key = hashlib.sha256(f.read() + open(src, "rb").read(1 << 16)).hexdigest()[:12]
    cache = os.path.join(data_dir, "%s.%s.u16.npy" % (split, key))
    if os.path.exists(cache):
        return np.load(cache)
    tok = Tokenizer.from_file(tok_path)
    eot = tok.token_to_id(EOT)
    texts = [json.loads(line)["text"] for line in open(src, encoding="utf-8")]
    out = []
    for i in range(0, len(texts), 4096):
        for enc in tok.encode_batch(texts[i:i + 4096], add_special_tokens=False):
            out.extend(enc.ids)
            out.append(eot)
    arr = np.asarray(out, dtype=np.uint16)
    np.save(cache, arr)
    return arr


def per_layer_balance_loss(router_logits, num_experts, top_k):
    """Switch-Transformer load-balancing loss computed per layer, averaged over layers.

    For layer l: E * sum_i f_li * P_li, with f_li the fraction of the top-k assignments of the
    batch's tokens that go to expert i (sums to k) and P_li the mean router probability of
    expert i; its minimum (perfect balance) is k. Averaged over the layers.

    transformers' load_balancing_loss_func averages f and P over the layers *before* taking
    the product, which only balances the layer-averaged load of each expert index and lets a
    single layer route 3x its fair share to one expert; hence this per-layer version
    (as in OLMoE, where the loss is applied to every MoE layer).
    Also returns the largest per-layer load relative to the fair share (for logging).
    """
    total, maxload = 0.0, 0.0
    for lg in router_logits:
        probs = torch.softmax(lg.float(), dim=-1)
        idx = torch.topk(probs, top_k, dim=-1).indices.reshape(-1)
        counts = torch.zeros(num_experts, dtype=torch.float32).scatter_add_(
            0, idx, torch.ones_like(idx, dtype=torch.float32))
        f = counts / probs.shape[0]
        total = total + num_experts * torch.sum(f * probs.mean(dim=0))
        maxload = max(maxload, float(f.max()) * num_experts / top_k)
    return total / len(router_logits), maxload


def make_config(args, vocab):
    from transformers import OlmoeConfig
    return OlmoeConfig(
        vocab_size=vocab,
        hidden_size=args.hidden,
        intermediate_size=args.expert_ffn,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        num_experts=args.experts,
        num_experts_per_tok=args.topk,
        norm_topk_prob=False,
        hidden_act="silu",
        max_position_embeddings=args.max_pos,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        clip_qkv=None,
        attention_bias=False,
        tie_word_embeddings=args.tie,
        initializer_range=0.02,
        output_router_logits=False,  # training passes output_router_logits=True explicitly
        router_aux_loss_coef=args.aux_coef,
        pad_token_id=args.pad_id,
        bos_token_id=0,
        eos_token_id=0,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(REPO, ".data", "olmoe-tiny"))
    ap.add_argument("--tokenizer", default=os.path.join(REPO, "models", "olmoe-tiny"))
    ap.add_argument("--out", default=os.path.join(REPO, "models", "olmoe-tiny"))
    ap.add_argument("--log", default=os.path.join(REPO, ".data", "olmoe-tiny", "train_log.jsonl"))
    ap.add_argument("--ckpt", default=os.path.join(REPO, ".data", "olmoe-tiny", "ckpt.pt"))
    ap.add_argument("--minutes", type=float, default=55.0, help="hard wall-clock cap")
    ap.add_argument("--steps", type=int, default=3000, help="planned steps (cosine schedule)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--experts", type=int, default=16)
    ap.add_argument("--topk", type=int, default=4)
    ap.add_argument("--expert-ffn", type=int, default=64)
    ap.add_argument("--max-pos", type=int, default=1024)
    ap.add_argument("--aux-coef", type=float, default=0.08,
                    help="weight of the per-layer load-balancing loss averaged over layers "
                         "(0.08 = 0.01 per layer summed over 8 layers)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--tie", action="store_true", help="tie the LM head to the embedding table")
    ap.add_argument("--pad-id", type=int, default=0, help="pad token id (its embedding row is never trained)")
    ap.add_argument("--schedule", choices=("time", "steps"), default="time",
                    help="time: progress = max(step/steps, elapsed/minutes), the run ends at --minutes; "
                         "steps: progress = step/steps, --minutes only ends this run (resume later)")
    ap.add_argument("--resume", action="store_true", help="continue from --ckpt (model, optimizer, sampler)")
    ap.add_argument("--export-only", action="store_true",
                    help="with --resume: write --ckpt's model to --out (bf16 safetensors) as it stands, and stop "
                         "(an early look at a run in progress; copy the checkpoint first if the run is live)")
    ap.add_argument("--ckpt-every", type=float, default=10.0, help="minutes between checkpoints")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (a lent GPU: tools/gpu_train_spec.sh)")
    ap.add_argument("--experts-impl", default="grouped_mm", choices=("grouped_mm", "eager"),
                    help="transformers' experts implementation: grouped_mm computes the same loss as eager "
                         "(checked step by step) at 0.65-0.7x its step time on the CPU")
    ap.add_argument("--max-shard-mb", type=int, default=15,
                    help="the saved model's safetensors shards are at most this many MB (device transfers: 16 MiB)")
    args = ap.parse_args()

    t_start = time.time()
    deadline = t_start + args.minutes * 60
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from transformers import GenerationConfig, OlmoeForCausalLM
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json")).get_vocab_size()
    train = torch.from_numpy(load_tokens(args.data, args.tokenizer, "train").astype(np.int64))
    val = torch.from_numpy(load_tokens(args.data, args.tokenizer, "validation").astype(np.int64))
    print("train tokens %d, validation tokens %d (%.1fs)" % (len(train), len(val), time.time() - t_start),
          flush=True)

    cfg = make_config(args, vocab)
    cfg._experts_implementation = args.experts_impl
    model = OlmoeForCausalLM(cfg)
    model.config._attn_implementation = "sdpa"
    if hasattr(model, "set_experts_implementation"):  # transformers >= 5.2x; older ones run eager
        model.set_experts_implementation(args.experts_impl)
    dev = torch.device(args.device)
    model.to(dev)
    nparam = sum(p.numel() for p in model.parameters())
    per_expert = 3 * args.hidden * args.expert_ffn
    nactive = nparam - args.layers * (args.experts - args.topk) * per_expert
    print("params %.3fM (active per token %.3fM)" % (nparam / 1e6, nactive / 1e6), flush=True)

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.dim() >= 2 and "embed" not in n else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=dev.type == "cuda")

    gen = torch.Generator().manual_seed(args.seed)
    T = args.seq
    # fixed validation windows (non-overlapping, from the start of the validation stream)
    nvw = min(32, (len(val) - 1) // (T + 1))
    val_x = torch.stack([val[i * (T + 1):(i + 1) * (T + 1)] for i in range(nvw)]).to(dev)

    @torch.no_grad()
    def evaluate():
        model.eval()
        tot = 0.0
        for i in range(0, nvw, 8):
            x = val_x[i:i + 8]
            logits = model(input_ids=x[:, :-1], output_router_logits=False).logits
            tot += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))) * len(x)
        model.train()
        return tot / nvw

    os.makedirs(os.path.dirname(args.log), exist_ok=True)
    step, tokens_seen, ema, before = 0, 0, None, 0.0
    if args.resume:
        ck = torch.load(args.ckpt, weights_only=False, map_location=dev)
        if "optimizer" not in ck:
            raise SystemExit("train_bundled: %s has no optimizer state (written by a run without --schedule steps?)"
                             % args.ckpt)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["sampler"].cpu())
        step, tokens_seen, ema, before = ck["step"], ck["tokens"], ck["ema"], ck["train_seconds"]
        print("resumed at step %d (%d tokens, %.1f min of training before)" % (step, tokens_seen, before / 60),
              flush=True)
        if args.export_only:
            save_hf(model, args)
            return
    elif args.export_only:
        raise SystemExit("train_bundled: --export-only needs --resume (the checkpoint to export)")
    logf = open(args.log, "a" if args.resume else "w")
    logf.write(json.dumps({"event": "resume" if args.resume else "start", "args": vars(args), "params": nparam,
                           "active": nactive, "train_tokens": len(train), "step": step}) + "\n")

    def checkpoint():
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "sampler": gen.get_state(),
                    "step": step, "tokens": tokens_seen, "ema": ema, "config": cfg.to_dict(),
                    "train_seconds": before + time.time() - t_start}, args.ckpt + ".tmp")
        os.replace(args.ckpt + ".tmp", args.ckpt)

    model.train()
    t_loop = time.time()
    t_ckpt = time.time()
    progress = 0.0
    tokens0 = tokens_seen
    while True:
        elapsed = time.time() - t_start
        if args.schedule == "steps":
            progress = step / args.steps
            if progress < 1.0 and elapsed >= args.minutes * 60:
                checkpoint()
                logf.write(json.dumps({"event": "pause", "step": step, "tokens": tokens_seen,
                                       "train_seconds": round(before + elapsed, 1)}) + "\n")
                print("paused at step %d of %d (--resume continues)" % (step, args.steps), flush=True)
                return
        else:
            progress = max(step / args.steps, elapsed / (args.minutes * 60))
        if progress >= 1.0:
            break
        if step < args.warmup:
            lr = args.lr * (step + 1) / args.warmup
        else:
            lr = args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(train) - T - 1, (args.batch,), generator=gen)
        x = torch.stack([train[s:s + T + 1] for s in starts.tolist()]).to(dev)
        inp, lab = x[:, :-1], x[:, 1:].clone()
        out = model(input_ids=inp, output_router_logits=True)
        ce_loss = F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]).float(), lab.reshape(-1))
        aux_loss, maxload = per_layer_balance_loss(out.router_logits, args.experts, args.topk)
        loss = ce_loss + args.aux_coef * aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        step += 1
        tokens_seen += inp.numel()
        aux = float(aux_loss)
        ce = float(ce_loss)
        ema = ce if ema is None else 0.95 * ema + 0.05 * ce
        rec = {"step": step, "loss": round(ce, 4), "aux": round(aux, 4), "lr": lr, "gnorm": round(float(gnorm), 3), "maxload": round(maxload, 3),
               "tokens": tokens_seen, "elapsed": round(time.time() - t_start, 1)}
        if step % args.eval_every == 0:
            rec["val_loss"] = round(evaluate(), 4)
            if args.schedule == "time":
                torch.save({"model": model.state_dict(), "step": step, "config": cfg.to_dict()}, args.ckpt)
        if args.schedule == "steps" and time.time() - t_ckpt >= args.ckpt_every * 60:
            checkpoint()
            t_ckpt = time.time()
        logf.write(json.dumps(rec) + "\n")
        logf.flush()
        if step % 10 == 0 or "val_loss" in rec:
            tps = (tokens_seen - tokens0) / (time.time() - t_loop)
            print("step %5d loss %.4f (ema %.4f) aux %.4f maxload %.2f lr %.2e gnorm %.2f %.0f tok/s elapsed %.1f min%s" % (
                step, ce, ema, aux, maxload, lr, float(gnorm), tps, (time.time() - t_start) / 60,
                "  val %.4f" % rec["val_loss"] if "val_loss" in rec else ""), flush=True)

    final_val = evaluate()
    wall = time.time() - t_start
    print("done: %d steps, %d tokens, %.1f min, final val loss %.4f" % (step, tokens_seen, wall / 60, final_val),
          flush=True)
    logf.write(json.dumps({"event": "end", "steps": step, "tokens": tokens_seen, "wall_s": round(wall, 1),
                           "val_loss": round(final_val, 4), "progress": progress}) + "\n")
    logf.close()
    if args.schedule == "steps":
        checkpoint()
    else:
        torch.save({"model": model.state_dict(), "step": step, "config": cfg.to_dict()}, args.ckpt)

    save_hf(model, args)


def save_hf(model, args):
    """The model in bf16 safetensors, HF layout, shards of <= --max-shard-mb."""
    from transformers import GenerationConfig
    os.makedirs(args.out, exist_ok=True)
    model.config.output_router_logits = False
    model.config.use_cache = True
    model = model.to(device="cpu", dtype=torch.bfloat16)
    model.config.dtype = "bfloat16"
    model.save_pretrained(args.out, safe_serialization=True, max_shard_size="%dMB" % args.max_shard_mb)
    GenerationConfig(bos_token_id=0, eos_token_id=0, pad_token_id=args.pad_id, do_sample=False).save_pretrained(args.out)
    print("saved", args.out, flush=True)


if __name__ == "__main__":
    main()
