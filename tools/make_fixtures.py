#!/usr/bin/env python3
"""Generate tiny random MoE checkpoints and reference outputs with Hugging Face transformers.

For each family (olmoe, mixtral, qwen3_moe) this writes, under tests/fixtures/<family>/:

  model/            config.json + safetensors written by save_pretrained (qwen3_moe: 2 shards + index)
  reference.json    prompts, greedy continuations and metadata (see tests/fixtures/README.md)
  logits.f32        raw little-endian float32 logits [n_prompt_tokens, vocab] per case, concatenated

Procedure (deterministic, fixed torch seed per family):
  1. build the model from a config with attn_implementation="eager" in float32;
  2. re-initialise every parameter with a larger spread than the HF default (so that logits and
     routing are non-degenerate): norms 1 + 0.1*randn, embeddings randn, linears
     randn * gain / sqrt(fan_in), routers randn * router_gain / sqrt(hidden);
  3. round every parameter to the on-disk dtype and back to float32;
  4. reference = float32 forward of those rounded weights; greedy continuation = own loop of
     full-sequence forwards, argmax of the last position, no EOS stopping;
  5. save with save_pretrained in the on-disk dtype, reload with from_pretrained and check that
     the reloaded model reproduces the reference logits exactly;
  6. reject the seed (try the next one) when a greedy step or a router top-k choice is a near tie.

Usage:  .venv/bin/python tools/make_fixtures.py [--family NAME ...] [--out-root tests/fixtures]
"""

import argparse
import json
import os
import re
import shutil
import struct
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, MixtralConfig, OlmoeConfig, Qwen3MoeConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = ".venv/bin/python tools/make_fixtures.py"

N_GREEDY = 32
PROMPT_LENS = (32, 20)
MAX_FIXTURE_BYTES = 2 * 1024 * 1024
# Rejection thresholds for near ties (see module docstring, step 6).
GREEDY_MARGIN_REL = 2e-3   # top1 - top2 along the greedy path >= this * max|logit| of that step
ROUTER_GAP_ABS = 1e-3      # k-th minus (k+1)-th router logit, every token of every MoE layer

FAMILIES = {
    # OLMoE: MHA like the real model, q/k norm over the whole projection, clip_qkv active,
    # top-3 without renormalisation, bf16 on disk. rope_theta differs from each family's usual
    # value (OLMoE 1e4 -> 5e4, Mixtral 1e6 -> 1e4, Qwen3 1e4 default -> 1e6) so that a hard-coded
    # theta fails. config.json rewritten to the legacy
    # top-level "rope_theta" form that the published OLMoE checkpoints use.
    "olmoe": dict(
        config_cls=OlmoeConfig,
        config=dict(
            vocab_size=384,
            hidden_size=104,
            intermediate_size=48,
            num_hidden_layers=3,
            num_attention_heads=4,          # head_dim 26
            num_key_value_heads=4,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 50000.0},  # not OLMoE's 10000
            clip_qkv=2.0,
            num_experts=8,
            num_experts_per_tok=3,
            norm_topk_prob=False,
            pad_token_id=1,
            bos_token_id=None,
            eos_token_id=383,
            tie_word_embeddings=False,
        ),
        dtype=torch.bfloat16,
        seed=1234,
        shards=1,
        legacy_rope_theta=True,
    ),
    # Mixtral: GQA (8 heads, 2 kv heads), head_dim null (= hidden/heads = 88/4 = 22),
    # top-2 renormalised, no sliding window, f32 on disk.
    "mixtral": dict(
        config_cls=MixtralConfig,
        config=dict(
            vocab_size=320,
            hidden_size=88,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,          # head_dim 22
            num_key_value_heads=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},  # not Mixtral's 1e6
            sliding_window=None,
            num_local_experts=8,
            num_experts_per_tok=2,
            bos_token_id=1,
            eos_token_id=2,
            tie_word_embeddings=False,
        ),
        dtype=torch.float32,
        seed=2345,
        shards=1,
        legacy_rope_theta=False,
    ),
    # Qwen3-MoE: GQA (6 heads, 2 kv heads), explicit head_dim 16 != hidden/heads (72/6 = 12),
    # per-head q/k norm, top-2 renormalised, layer 1 dense (mlp_only_layers), f16 on disk,
    # saved as two shards.
    "qwen3_moe": dict(
        config_cls=Qwen3MoeConfig,
        config=dict(
            vocab_size=512,
            hidden_size=72,
            head_dim=16,
            intermediate_size=80,           # dense MLP layers
            moe_intermediate_size=40,       # each expert
            num_hidden_layers=3,
            num_attention_heads=6,
            num_key_value_heads=2,
            max_position_embeddings=512,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            use_sliding_window=False,
            decoder_sparse_step=1,
            mlp_only_layers=[1],
            num_experts=8,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            bos_token_id=None,
            eos_token_id=511,
            tie_word_embeddings=False,
        ),
        dtype=torch.float16,
        seed=3456,
        shards=2,
        legacy_rope_theta=False,
    ),
}

LINEAR_GAIN = 1.5   # linear weights ~ N(0, (1.5/sqrt(fan_in))^2): std 0.15-0.22 at these sizes
ROUTER_GAIN = 2.5   # router logits have std ~2.5 -> top-k choices well separated
HEAD_GAIN = 2.0     # lm_head


def init_params(model, hidden):
    """Deterministic re-initialisation (caller seeds torch)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # input/post_attention layernorm, q_norm, k_norm, model.norm
                p.copy_(1.0 + 0.1 * torch.randn(p.shape))
            elif name == "model.embed_tokens.weight":
                p.copy_(torch.randn(p.shape))
            elif name.endswith("mlp.gate.weight"):  # router [E, hidden]
                p.copy_(torch.randn(p.shape) * (ROUTER_GAIN / hidden ** 0.5))
            elif name == "lm_head.weight":
                p.copy_(torch.randn(p.shape) * (HEAD_GAIN / hidden ** 0.5))
            elif p.dim() >= 2:  # [out, in] linears and fused experts [E, out, in]
                p.copy_(torch.randn(p.shape) * (LINEAR_GAIN / p.shape[-1] ** 0.5))
            else:
                raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")


def round_params(model, dtype):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


@torch.no_grad()
def forward(model, ids, router=False):
    out = model(torch.tensor([ids], dtype=torch.long), output_router_logits=router, use_cache=False)
    return out


@torch.no_grad()
def greedy(model, prompt, n):
    ids = list(prompt)
    out, margins, maxabs = [], [], []
    for _ in range(n):
        logits = forward(model, ids).logits[0, -1]
        top = torch.topk(logits, 2)
        margins.append(float(top.values[0] - top.values[1]))
        maxabs.append(float(logits.abs().max()))
        nxt = int(top.indices[0])
        out.append(nxt)
        ids.append(nxt)
    return out, margins, maxabs


@torch.no_grad()
def router_min_gap(model, ids, k):
    """Smallest gap between the k-th and (k+1)-th router logit over all tokens and MoE layers."""
    out = forward(model, ids, router=True)
    gaps = []
    for rl in out.router_logits:
        s = torch.sort(rl.float(), dim=-1, descending=True).values
        gaps.append(float((s[:, k - 1] - s[:, k]).min()))
    return min(gaps), len(out.router_logits)


class ClipStats:
    """Counts the q/k/v elements that OLMoE's clip_qkv clamps (values seen before the in-place clamp)."""

    def __init__(self, model, clip):
        self.clip = clip
        self.counts = {"q": [0, 0], "k": [0, 0], "v": [0, 0]}
        self.handles = []
        for layer in model.model.layers:
            a = layer.self_attn
            for key, mod in (("q", a.q_norm), ("k", a.k_norm), ("v", a.v_proj)):
                self.handles.append(mod.register_forward_hook(self._hook(key)))

    def _hook(self, key):
        def fn(_mod, _inp, out):
            self.counts[key][0] += int((out.abs() > self.clip).sum())
            self.counts[key][1] += out.numel()
        return fn

    def remove(self):
        for h in self.handles:
            h.remove()


# ---------------------------------------------------------------------------------------------
# Independent float64 numpy forward, written from the semantics documented in
# tests/fixtures/README.md and reading the safetensors files directly (own parser). Used as a
# self-check that the README describes what HF computes.

def read_safetensors_dir(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for fn in files:
        with open(os.path.join(model_dir, fn), "rb") as f:
            buf = f.read()
        (n,) = struct.unpack("<Q", buf[:8])
        header = json.loads(buf[8:8 + n])
        data = buf[8 + n:]
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            raw = data[b:e]
            dt = info["dtype"]
            if dt == "BF16":
                a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            elif dt == "F16":
                a = np.frombuffer(raw, "<f2")
            elif dt == "F32":
                a = np.frombuffer(raw, "<f4")
            else:
                raise ValueError(dt)
            assert name not in tensors, name
            tensors[name] = a.astype(np.float64).reshape(info["shape"])
    return tensors


def np_rmsnorm(x, w, eps):
    return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))


def np_rope(x, theta):
    """x: [T, H, d]; HF "rotate half": dimension j pairs with j + d/2."""
    T, _, d = x.shape
    inv = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], -1)[:, None, :]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], -1)[:, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + np.concatenate([-x2, x1], -1) * sin


def np_silu(x):
    return x / (1.0 + np.exp(-x))


def numpy_forward(model_dir, ids):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    W = read_safetensors_dir(model_dir)
    mt = cfg["model_type"]
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // nh
    eps = cfg["rms_norm_eps"]
    theta = cfg["rope_theta"] if "rope_theta" in cfg else cfg["rope_parameters"]["rope_theta"]
    E = cfg.get("num_experts") or cfg.get("num_local_experts")
    k = cfg["num_experts_per_tok"]
    renorm = True if mt == "mixtral" else cfg["norm_topk_prob"]
    T = len(ids)
    x = W["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = np_rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = h @ W[p + "self_attn.q_proj.weight"].T
        kk = h @ W[p + "self_attn.k_proj.weight"].T
        v = h @ W[p + "self_attn.v_proj.weight"].T
        if mt == "olmoe":  # norm over the whole projection, then clip q, k, v
            q = np_rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
            kk = np_rmsnorm(kk, W[p + "self_attn.k_norm.weight"], eps)
            if cfg.get("clip_qkv") is not None:
                c = cfg["clip_qkv"]
                q, kk, v = np.clip(q, -c, c), np.clip(kk, -c, c), np.clip(v, -c, c)
        q = q.reshape(T, nh, hd)
        kk = kk.reshape(T, nkv, hd)
        v = v.reshape(T, nkv, hd)
        if mt == "qwen3_moe":  # per-head norm over head_dim
            q = np_rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
            kk = np_rmsnorm(kk, W[p + "self_attn.k_norm.weight"], eps)
        q, kk = np_rope(q, theta), np_rope(kk, theta)
        out = np.zeros((T, nh, hd))
        for hh in range(nh):
            g = hh // (nh // nkv)
            s = q[:, hh] @ kk[:, g].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            out[:, hh] = s @ v[:, g]
        x = x + out.reshape(T, nh * hd) @ W[p + "self_attn.o_proj.weight"].T
        h = np_rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        if mt == "mixtral":
            gate = W.get(p + "block_sparse_moe.gate.weight")
            ename = lambda e, w: f"{p}block_sparse_moe.experts.{e}.{ {'gate': 'w1', 'up': 'w3', 'down': 'w2'}[w] }.weight"
        else:
            gate = W.get(p + "mlp.gate.weight")
            ename = lambda e, w: f"{p}mlp.experts.{e}.{w}_proj.weight"
        sparse = gate is not None
        if mt == "qwen3_moe":
            expect = (i not in cfg["mlp_only_layers"]) and E > 0 and (i + 1) % cfg["decoder_sparse_step"] == 0
            assert sparse == expect, (i, sparse, expect)
        if not sparse:
            y = np_silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)
            y = y @ W[p + "mlp.down_proj.weight"].T
        else:
            logits = h @ gate.T
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            y = np.zeros_like(h)
            for t in range(T):
                top = np.argsort(-probs[t], kind="stable")[:k]
                wts = probs[t, top]
                if renorm:
                    wts = wts / wts.sum()
                for e, wt in zip(top, wts):
                    a = np_silu(W[ename(e, "gate")] @ h[t]) * (W[ename(e, "up")] @ h[t])
                    y[t] += wt * (W[ename(e, "down")] @ a)
        x = x + y
    x = np_rmsnorm(x, W["model.norm.weight"], eps)
    return x @ W["lm_head.weight"].T


def dir_size(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def save_model(model, spec, model_dir):
    if os.path.isdir(model_dir):
        shutil.rmtree(model_dir)
    to_save = model.to(spec["dtype"])
    try:
        if spec["shards"] == 1:
            to_save.save_pretrained(model_dir)
        else:
            total = sum(p.numel() * p.element_size() for p in to_save.parameters())
            # greedy shard filling: a limit a bit above total/2 gives exactly 2 shards
            for frac in (0.55, 0.6, 0.52, 0.7, 0.51):
                if os.path.isdir(model_dir):
                    shutil.rmtree(model_dir)
                to_save.save_pretrained(model_dir, max_shard_size=int(total * frac))
                shards = [f for f in os.listdir(model_dir) if f.endswith(".safetensors")]
                if len(shards) == spec["shards"]:
                    break
            else:
                raise RuntimeError("could not obtain the requested number of shards")
    finally:
        model.to(torch.float32)
    for fn in os.listdir(model_dir):
        os.chmod(os.path.join(model_dir, fn), 0o644)  # safetensors writes 0600
    shards = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors"))
    if len(shards) != spec["shards"]:
        raise RuntimeError(f"expected {spec['shards']} shard(s), got {shards}")
    if spec["legacy_rope_theta"]:
        cfg_path = os.path.join(model_dir, "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        rp = cfg.pop("rope_parameters")
        assert rp.get("rope_type", "default") == "default", rp
        cfg["rope_theta"] = rp["rope_theta"]
        cfg["rope_scaling"] = None
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
    return shards


def build(family, spec, seed):
    cfg = spec["config_cls"](**spec["config"])
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    torch.manual_seed(seed)
    init_params(model, cfg.hidden_size)
    round_params(model, spec["dtype"])
    return model, cfg


def make_family(family, out_root):
    spec = FAMILIES[family]
    fam_dir = os.path.join(out_root, family)
    model_dir = os.path.join(fam_dir, "model")
    os.makedirs(fam_dir, exist_ok=True)

    for attempt in range(50):
        seed = spec["seed"] + attempt
        model, cfg = build(family, spec, seed)
        k = cfg.num_experts_per_tok
        gen = torch.Generator().manual_seed(seed + 7919)
        cases = []
        ok = True
        why = ""
        for plen in PROMPT_LENS:
            prompt = torch.randint(0, cfg.vocab_size, (plen,), generator=gen).tolist()
            logits = forward(model, prompt).logits[0].float().contiguous()
            greedy_ids, margins, maxabs = greedy(model, prompt, N_GREEDY)
            full = prompt + greedy_ids[:-1]
            # the full-sequence logits at the prompt positions must equal the prompt-only forward
            # (causal model); the router check covers every position the C engine will see
            gap, n_moe = router_min_gap(model, full, k)
            rel = min(m / a for m, a in zip(margins, maxabs))
            if rel < GREEDY_MARGIN_REL:
                ok, why = False, f"greedy near tie (rel margin {rel:.2e})"
            if gap < ROUTER_GAP_ABS:
                ok, why = False, f"router near tie (gap {gap:.2e})"
            cases.append(dict(prompt=prompt, logits=logits, greedy=greedy_ids, margins=margins,
                              maxabs=maxabs, router_gap=gap, n_moe=n_moe))
        if ok:
            break
        print(f"[{family}] seed {seed} rejected: {why}", file=sys.stderr)
    else:
        raise RuntimeError(f"{family}: no acceptable seed")

    clip_info = None
    if getattr(cfg, "clip_qkv", None) is not None:
        cs = ClipStats(model, cfg.clip_qkv)
        forward(model, cases[0]["prompt"])
        cs.remove()
        clip_info = {key: {"clipped": c[0], "total": c[1]} for key, c in cs.counts.items()}
        if all(c[0] == 0 for c in cs.counts.values()):
            raise RuntimeError("clip_qkv clips nothing: lower it")

    shards = save_model(model, spec, model_dir)

    # reload what was written and check it reproduces the reference exactly
    reloaded = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    reloaded.eval()
    for c in cases:
        lr = forward(reloaded, c["prompt"]).logits[0].float()
        diff = float((lr - c["logits"]).abs().max())
        if diff != 0.0:
            raise RuntimeError(f"{family}: reloaded checkpoint differs from reference by {diff}")
        gr, _, _ = greedy(reloaded, c["prompt"], 4)
        assert gr == c["greedy"][:4]

    # independent numpy float64 forward of the files on disk
    for c in cases:
        ref_np = numpy_forward(model_dir, c["prompt"])
        err = float(np.abs(ref_np - c["logits"].numpy()).max())
        rel = err / float(np.abs(ref_np).max())
        if rel > 1e-5:
            raise RuntimeError(f"{family}: numpy re-implementation differs: max|diff| {err} (rel {rel})")
        c["numpy_rel_err"] = rel

    # logits.f32 and reference.json
    ref_cases = []
    offset = 0
    with open(os.path.join(fam_dir, "logits.f32"), "wb") as f:
        for c in cases:
            arr = c["logits"].numpy().astype("<f4")
            f.write(arr.tobytes())
            ref_cases.append({
                "prompt_ids": c["prompt"],
                "logits_offset": offset,
                "logits_shape": list(arr.shape),
                "greedy_ids": c["greedy"],
                "max_abs_logit": float(np.abs(arr).max()),
                "greedy_min_margin": min(c["margins"]),
                "greedy_min_rel_margin": min(m / a for m, a in zip(c["margins"], c["maxabs"])),
                "router_min_topk_gap": c["router_gap"],
                "numpy_f64_max_rel_diff": c["numpy_rel_err"],
            })
            offset += arr.nbytes
    ref = {
        "family": family,
        "model_dir": f"tests/fixtures/{family}/model",
        "logits_file": f"tests/fixtures/{family}/logits.f32",
        "logits_offset_unit": "bytes",
        "logits_dtype": "float32 little-endian, row-major [n_prompt_tokens, vocab]",
        "weights_dtype_on_disk": str(spec["dtype"]).replace("torch.", ""),
        "safetensors_files": shards,
        "seed": seed,
        "cases": ref_cases,
        "tolerance_hint": "fp32 forward of the on-disk weights upcast to fp32: expect max|diff| <= 1e-4 * max_abs_logit",
        "clip_qkv_stats_case0": clip_info,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "command": f"{COMMAND} --family {family}",
    }
    text = json.dumps(ref, indent=1)
    # one line per list of numbers
    text = re.sub(r"\[\s*([-0-9.e, \n]+?)\s*\]", lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    with open(os.path.join(fam_dir, "reference.json"), "w") as f:
        f.write(text + "\n")
    assert json.loads(text) == json.loads(json.dumps(ref))

    size = dir_size(fam_dir)
    if size >= MAX_FIXTURE_BYTES:
        raise RuntimeError(f"{family}: fixture is {size} bytes (limit {MAX_FIXTURE_BYTES})")

    print(f"[{family}] seed {seed}, {sum(p.numel() for p in model.parameters())} params, "
          f"{str(spec['dtype'])[6:]} on disk, shards {shards}, fixture {size} bytes")
    for i, c in enumerate(ref_cases):
        print(f"[{family}]   case {i}: prompt {len(c['prompt_ids'])} tokens, max|logit| {c['max_abs_logit']:.4f}, "
              f"greedy min margin {c['greedy_min_margin']:.4f} "
              f"(rel {c['greedy_min_rel_margin']:.4f}), router min top-k gap {c['router_min_topk_gap']:.4f}")
    if clip_info:
        print(f"[{family}]   clip_qkv={cfg.clip_qkv}: " + ", ".join(
            f"{k} {v['clipped']}/{v['total']}" for k, v in clip_info.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", action="append", choices=sorted(FAMILIES), help="default: all")
    ap.add_argument("--out-root", default=os.path.join(REPO_ROOT, "tests", "fixtures"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    for fam in args.family or list(FAMILIES):
        make_family(fam, args.out_root)


if __name__ == "__main__":
    main()
