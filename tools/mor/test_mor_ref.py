#!/usr/bin/env python3
"""Tests of tools/mor/mor_ref.py against a hand-unrolled computation.

The hand version below shares no code with mor_ref: it walks the prompt one token at a time
(decode order) in float64, keeps explicit K/V lists per (recursion r, block layer j) that a
token appends to only when it runs step r, and does RMSNorm, RoPE, GQA attention, softmax and
SwiGLU with loops over heads and rotary pairs. mor_ref computes the whole sequence at once with
attention masks. They must agree for both router kinds and both KV modes, for the inference
rule, and (expert choice, recursion-wise) for the training top-k with its auxiliary loss, which
the hand version computes step-major with explicit sorting.

The toy weights are drawn until routing is mixed (tokens leave at every depth), so a rule
applied to the wrong tokens cannot agree by accident; test_sensitivity checks that swapping the
KV mode or the update rule does move the logits by far more than the tolerance.

Run: /work/venv/bin/python tools/mor/test_mor_ref.py   (about 20 s on one core)
"""

import math
import os
import sys
import tempfile
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mor_ref  # noqa: E402

TOL = 1e-10      # float64 both sides


def toy_config(router_type, kv_mode, Nr=3, B=2):
    return {
        "model_type": "mor_llama", "architectures": ["MoRLlamaForCausalLM"],
        "vocab_size": 48, "hidden_size": 32, "intermediate_size": 40,
        "num_hidden_layers": 2 + Nr * B, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 8, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256,
        "tie_word_embeddings": router_type == "expert_choice", "hidden_act": "silu",
        "bos_token_id": 0, "eos_token_id": 0,
        "mor": {"num_recursion": Nr, "sharing": "middle_cycle", "router_type": router_type,
                "router_func": "sigmoid" if router_type == "expert_choice" else "softmax",
                "alpha": 0.1 if router_type == "expert_choice" else 1.0,
                "capacity": [(Nr - i) / Nr for i in range(Nr)], "threshold": 0.5, "kv_mode": kv_mode},
    }


def toy_weights(cfg, seed, router_gain):
    g = torch.Generator().manual_seed(seed)
    W = {}
    for name, shape in mor_ref.expected_shapes(cfg).items():
        if name.endswith("layernorm.weight") or name == "model.norm.weight":
            W[name] = 1 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif "embed_tokens" in name:
            W[name] = torch.randn(shape, generator=g, dtype=torch.float64)
        elif "mor_router" in name:
            W[name] = torch.randn(shape, generator=g, dtype=torch.float64) * router_gain / math.sqrt(shape[1])
        else:
            W[name] = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(shape[1])
    return W


# ---------------------------------------------------------------------------------------------
# The hand-unrolled version (no mor_ref code)

def h_rmsnorm(x, w, eps):
    ms = sum(float(v) * float(v) for v in x) / len(x)
    return torch.tensor([float(x[i]) / math.sqrt(ms + eps) * float(w[i]) for i in range(len(x))], dtype=torch.float64)


def h_rope(vec, pos, theta):
    d = len(vec)
    out = vec.clone()
    for i in range(d // 2):
        a = pos * theta ** (-2.0 * i / d)
        c, s = math.cos(a), math.sin(a)
        out[i] = vec[i] * c - vec[i + d // 2] * s
        out[i + d // 2] = vec[i + d // 2] * c + vec[i] * s
    return out


class Hand:
    def __init__(self, W, c):
        self.W, self.c = W, c
        self.nq, self.nkv, self.hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.eps, self.theta = c["rms_norm_eps"], c["rope_theta"]

    def qkv(self, p, h, pos):
        W = self.W
        x = h_rmsnorm(h, W[p + "input_layernorm.weight"], self.eps)
        q = W[p + "self_attn.q_proj.weight"] @ x
        k = W[p + "self_attn.k_proj.weight"] @ x
        v = W[p + "self_attn.v_proj.weight"] @ x
        hd = self.hd
        q = [h_rope(q[i * hd:(i + 1) * hd], pos, self.theta) for i in range(self.nq)]
        k = [h_rope(k[i * hd:(i + 1) * hd], pos, self.theta) for i in range(self.nkv)]
        v = [v[i * hd:(i + 1) * hd] for i in range(self.nkv)]
        return q, k, v

    def finish(self, p, h, q, keys):
        """keys: list of (k heads, v heads) this query attends to (already including itself)."""
        W = self.W
        heads = []
        for i in range(self.nq):
            kvh = i // (self.nq // self.nkv)
            sc = [float(q[i] @ kk[kvh]) / math.sqrt(self.hd) for kk, _ in keys]
            m = max(sc)
            e = [math.exp(s - m) for s in sc]
            z = sum(e)
            o = torch.zeros(self.hd, dtype=torch.float64)
            for w, (_, vv) in zip(e, keys):
                o = o + (w / z) * vv[kvh]
            heads.append(o)
        h = h + W[p + "self_attn.o_proj.weight"] @ torch.cat(heads)
        x = h_rmsnorm(h, W[p + "post_attention_layernorm.weight"], self.eps)
        gt = W[p + "mlp.gate_proj.weight"] @ x
        up = W[p + "mlp.up_proj.weight"] @ x
        act = torch.tensor([float(a) / (1 + math.exp(-float(a))) * float(b) for a, b in zip(gt, up)], dtype=torch.float64)
        return h + W[p + "mlp.down_proj.weight"] @ act

    def layer(self, p, h, pos, cache):
        """A decoder layer for one token that appends its K/V to `cache` and attends to it."""
        q, k, v = self.qkv(p, h, pos)
        cache.append((k, v))
        return self.finish(p, h, q, list(cache))

    def logits(self, h):
        W, c = self.W, self.c
        x = h_rmsnorm(h, W["model.norm.weight"], self.eps)
        head = W["model.embed_tokens.weight"] if c["tie_word_embeddings"] else W["lm_head.weight"]
        return head @ x

    def forward_decode(self, ids):
        """Token by token, explicit caches. Returns logits [T, V] and depths."""
        c, W = self.c, self.W
        m = c["mor"]
        Nr = m["num_recursion"]
        B = (c["num_hidden_layers"] - 2) // Nr
        caches = {}
        out, depths = [], []
        for pos, tok in enumerate(ids):
            h = W["model.embed_tokens.weight"][tok].clone()
            h = self.layer("model.layers.0.", h, pos, caches.setdefault("first", []))
            depth = 0
            if m["router_type"] == "expert_choice":
                for r in range(1, Nr + 1):
                    s = float(W[f"model.layers.{r}.mor_router.router.weight"][0] @ h)
                    prob = 1 / (1 + math.exp(-s))
                    if r > 1 and prob < m["threshold"]:
                        break                          # leaves: no later step either
                    y = self.block(h, pos, r, caches, m["kv_mode"], B)
                    h = h + m["alpha"] * prob * y
                    depth = r
            else:
                H1 = h
                lg = W["model.layers.1.mor_router.router.weight"] @ H1
                mx = max(float(v) for v in lg)
                e = [math.exp(float(v) - mx) for v in lg]
                probs = [m["alpha"] * v / sum(e) for v in e]
                i = max(range(Nr), key=lambda a: probs[a])
                x = H1
                for r in range(1, i + 2):
                    x = self.block(x, pos, r, caches, m["kv_mode"], B)
                h = H1 + probs[i] * x
                depth = i + 1
            h = self.layer(f"model.layers.{Nr + 1}.", h, pos, caches.setdefault("last", []))
            out.append(self.logits(h))
            depths.append(depth)
        return torch.stack(out), depths

    def block(self, h, pos, r, caches, kv_mode, B):
        for j in range(B):
            p = f"model.layers.1.block.{j}."
            if kv_mode == "recursion_wise" or r == 1:
                h = self.layer(p, h, pos, caches.setdefault((r, j), []))
            else:   # recursive sharing: query of step r against step-1 K/V (own step-1 entry included)
                q, _, _ = self.qkv(p, h, pos)
                h = self.finish(p, h, q, list(caches[(1, j)]))
        return h

    def forward_train_ec(self, ids):
        """Expert choice, recursion-wise, official training top-k, computed step-major: the
        selected tokens of step r are gathered in causal order and run as a short sequence
        keeping their positions. Returns logits [T, V], depths, summed auxiliary BCE loss."""
        c, W = self.c, self.W
        m = c["mor"]
        Nr = m["num_recursion"]
        B = (c["num_hidden_layers"] - 2) // Nr
        T = len(ids)
        cache = []
        hs = [self.layer("model.layers.0.", W["model.embed_tokens.weight"][t].clone(), pos, cache)
              for pos, t in enumerate(ids)]
        cand = list(range(T))
        depth = [0] * T
        aux = 0.0
        for r in range(1, Nr + 1):
            s = {t: float(W[f"model.layers.{r}.mor_router.router.weight"][0] @ hs[t]) for t in cand}
            k = max(1, int(m["capacity"][r - 1] * T))
            ranked = sorted(cand, key=lambda t: -s[t])
            sel = sorted(ranked[:k])
            assert k == len(cand) or s[ranked[k - 1]] != s[ranked[k]], "top-k tie in the toy"
            bce = 0.0
            for t in cand:
                y = 1.0 if t in sel else 0.0
                bce += max(s[t], 0) - s[t] * y + math.log1p(math.exp(-abs(s[t])))
            aux += bce / len(cand)
            ys = {t: hs[t] for t in sel}
            for j in range(B):
                cache = []
                for t in sel:
                    ys[t] = self.layer(f"model.layers.1.block.{j}.", ys[t], t, cache)
            for t in sel:
                hs[t] = hs[t] + m["alpha"] / (1 + math.exp(-s[t])) * ys[t]
                depth[t] = r
            cand = sel
        cache = []
        out = [self.logits(self.layer(f"model.layers.{Nr + 1}.", hs[t], t, cache)) for t in range(T)]
        return torch.stack(out), depth, aux


def mixed(depths, Nr):
    return all(d in depths for d in range(1, Nr + 1))


def find_toy(router_type, kv_mode, T, gain):
    """First seed whose routing (inference rule) is mixed over the prompt."""
    c = toy_config(router_type, kv_mode)
    cfg = mor_ref.MoRConfig(c)
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, c["vocab_size"], (T,), generator=g)
    for seed in range(200):
        W = toy_weights(cfg, seed, gain)
        _, info = mor_ref.forward(W, cfg, ids)
        if mixed(info["depth"].tolist(), cfg.num_recursion):
            return c, cfg, W, ids
    raise AssertionError(f"no toy seed with mixed routing for {router_type}/{kv_mode}")


class TestMoRRef(unittest.TestCase):
    T = 14

    def check_infer(self, router_type, kv_mode):
        gain = 6.0 if router_type == "expert_choice" else 4.0
        c, cfg, W, ids = find_toy(router_type, kv_mode, self.T, gain)
        ref, info = mor_ref.forward(W, cfg, ids)
        hand, depths = Hand(W, c).forward_decode(ids.tolist())
        self.assertEqual(info["depth"].tolist(), depths)
        err = (ref - hand).abs().max().item()
        self.assertLess(err, TOL * max(1.0, hand.abs().max().item()), f"{router_type}/{kv_mode}: max diff {err}")
        return c, cfg, W, ids, ref

    def test_expert_choice_recursion_wise(self):
        self.check_infer("expert_choice", "recursion_wise")

    def test_expert_choice_recursive_sharing(self):
        self.check_infer("expert_choice", "recursive_sharing")

    def test_token_choice_recursion_wise(self):
        self.check_infer("token_choice", "recursion_wise")

    def test_token_choice_recursive_sharing(self):
        self.check_infer("token_choice", "recursive_sharing")

    def test_expert_choice_training_topk(self):
        c, cfg, W, ids = find_toy("expert_choice", "recursion_wise", self.T, 6.0)
        ref, info = mor_ref.forward(W, cfg, ids, mode="train")
        hand, depth, aux = Hand(W, c).forward_train_ec(ids.tolist())
        self.assertEqual(info["depth"].tolist(), depth)
        # capacities 1, 2/3, 1/3 of T = 14: 14, 9, 4 tokens
        self.assertEqual([sum(d >= r for d in depth) for r in (1, 2, 3)], [14, 9, 4])
        self.assertLess((ref - hand).abs().max().item(), TOL * hand.abs().max().item())
        self.assertLess(abs(info["sampling_loss"].item() - aux), 1e-12)

    def test_sensitivity(self):
        """The comparison can fail: the other KV mode, the update h + g*(Block(h) - h) (the
        residual excluded) or every token at full depth all move the logits far beyond TOL."""
        c, cfg, W, ids, ref = self.check_infer("expert_choice", "recursion_wise")
        c2 = dict(c, mor=dict(c["mor"], kv_mode="recursive_sharing"))
        other, _ = mor_ref.forward(W, mor_ref.MoRConfig(c2), ids)
        self.assertGreater((other - ref).abs().max().item(), 1e-3)
        c3 = dict(c, mor=dict(c["mor"], threshold=0.0))                     # nobody leaves
        full, info = mor_ref.forward(W, mor_ref.MoRConfig(c3), ids)
        self.assertEqual(set(info["depth"].tolist()), {3})
        self.assertGreater((full - ref).abs().max().item(), 1e-3)
        hand = Hand(W, c)
        orig = hand.block
        hand.block = lambda h, *a: orig(h, *a) - h                          # Block without residual
        wrong, _ = hand.forward_decode(ids.tolist())
        self.assertGreater((wrong - ref).abs().max().item(), 1e-3)

    def test_save_load_roundtrip(self):
        c, cfg, W, ids = find_toy("token_choice", "recursion_wise", self.T, 4.0)
        with tempfile.TemporaryDirectory() as d:
            mor_ref.save_checkpoint(d, c, W, dtype=torch.float32)
            cfg2, W2 = mor_ref.load(d)
            self.assertEqual(set(W2), set(W))
            for k in W:
                self.assertTrue(torch.equal(W2[k], W[k].float().double()), k)
            # an official-style repeated copy of the shared block is accepted when identical ...
            from safetensors.torch import load_file, save_file
            f = os.path.join(d, "model.safetensors")
            t = load_file(f)
            t["model.layers.2.block.0.mlp.up_proj.weight"] = t["model.layers.1.block.0.mlp.up_proj.weight"].clone()
            save_file(t, f)
            mor_ref.load(d)
            # ... and refused, naming the tensor, when it differs
            t["model.layers.2.block.0.mlp.up_proj.weight"][0, 0] += 1
            save_file(t, f)
            with self.assertRaisesRegex(ValueError, "model.layers.2.block.0.mlp.up_proj.weight"):
                mor_ref.load(d)

    def test_vanilla_llama_matches_transformers(self):
        """The decoder layer (RoPE, GQA, norms, SwiGLU) against transformers' LlamaForCausalLM."""
        from transformers import LlamaConfig, LlamaForCausalLM
        c = toy_config("expert_choice", "recursion_wise")
        c = {k: v for k, v in c.items() if k != "mor"}
        c.update(model_type="llama", architectures=["LlamaForCausalLM"], num_hidden_layers=3)
        cfg = mor_ref.MoRConfig(c)
        W = toy_weights(cfg, 7, 1.0)
        hf = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in c.items() if k not in ("model_type", "architectures")},
                                          attn_implementation="eager")).double().eval()
        sd = {k: v for k, v in W.items()}
        sd["lm_head.weight"] = W["model.embed_tokens.weight"]
        hf.load_state_dict(sd, strict=True)
        ids = torch.arange(20) % c["vocab_size"]
        with torch.no_grad():
            want = hf(ids[None]).logits[0]
        got, _ = mor_ref.forward(W, cfg, ids)
        # transformers makes the RoPE inv_freq/cos/sin in float32 even for a float64 model
        # (mor_ref: float64), hence ~1e-6 relative here instead of ~1e-15.
        self.assertLess((got - want).abs().max().item(), 2e-5 * want.abs().max().item())

    def test_committed_fixtures_reproduce(self):
        """tests/fixtures/mor_*: the committed logits and depths are what mor_ref computes from
        the committed checkpoint (catches a reference change without regenerated fixtures)."""
        import json
        import numpy as np
        root = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tests", "fixtures")
        names = sorted(n for n in os.listdir(root) if n.startswith("mor_"))
        self.assertGreaterEqual(len(names), 4)
        for n in names:
            ref = json.load(open(os.path.join(root, n, "reference.json")))
            cfg, W = mor_ref.load(os.path.join(os.path.dirname(os.path.dirname(root)), ref["model_dir"]))
            raw = np.fromfile(os.path.join(root, n, "logits.f32"), dtype="<f4")
            for c in ref["cases"]:
                T, V = c["logits_shape"]
                want = torch.from_numpy(raw[c["logits_offset"] // 4:c["logits_offset"] // 4 + T * V].reshape(T, V).copy())
                full = c["prompt_ids"] + c["greedy_ids"][:-1]
                got, info = mor_ref.forward(W, cfg, torch.tensor(full))
                self.assertEqual(info["depth"].tolist(), c["depths"], n)
                self.assertLess((got[:T].float() - want).abs().max().item(), 1e-6 * want.abs().max().item(), n)
                self.assertEqual(got[-1].argmax().item(), c["greedy_ids"][-1], n)


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main(verbosity=2)
