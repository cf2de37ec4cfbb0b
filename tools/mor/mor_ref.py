#!/usr/bin/env python3
"""PyTorch reference of the Mixture-of-Recursions (MoR) forward, `model_type: "mor_llama"`.

This is the authority for roe's MoR engine: fixtures (tools/mor/make_mor_fixtures.py) and the
trained models/mor-tiny are computed by it. It follows the official code of the paper
(Bae et al., arXiv 2507.10524; github raymin0223/mixture_of_recursions, read at the fork
sudeshmu/mixture_of_recursions): the file/line references below are to that code, and
docs/MODELS.md "Mixture-of-Recursions (mor_llama)" has the full account.

Model (sharing `middle_cycle`, model/mor_model/modeling_llama.py:351-360):
    h = embed(ids) -> layer 0 -> recursions r = 1..N_r over ONE shared block of B decoder layers
      -> layer N_r+1 -> final RMSNorm -> lm_head (tied to the embedding when configured).
A decoder layer is stock HF Llama (pre-norm RMSNorm, RoPE rotate-half, GQA, SwiGLU) and
INCLUDES its residuals (model/base_model/modeling_llama.py:306-328), so Block(h) = h + delta.

Routers (inference, `mode="infer"`):
  expert_choice (expert_choice_router.py): s_r = w_r . h, g_r = alpha * sigmoid(s_r) (:152-158).
      Step 1 always runs; step r > 1 runs iff step r-1 ran and sigmoid(s_r) >= threshold (the
      causal rule; the code's own top-k, :144/:169, is over the whole sequence). A running
      step does h <- h + g_r * Block(h) (the scatter_add of :280-287 onto total_x).
  token_choice (token_choice_router.py): p = alpha * softmax(W . H^1) (:186-190), i = argmax
      (:204), w = p[i] (:205). The token runs steps 1..i (1-based); steps before i pass the raw
      Block output on (:283-294), step i writes H^1 + w * Block(H^i) (:182, :269-281).
Training (`mode="train"`, expert_choice): the code's top-k: k_r = max(1, int(capacity_r * T))
  tokens per row among those that ran step r-1 (hierarchical, :144-148, :169-172, :217-219),
  plus the auxiliary BCE loss of the raw router logits against the top-k mask (:204-207).
  token_choice training adds the balancing loss (:301-306) and z-loss (:312-315).

KV modes, expressed as attention masks over the sequence (K/V of token u at (r, j) exist only
if u ran step r):
  recursion_wise: at (r, j) a running token attends to the earlier tokens that ran step r
      (their K/V computed from their own step-r states) and itself; layer 0 and the last layer
      see every token. Equal to the official gather-then-causal-attention (:245-278).
  recursive_sharing: step 1 as above (every token runs it); at step r > 1, block layer j's
      query attends to the step-1 K/V of layer j of every token u <= t, its own step-1 K/V
      included: the official inference cache returns recursion 1's cache for the deeper layers
      (model/kv_caches/cache_utils.py:553-563, update_cache off by default) and the fresh k/v
      of step r are dropped. (The official *training* path, no cache, instead runs every token
      through the block at every step with fresh K/V, :226-242; `mode="train"` does that.)

Everything here is deterministic (no dropout) and runs in the dtype of the weights it is given
(float32 or float64). Prefill equals token-by-token decode by construction (every rule above
is causal): tools/mor/test_mor_ref.py checks that against an explicit per-token loop.

Checkpoint format: /work/notes/s24/mor_spec.md, restated in docs/MODELS.md.
"""

import json
import math
import os

import torch
import torch.nn.functional as F

LAYER_KEYS = ("input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
              "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
              "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")


class MoRConfig:
    """The fields of config.json the forward reads (Llama base + the `mor` object)."""

    def __init__(self, d):
        self.raw = d
        if d.get("model_type") not in ("mor_llama", "llama"):
            raise ValueError(f"config: model_type {d.get('model_type')!r} is neither 'mor_llama' nor 'llama'")
        self.model_type = d["model_type"]
        self.vocab_size = int(d["vocab_size"])
        self.hidden_size = int(d["hidden_size"])
        self.intermediate_size = int(d["intermediate_size"])
        self.num_hidden_layers = int(d["num_hidden_layers"])
        self.num_attention_heads = int(d["num_attention_heads"])
        self.num_key_value_heads = int(d.get("num_key_value_heads") or self.num_attention_heads)
        self.head_dim = int(d.get("head_dim") or self.hidden_size // self.num_attention_heads)
        self.rms_norm_eps = float(d.get("rms_norm_eps", 1e-6))
        rp = d.get("rope_parameters") or {}
        self.rope_theta = float(rp.get("rope_theta", d.get("rope_theta", 10000.0)))
        self.tie_word_embeddings = bool(d.get("tie_word_embeddings", False))
        if d.get("hidden_act", "silu") != "silu":
            raise ValueError(f"config: hidden_act {d.get('hidden_act')!r}: only 'silu' is supported")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("config: num_attention_heads must be a multiple of num_key_value_heads")
        if self.model_type == "llama":
            self.mor = None
            return
        m = d.get("mor")
        if not isinstance(m, dict):
            raise ValueError("config: model_type mor_llama needs a 'mor' object")
        self.mor = m
        self.num_recursion = int(m["num_recursion"])
        if m.get("sharing", "middle_cycle") != "middle_cycle":
            raise ValueError(f"config: mor.sharing {m.get('sharing')!r}: only 'middle_cycle' is supported")
        if self.num_recursion < 1 or (self.num_hidden_layers - 2) % self.num_recursion:
            raise ValueError(f"config: num_hidden_layers {self.num_hidden_layers} is not 2 + num_recursion * B "
                             f"(num_recursion {self.num_recursion})")
        self.block_size = (self.num_hidden_layers - 2) // self.num_recursion
        self.router_type = m["router_type"]
        if self.router_type not in ("expert_choice", "token_choice"):
            raise ValueError(f"config: mor.router_type {self.router_type!r} is neither expert_choice nor token_choice")
        default_func = "sigmoid" if self.router_type == "expert_choice" else "softmax"
        self.router_func = m.get("router_func", default_func)
        if self.router_func != default_func:
            raise ValueError(f"config: mor.router_func {self.router_func!r}: {self.router_type} supports {default_func!r} only")
        self.alpha = float(m.get("alpha", 0.1 if self.router_type == "expert_choice" else 1.0))
        self.capacity = [float(c) for c in m.get("capacity", [(self.num_recursion - i) / self.num_recursion
                                                               for i in range(self.num_recursion)])]
        if len(self.capacity) != self.num_recursion:
            raise ValueError("config: mor.capacity must have num_recursion entries")
        self.threshold = float(m.get("threshold", 0.5))
        self.kv_mode = m.get("kv_mode", "recursion_wise")
        if self.kv_mode not in ("recursion_wise", "recursive_sharing"):
            raise ValueError(f"config: mor.kv_mode {self.kv_mode!r} is neither recursion_wise nor recursive_sharing")

    @property
    def last_layer(self):
        return self.num_recursion + 1


def load_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return MoRConfig(json.load(f))


def expected_shapes(cfg):
    """name -> shape of every tensor the spec allows (one copy of the shared block)."""
    d, hd, I, V = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size, cfg.vocab_size
    nq, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    lay = {"input_layernorm.weight": (d,), "self_attn.q_proj.weight": (nq * hd, d),
           "self_attn.k_proj.weight": (nkv * hd, d), "self_attn.v_proj.weight": (nkv * hd, d),
           "self_attn.o_proj.weight": (d, nq * hd), "post_attention_layernorm.weight": (d,),
           "mlp.gate_proj.weight": (I, d), "mlp.up_proj.weight": (I, d), "mlp.down_proj.weight": (d, I)}
    out = {"model.embed_tokens.weight": (V, d), "model.norm.weight": (d,)}
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = (V, d)
    if cfg.mor is None:
        prefixes = [f"model.layers.{i}." for i in range(cfg.num_hidden_layers)]
    else:
        prefixes = ["model.layers.0.", f"model.layers.{cfg.last_layer}."]
        prefixes += [f"model.layers.1.block.{j}." for j in range(cfg.block_size)]
        if cfg.router_type == "expert_choice":
            for r in range(1, cfg.num_recursion + 1):
                out[f"model.layers.{r}.mor_router.router.weight"] = (1, d)
        else:
            out["model.layers.1.mor_router.router.weight"] = (cfg.num_recursion, d)
    for p in prefixes:
        for k, s in lay.items():
            out[p + k] = s
    return out


def load_weights(model_dir, cfg, dtype=torch.float64):
    """Read the safetensors file(s) and check names and shapes against the spec; returns
    name -> tensor in `dtype`. Official-style repeated copies of the shared block
    (model.layers.{r}.block.{j}, r >= 2) are accepted only if byte-identical to r = 1."""
    from safetensors.torch import load_file
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    raw = {}
    for fn in files:
        raw.update(load_file(os.path.join(model_dir, fn)))
    want = expected_shapes(cfg)
    out = {}
    for name, t in raw.items():
        if name in want:
            if tuple(t.shape) != want[name]:
                raise ValueError(f"{model_dir}: tensor {name} has shape {list(t.shape)}, expected {list(want[name])}")
            out[name] = t
            continue
        parts = name.split(".")
        if (cfg.mor is not None and len(parts) > 4 and parts[:2] == ["model", "layers"] and parts[3] == "block"
                and parts[2].isdigit() and 2 <= int(parts[2]) <= cfg.num_recursion):
            ref = "model.layers.1." + ".".join(parts[3:])
            if ref not in raw or raw[ref].dtype != t.dtype or not torch.equal(raw[ref], t):
                raise ValueError(f"{model_dir}: tensor {name} is a copy of the shared block but differs from {ref}")
            continue
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue   # some writers keep the tied copy; the embedding is used
        raise ValueError(f"{model_dir}: unexpected tensor {name}")
    missing = sorted(set(want) - set(out))
    if missing:
        raise ValueError(f"{model_dir}: missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return {k: v.to(dtype) for k, v in out.items()}


def save_checkpoint(model_dir, config_dict, weights, dtype=torch.bfloat16, tokenizer_dir=None):
    """Write config.json + model.safetensors (the spec's names, `dtype` on disk; routers and
    norms too, like HF save_pretrained in one dtype) and copy the tokenizer files."""
    import shutil
    from safetensors.torch import save_file
    cfg = MoRConfig(config_dict)
    want = expected_shapes(cfg)
    if set(weights) != set(want):
        raise ValueError(f"save: names differ from the spec: extra {sorted(set(weights) - set(want))[:5]}, "
                         f"missing {sorted(set(want) - set(weights))[:5]}")
    os.makedirs(model_dir, exist_ok=True)
    d = dict(config_dict)
    d["dtype"] = {torch.bfloat16: "bfloat16", torch.float32: "float32", torch.float16: "float16"}[dtype]
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
    save_file({k: weights[k].detach().to(dtype).contiguous() for k in sorted(weights)},
              os.path.join(model_dir, "model.safetensors"), metadata={"format": "pt"})
    if tokenizer_dir:
        for fn in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tokenizer_dir, fn), os.path.join(model_dir, fn))


# ----------------------------------------------------------------------------------------------
# Building blocks (HF Llama semantics)

def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope_cos_sin(positions, head_dim, theta, dtype):
    """cos/sin [T, head_dim] for absolute positions (HF default rope, rotate-half pairing)."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    ang = positions.to(torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):          # x [B, H, T, hd], cos/sin [T, hd]
    return x * cos + rotate_half(x) * sin


def layer_qkv(W, p, cfg, h, cos, sin):
    """Pre-norm, projections and RoPE of one decoder layer: q [B,nq,T,hd], k/v [B,nkv,T,hd]."""
    B, T, _ = h.shape
    hd, nq, nkv = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
    x = rms_norm(h, W[p + "input_layernorm.weight"], cfg.rms_norm_eps)
    q = (x @ W[p + "self_attn.q_proj.weight"].T).view(B, T, nq, hd).transpose(1, 2)
    k = (x @ W[p + "self_attn.k_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
    v = (x @ W[p + "self_attn.v_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v


def layer_finish(W, p, cfg, h, q, k, v, allowed):
    """Attention of q over k/v where allowed[B,T,T] (query t may see key u), then o_proj and
    the residual, then the SwiGLU MLP and its residual: the output of the decoder layer."""
    B, T, _ = h.shape
    rep = cfg.num_attention_heads // cfg.num_key_value_heads
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    s = (q @ k.transpose(-1, -2)) * (cfg.head_dim ** -0.5)
    s = s.masked_fill(~allowed[:, None, :, :], float("-inf"))
    a = torch.softmax(s, dim=-1) @ v                                  # [B, nq, T, hd]
    a = a.transpose(1, 2).reshape(B, T, -1)
    h = h + a @ W[p + "self_attn.o_proj.weight"].T
    x = rms_norm(h, W[p + "post_attention_layernorm.weight"], cfg.rms_norm_eps)
    m = F.silu(x @ W[p + "mlp.gate_proj.weight"].T) * (x @ W[p + "mlp.up_proj.weight"].T)
    return h + m @ W[p + "mlp.down_proj.weight"].T


def decoder_layer(W, p, cfg, h, cos, sin, allowed):
    q, k, v = layer_qkv(W, p, cfg, h, cos, sin)
    return layer_finish(W, p, cfg, h, q, k, v, allowed)


def lm_logits(W, cfg, h):
    h = rms_norm(h, W["model.norm.weight"], cfg.rms_norm_eps)
    head = W["model.embed_tokens.weight"] if cfg.tie_word_embeddings else W["lm_head.weight"]
    return h @ head.T


def causal(T, device):
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


# ----------------------------------------------------------------------------------------------
# The forward

def run_block(W, cfg, h, cos, sin, run, kv_mode, step, shared_kv):
    """One recursion over the shared block (B layers) for the whole sequence.

    run [B,T] bool: the tokens that run this step. Rows of tokens that do not run are computed
    too (so shapes stay fixed) but their result is discarded by the caller, and their K/V are
    masked out of everyone else's attention. Returns the Block output (with residuals)."""
    Bsz, T, _ = h.shape
    tri = causal(T, h.device)[None]
    eye = torch.eye(T, dtype=torch.bool, device=h.device)[None]
    for j in range(cfg.block_size):
        p = f"model.layers.1.block.{j}."
        q, k, v = layer_qkv(W, p, cfg, h, cos, sin)
        if kv_mode == "recursion_wise":
            allowed = tri & run[:, None, :]          # keys: earlier tokens that run this step
            allowed = allowed | eye                   # and itself (keeps non-running rows finite)
        elif kv_mode == "recursive_sharing":
            if step == 1:
                shared_kv[j] = (k, v)                 # every token runs step 1
            else:
                k, v = shared_kv[j]                   # step-1 K/V of every token u <= t
            allowed = tri.expand(Bsz, T, T)
        elif kv_mode == "train_sharing":              # official training path of kv_sharing
            allowed = tri.expand(Bsz, T, T)
        else:
            raise ValueError(kv_mode)
        h = layer_finish(W, p, cfg, h, q, k, v, allowed)
    return h


def forward(W, cfg, ids, mode="infer", positions=None):
    """Logits [B, T, V] for ids [B, T] (or [T]) and a dict of routing facts:
       depth [B,T] (recursions run), router_logits, aux losses (mode="train").
    mode "infer": the causal rules (threshold / argmax); "train": official top-k for expert
    choice (token choice routes the same way in both modes, it adds its training losses)."""
    squeeze = ids.dim() == 1
    if squeeze:
        ids = ids[None]
    Bsz, T = ids.shape
    dtype = W["model.embed_tokens.weight"].dtype
    if positions is None:
        positions = torch.arange(T, device=ids.device)
    cos, sin = rope_cos_sin(positions, cfg.head_dim, cfg.rope_theta, dtype)
    full = causal(T, ids.device)[None].expand(Bsz, T, T)
    h = W["model.embed_tokens.weight"][ids]
    info = {}
    if cfg.mor is None:                                   # plain llama
        for i in range(cfg.num_hidden_layers):
            h = decoder_layer(W, f"model.layers.{i}.", cfg, h, cos, sin, full)
        out = lm_logits(W, cfg, h)
        return (out[0] if squeeze else out), info

    h = decoder_layer(W, "model.layers.0.", cfg, h, cos, sin, full)
    Nr = cfg.num_recursion
    depth = torch.zeros(Bsz, T, dtype=torch.long, device=ids.device)
    kv_mode = cfg.kv_mode
    if mode == "train" and kv_mode == "recursive_sharing":
        kv_mode = "train_sharing"
    shared_kv = {}
    aux = h.new_zeros(())
    if cfg.router_type == "expert_choice":
        run = torch.ones(Bsz, T, dtype=torch.bool, device=ids.device)
        scores = []
        for r in range(1, Nr + 1):
            s = (h @ W[f"model.layers.{r}.mor_router.router.weight"].T)[..., 0]     # [B, T]
            scores.append(s)
            prob = torch.sigmoid(s)
            g = cfg.alpha * prob
            if mode == "infer":
                if r > 1:
                    run = run & (prob >= cfg.threshold)
            elif mode == "train":
                k = max(1, int(cfg.capacity[r - 1] * T))
                cand = run
                masked = torch.where(cand, g, torch.full_like(g, -1.0))   # g in (0, alpha): -1 never wins
                top = torch.topk(masked, k, dim=1, sorted=False).indices
                sel = torch.zeros_like(run).scatter(1, top, True)
                # BCE of the raw logits against the top-k mask, over the candidates (:204-207)
                n_cand = cand.sum(1, keepdim=True).clamp(min=1)
                bce = F.binary_cross_entropy_with_logits(s, sel.to(s.dtype), reduction="none")
                aux = aux + ((bce * cand).sum(1, keepdim=True) / n_cand).mean()
                run = sel
            else:
                raise ValueError(mode)
            y = run_block(W, cfg, h, cos, sin, run, kv_mode, r, shared_kv)
            h = torch.where(run[..., None], h + g[..., None] * y, h)
            depth = depth + run.long()
        info["router_logits"] = torch.stack(scores, -1)
    else:
        H1 = h
        logits_r = H1 @ W["model.layers.1.mor_router.router.weight"].T               # [B, T, Nr]
        probs = torch.softmax(logits_r, dim=-1) * cfg.alpha
        choice = probs.argmax(-1)                                                   # 0-based last step
        w = probs.gather(-1, choice[..., None])                                     # [B, T, 1]
        out = H1.clone()
        x = H1
        for r in range(Nr):
            run = choice >= r
            y = run_block(W, cfg, x, cos, sin, run, kv_mode, r + 1, shared_kv)
            fin = (choice == r)[..., None]
            out = torch.where(fin, H1 + w * y, out)
            x = torch.where((choice > r)[..., None], y, x)
        h = out
        depth = choice + 1
        info["router_logits"] = logits_r
        if mode == "train":
            P = probs.mean(dim=(0, 1))
            f = Nr * torch.bincount(choice.reshape(-1), minlength=Nr).to(P.dtype) / choice.numel()
            info["balancing_loss"] = (P * f).sum()
            info["z_loss"] = torch.logsumexp(logits_r, dim=-1).pow(2).mean()
    h = decoder_layer(W, f"model.layers.{cfg.last_layer}.", cfg, h, cos, sin, full)
    out = lm_logits(W, cfg, h)
    info["depth"] = depth[0] if squeeze else depth
    if squeeze:
        info["router_logits"] = info["router_logits"][0]
    info["sampling_loss"] = aux
    return (out[0] if squeeze else out), info


def greedy(W, cfg, prompt, n):
    """n tokens by argmax of the last position of a full-sequence forward (no EOS stop), and
    the smallest top1 - top2 margin along the way (absolute, relative to max|logit|)."""
    ids = list(prompt)
    margins = []
    for _ in range(n):
        logits, _ = forward(W, cfg, torch.tensor(ids))
        last = logits[-1]
        top2 = torch.topk(last, 2).values
        margins.append(float((top2[0] - top2[1]) / last.abs().max()))
        ids.append(int(last.argmax()))
    return ids[len(prompt):], min(margins)


def load(model_dir, dtype=torch.float64):
    cfg = load_config(model_dir)
    return cfg, load_weights(model_dir, cfg, dtype)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Run the MoR reference on a checkpoint: logits of a prompt and per-token depths.")
    ap.add_argument("model_dir")
    ap.add_argument("ids", nargs="+", type=int, help="prompt token ids")
    a = ap.parse_args()
    c, W = load(a.model_dir)
    lg, inf = forward(W, c, torch.tensor(a.ids))
    print("argmax", lg.argmax(-1).tolist())
    if "depth" in inf:
        print("depth ", inf["depth"].tolist())
