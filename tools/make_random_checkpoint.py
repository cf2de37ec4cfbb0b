#!/usr/bin/env python3
"""Write a random MoE checkpoint (default: the OLMoE-1B-7B shape, ~14 GB of bf16) for benchmarks.

The checkpoint has the tensor names and config.json of the published checkpoints of its family
(--family olmoe: per-expert tensors `model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj.weight`,
legacy top-level "rope_theta"; qwen2_moe: + q/k/v biases, the sigmoid-gated shared expert;
glm4_moe: + the correction bias, shared experts, dense first layers, partial rotary; gpt_oss: the
fused input-major experts with biases, router bias, sinks, alternating windows, YaRN; deepseek_v3:
multi-head latent attention (q_a/q_b with their norm, kv_a_proj_with_mqa, kv_b_proj), the
correction bias, shared experts, dense first layers, YaRN with mscale), so transformers'
from_pretrained loads it. --mxfp4 (gpt_oss): the experts as the published gpt-oss checkpoints store
them, `*_blocks` U8 [E, rows, cols/32, 16] (random e2m1 codes) and `*_scales` U8 [E, rows, cols/32]
(e8m0 exponents 119-121: weights of about the --std default's size), with quantization_config
{"quant_method": "mxfp4"}; the rest in --dtype. --preset picks a published shape (the layer count can be cut with
--layers, the dense first layers with --first-k-dense, the experts with --experts):
    gpt-oss-20b       gpt_oss, hidden 2880, 24 layers, 64 heads (kv 8) of 64, 32 experts of 2880, top-4
    glm-4.5-air       glm4_moe, hidden 4096, 46 layers, 96 heads (kv 8) of 128, 128 experts of 1408, top-8
    qwen1.5-moe-a2.7b qwen2_moe, hidden 2048, 24 layers, 16 heads, 60 experts of 1408, top-4
    deepseek-v3       deepseek_v3, hidden 7168, 61 layers (3 dense), 128 heads, MLA (q_lora 1536, kv_lora
                      512, qk 128 + 64, v 128), 256 experts of 2048 in 8 groups (4 kept), top-8, 1 shared
    kimi-k2           deepseek_v3, hidden 7168, 61 layers (1 dense), 64 heads, MLA as DeepSeek-V3, 384
                      experts of 2048 in 1 group, top-8, 1 shared, YaRN x32 over theta 50000

Files (in --out):
    config.json
    model.safetensors.index.json
    model-00001-of-NNNNN.safetensors     embed_tokens, model.norm, lm_head
    model-00002-of-NNNNN.safetensors     layer 0
    ...                                  one shard per layer

The safetensors format is written directly (8-byte little-endian header length, JSON header
padded with spaces to a multiple of 8, then the data), tensor by tensor, in chunks: the model is
never held in memory. Only numpy is needed (no torch).

Values: weights are uniform in [-a, a] with a = std*sqrt(3) (std 0.02 by default; --dist normal
for a Gaussian, about 4x slower), generated as float32 and truncated to bf16; norm weights are
1.0. Each tensor has its own random stream derived from (--seed, tensor index), so the output
does not depend on the chunk size. A writer thread overlaps generation with disk writes.

--fp8 (deepseek_v3, glm4_moe): block-scaled FP8 as DeepSeek-V3 and GLM-4.5-FP8 ship it (tools/fp8.py):
every attention and MLP / expert projection is F8_E4M3 with an F32 `weight_scale_inv` per 128 x 128
tile, and config.json has the quantization_config; embeddings, lm_head, norms, routers and the
correction bias stay --dtype. The FP8 values are random e4m3 codes (NaN codes excluded) and each
tile's scale is random in [0.5, 1] x std sqrt(3) / 448 (so |w| <= std sqrt(3), as the uniform
weights): generated as bytes, streamed like the rest, not quantized from floats.

Example:
    .venv/bin/python tools/make_random_checkpoint.py --out /data/olmoe-random
    .venv/bin/python tools/make_random_checkpoint.py --out /tmp/tiny --layers 2 --experts 4 \\
        --hidden 64 --intermediate 32 --vocab 128 --heads 4
"""

import argparse
import json
import math
import os
import queue
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp8  # noqa: E402  (tools/fp8.py: the format's constants and which linears are FP8)

DTYPES = {
    # name: (safetensors dtype, bytes per element)
    "bf16": ("BF16", 2),
    "f16": ("F16", 2),
    "f32": ("F32", 4),
}
TORCH_DTYPE_NAMES = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}
CHUNK = 1 << 22  # elements per generated chunk


PRESETS = {
    "gpt-oss-20b": dict(family="gpt_oss", hidden=2880, layers=24, heads=64, kv_heads=8, head_dim=64,
                        experts=32, intermediate=2880, top_k=4, vocab=201088, max_position_embeddings=131072,
                        rope_theta=150000.0),
    "glm-4.5-air": dict(family="glm4_moe", hidden=4096, layers=46, heads=96, kv_heads=8, head_dim=128,
                        experts=128, intermediate=1408, top_k=8, vocab=151552, dense_intermediate=10944,
                        shared_intermediate=1408, max_position_embeddings=131072, rope_theta=1000000.0),
    "qwen1.5-moe-a2.7b": dict(family="qwen2_moe", hidden=2048, layers=24, heads=16, kv_heads=16, head_dim=128,
                              experts=60, intermediate=1408, top_k=4, vocab=151936, shared_intermediate=5632,
                              max_position_embeddings=8192, rope_theta=1000000.0),
    "deepseek-v3": dict(family="deepseek_v3", hidden=7168, layers=61, heads=128, kv_heads=128, experts=256,
                        intermediate=2048, top_k=8, vocab=129280, dense_intermediate=18432, shared_intermediate=2048,
                        first_k_dense=3, max_position_embeddings=163840, rope_theta=10000.0, n_group=8, topk_group=4,
                        routed_scaling=2.5, yarn_factor=40.0, yarn_beta_fast=32.0),
    "kimi-k2": dict(family="deepseek_v3", hidden=7168, layers=61, heads=64, kv_heads=64, experts=384,
                    intermediate=2048, top_k=8, vocab=163840, dense_intermediate=18432, shared_intermediate=2048,
                    first_k_dense=1, max_position_embeddings=131072, rope_theta=50000.0, n_group=1, topk_group=1,
                    routed_scaling=2.827, yarn_factor=32.0, yarn_beta_fast=1.0),
}


def attention_tensors(p, a):
    H, hd = a.hidden, a.head_dim
    q, kv = a.heads * hd, a.kv_heads * hd
    t = [(p + "self_attn.q_proj.weight", [q, H], "w"), (p + "self_attn.k_proj.weight", [kv, H], "w"),
         (p + "self_attn.v_proj.weight", [kv, H], "w"), (p + "self_attn.o_proj.weight", [H, q], "w")]
    if a.family in ("qwen2_moe", "glm4_moe", "gpt_oss"):  # q/k/v biases (GLM-4.5's attention_bias: true)
        t += [(p + "self_attn.q_proj.bias", [q], "w"), (p + "self_attn.k_proj.bias", [kv], "w"),
              (p + "self_attn.v_proj.bias", [kv], "w")]
    if a.family == "gpt_oss":
        t += [(p + "self_attn.o_proj.bias", [H], "w"), (p + "self_attn.sinks", [a.heads], "w")]
    return t


def mlp_tensors(q, inter, H):
    return [(q + "gate_proj.weight", [inter, H], "w"), (q + "up_proj.weight", [inter, H], "w"),
            (q + "down_proj.weight", [H, inter], "w")]


def mla_tensors(p, a):
    """DeepSeek-V3's multi-head latent attention (DeepseekV3Attention, q_lora_rank set)."""
    H, nh, R = a.hidden, a.heads, a.kv_lora_rank
    return [(p + "self_attn.q_a_proj.weight", [a.q_lora_rank, H], "w"),
            (p + "self_attn.q_a_layernorm.weight", [a.q_lora_rank], "norm"),
            (p + "self_attn.q_b_proj.weight", [nh * (a.qk_nope + a.qk_rope), a.q_lora_rank], "w"),
            (p + "self_attn.kv_a_proj_with_mqa.weight", [R + a.qk_rope, H], "w"),
            (p + "self_attn.kv_a_layernorm.weight", [R], "norm"),
            (p + "self_attn.kv_b_proj.weight", [nh * (a.qk_nope + a.v_head_dim), R], "w"),
            (p + "self_attn.o_proj.weight", [H, nh * a.v_head_dim], "w")]


def family_layer_tensors(i, a):
    """The newer families' decoder layer i (published tensor names)."""
    H, I, E = a.hidden, a.intermediate, a.experts
    p = f"model.layers.{i}."
    t = [(p + "input_layernorm.weight", [H], "norm"), (p + "post_attention_layernorm.weight", [H], "norm")]
    t += mla_tensors(p, a) if a.family == "deepseek_v3" else attention_tensors(p, a)
    if a.family == "gpt_oss" and a.mxfp4:  # output-major blocks of 32 along the input
        return t + [(p + "mlp.router.weight", [E, H], "w"), (p + "mlp.router.bias", [E], "w"),
                    (p + "mlp.experts.gate_up_proj_blocks", [E, 2 * I, H // 32, 16], "u8"),
                    (p + "mlp.experts.gate_up_proj_scales", [E, 2 * I, H // 32], "e8m0"),
                    (p + "mlp.experts.gate_up_proj_bias", [E, 2 * I], "w"),
                    (p + "mlp.experts.down_proj_blocks", [E, H, I // 32, 16], "u8"),
                    (p + "mlp.experts.down_proj_scales", [E, H, I // 32], "e8m0"),
                    (p + "mlp.experts.down_proj_bias", [E, H], "w")]
    if a.family == "gpt_oss":
        return t + [(p + "mlp.router.weight", [E, H], "w"), (p + "mlp.router.bias", [E], "w"),
                    (p + "mlp.experts.gate_up_proj", [E, H, 2 * I], "w"),
                    (p + "mlp.experts.gate_up_proj_bias", [E, 2 * I], "w"),
                    (p + "mlp.experts.down_proj", [E, I, H], "w"), (p + "mlp.experts.down_proj_bias", [E, H], "w")]
    if a.family in ("glm4_moe", "deepseek_v3") and i < a.first_k_dense:
        return t + mlp_tensors(p + "mlp.", a.dense_intermediate, H)
    t.append((p + "mlp.gate.weight", [E, H], "w"))
    if a.family in ("glm4_moe", "deepseek_v3"):
        t.append((p + "mlp.gate.e_score_correction_bias", [E], "w"))
    for e in range(E):
        t += mlp_tensors(f"{p}mlp.experts.{e}.", I, H)
    shared = "mlp.shared_expert." if a.family == "qwen2_moe" else "mlp.shared_experts."
    t += mlp_tensors(p + shared, a.shared_intermediate, H)
    if a.family == "qwen2_moe":
        t.append((p + "mlp.shared_expert_gate.weight", [1, H], "w"))
    return t


def layer_tensors(i, a):
    """(name, shape, kind) for decoder layer i; kind is "w" (random) or "norm" (ones)."""
    if a.family != "olmoe":
        return family_layer_tensors(i, a)
    H, I, E = a.hidden, a.intermediate, a.experts
    hd = H // a.heads
    kv = a.kv_heads * hd
    p = f"model.layers.{i}."
    t = [
        (p + "input_layernorm.weight", [H], "norm"),
        (p + "self_attn.q_proj.weight", [a.heads * hd, H], "w"),
        (p + "self_attn.k_proj.weight", [kv, H], "w"),
        (p + "self_attn.v_proj.weight", [kv, H], "w"),
        (p + "self_attn.o_proj.weight", [H, a.heads * hd], "w"),
        # OLMoE normalises the whole projection: q_norm has hidden_size entries,
        # k_norm (hidden/heads)*kv_heads (modeling_olmoe.py OlmoeAttention.__init__)
        (p + "self_attn.q_norm.weight", [H], "norm"),
        (p + "self_attn.k_norm.weight", [kv], "norm"),
        (p + "post_attention_layernorm.weight", [H], "norm"),
        (p + "mlp.gate.weight", [E, H], "w"),
    ]
    for e in range(E):
        q = f"{p}mlp.experts.{e}."
        t += [
            (q + "gate_proj.weight", [I, H], "w"),
            (q + "up_proj.weight", [I, H], "w"),
            (q + "down_proj.weight", [H, I], "w"),
        ]
    return t


def plan(a):
    n_files = a.layers + 1
    name = lambda k: f"model-{k:05d}-of-{n_files:05d}.safetensors"
    files = [(name(1), [
        ("model.embed_tokens.weight", [a.vocab, a.hidden], "w"),
        ("model.norm.weight", [a.hidden], "norm"),
        ("lm_head.weight", [a.vocab, a.hidden], "w"),
    ])]
    for i in range(a.layers):
        files.append((name(i + 2), layer_tensors(i, a)))
    return files


def fp8_plan(files, a):
    """--fp8: each quantized linear becomes kind "fp8" with its "scale" tensor beside it; within a file
    the tensors go by element size, largest first (F32 scales, then --dtype, then FP8), so every
    tensor's data is aligned to its element size."""
    out = []
    for fname, tensors in files:
        t = []
        for name, shape, kind in tensors:
            if kind == "w" and fp8.is_quantized_linear(name, len(shape)):
                t.append((name, shape, "fp8"))
                t.append((name + "_scale_inv", [-(-shape[0] // fp8.BLOCK), -(-shape[1] // fp8.BLOCK)], "scale"))
            else:
                t.append((name, shape, kind))
        t.sort(key=lambda x: -tensor_dtype(x[2], a)[1])
        out.append((fname, t))
    return out


def tensor_dtype(kind, a):
    """(safetensors dtype, bytes per element) of a tensor of this kind."""
    special = {"fp8": ("F8_E4M3", 1), "scale": ("F32", 4), "u8": ("U8", 1), "e8m0": ("U8", 1)}
    return special.get(kind, DTYPES[a.dtype])


def family_config_json(a):
    if a.family == "deepseek_v3":
        return deepseek_config_json(a)
    c = {
        "architectures": [{"qwen2_moe": "Qwen2MoeForCausalLM", "glm4_moe": "Glm4MoeForCausalLM",
                           "gpt_oss": "GptOssForCausalLM"}[a.family]],
        "model_type": a.family, "hidden_size": a.hidden, "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim,
        "num_experts_per_tok": a.top_k, "vocab_size": a.vocab, "max_position_embeddings": a.max_position_embeddings,
        "rms_norm_eps": 1e-5 if a.family != "qwen2_moe" else 1e-6, "rope_theta": a.rope_theta,
        "tie_word_embeddings": False, "torch_dtype": TORCH_DTYPE_NAMES[a.dtype], "hidden_act": "silu",
        "bos_token_id": None, "eos_token_id": a.vocab - 1,
    }
    if a.family == "gpt_oss":
        c.update(num_local_experts=a.experts, intermediate_size=a.intermediate, attention_bias=True,
                 sliding_window=128, swiglu_limit=7.0, layer_types=[
                     "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(a.layers)],
                 rope_scaling={"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                               "truncate": False, "original_max_position_embeddings": 4096})
        if a.mxfp4:
            c["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
                "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    elif a.family == "glm4_moe":
        c.update(n_routed_experts=a.experts, moe_intermediate_size=a.intermediate,
                 intermediate_size=a.dense_intermediate, n_shared_experts=a.shared_intermediate // a.intermediate,
                 first_k_dense_replace=a.first_k_dense, n_group=1, topk_group=1, routed_scaling_factor=1.0,
                 norm_topk_prob=True, use_qk_norm=False, attention_bias=True, partial_rotary_factor=0.5,
                 rope_scaling=None)
    else:
        c.update(num_experts=a.experts, moe_intermediate_size=a.intermediate,
                 shared_expert_intermediate_size=a.shared_intermediate, norm_topk_prob=False, qkv_bias=True,
                 decoder_sparse_step=1, mlp_only_layers=[], use_sliding_window=False, rope_scaling=None)
    return c


def deepseek_config_json(a):
    """As the published DeepSeek-V3 / Kimi K2 config.json (legacy "rope_scaling" with "type")."""
    return {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": a.hidden,
        "num_hidden_layers": a.layers, "num_attention_heads": a.heads, "num_key_value_heads": a.heads,
        "q_lora_rank": a.q_lora_rank, "kv_lora_rank": a.kv_lora_rank, "qk_nope_head_dim": a.qk_nope,
        "qk_rope_head_dim": a.qk_rope, "v_head_dim": a.v_head_dim, "n_routed_experts": a.experts,
        "num_experts_per_tok": a.top_k, "moe_intermediate_size": a.intermediate,
        "intermediate_size": a.dense_intermediate, "n_shared_experts": a.shared_intermediate // a.intermediate,
        "first_k_dense_replace": a.first_k_dense, "n_group": a.n_group, "topk_group": a.topk_group,
        "routed_scaling_factor": a.routed_scaling, "norm_topk_prob": True, "scoring_func": "sigmoid",
        "topk_method": "noaux_tc", "vocab_size": a.vocab, "max_position_embeddings": a.max_position_embeddings,
        "rms_norm_eps": 1e-6, "rope_theta": a.rope_theta, "attention_bias": False, "tie_word_embeddings": False,
        "rope_scaling": {"type": "yarn", "factor": a.yarn_factor, "beta_fast": a.yarn_beta_fast, "beta_slow": 1.0,
                         "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096},
        "torch_dtype": TORCH_DTYPE_NAMES[a.dtype], "hidden_act": "silu", "bos_token_id": 0, "eos_token_id": 1,
    }


def config_json(a):
    if a.family != "olmoe":
        c = family_config_json(a)
        if a.fp8:
            c["quantization_config"] = dict(fp8.QUANT_CONFIG)
        return c
    return {
        "architectures": ["OlmoeForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": None,
        "clip_qkv": None,
        "eos_token_id": 50279 if a.vocab > 50279 else a.vocab - 1,
        "hidden_act": "silu",
        "hidden_size": a.hidden,
        "initializer_range": 0.02,
        "intermediate_size": a.intermediate,
        "max_position_embeddings": a.max_position_embeddings,
        "model_type": "olmoe",
        "norm_topk_prob": False,
        "num_attention_heads": a.heads,
        "num_experts": a.experts,
        "num_experts_per_tok": a.top_k,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads,
        "output_router_logits": False,
        "pad_token_id": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": a.rope_theta,
        "router_aux_loss_coef": 0.01,
        "tie_word_embeddings": False,
        "torch_dtype": TORCH_DTYPE_NAMES[a.dtype],
        "use_cache": True,
        "vocab_size": a.vocab,
    }


class Writer:
    """Background thread that writes byte buffers to the current file, in order."""

    def __init__(self):
        self.q = queue.Queue(maxsize=4)
        self.err = None
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        f = None
        while True:
            item = self.q.get()
            try:
                if item is None:
                    if f:
                        f.close()
                    return
                kind, val = item
                if kind == "open":
                    if f:
                        f.close()
                    f = open(val, "wb")
                elif kind == "close":
                    f.close()
                    f = None
                else:
                    f.write(val)
            except BaseException as e:  # report in the main thread
                self.err = e

    def put(self, kind, val=None):
        if self.err:
            raise self.err
        self.q.put((kind, val))

    def finish(self):
        self.q.put(None)
        self.th.join()
        if self.err:
            raise self.err


def gen_chunks(n, kind, rng, a):
    """Yield bytes-like chunks with n elements of the output dtype."""
    if kind in ("fp8", "scale"):
        yield from gen_fp8_chunks(n, kind, rng, a)
        return
    if kind in ("u8", "e8m0"):  # MXFP4: random e2m1 code pairs, or exponents 2^-8..2^-6
        lo, hi = (0, 256) if kind == "u8" else (119, 122)
        done = 0
        while done < n:
            m = min(CHUNK, n - done)
            yield rng.integers(lo, hi, m, dtype=np.uint8)
            done += m
        return
    if kind == "norm":
        one = {"bf16": np.uint16(0x3F80), "f16": np.float16(1.0), "f32": np.float32(1.0)}[a.dtype]
        done = 0
        while done < n:
            m = min(CHUNK, n - done)
            yield np.full(m, one)
            done += m
        return
    scale = np.float32(a.std * math.sqrt(3.0) * 2.0)
    buf = np.empty(CHUNK, np.float32)
    done = 0
    while done < n:
        m = min(CHUNK, n - done)
        b = buf[:m]
        if a.dist == "uniform":
            rng.random(out=b, dtype=np.float32)
            b -= np.float32(0.5)
            b *= scale
        else:
            rng.standard_normal(out=b, dtype=np.float32)
            b *= np.float32(a.std)
        if a.dtype == "bf16":
            out = np.empty(m, np.uint16)  # truncation: the high half of each little-endian float32
            np.copyto(out, b.view(np.uint16)[1::2])
        elif a.dtype == "f16":
            out = b.astype("<f2")
        else:
            out = b.astype("<f4")  # copy: buf is reused
        yield out
        done += m


def gen_fp8_chunks(n, kind, rng, a):
    """--fp8: random e4m3 codes (the NaN codes S.1111.111 moved to 448), or tile scales."""
    done = 0
    while done < n:
        m = min(CHUNK, n - done)
        if kind == "fp8":
            b = rng.integers(0, 256, m, dtype=np.uint8)
            b[(b & 0x7F) == 0x7F] -= 1
            yield b
        else:
            yield ((np.float32(0.5) + np.float32(0.5) * rng.random(m, dtype=np.float32))
                   * np.float32(a.std * math.sqrt(3.0) / fp8.E4M3_MAX)).astype("<f4")
        done += m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--experts", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--intermediate", type=int, default=1024, help="per-expert intermediate size")
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=None, help="default: --heads")
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--max-position-embeddings", type=int, default=4096)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--std", type=float, default=0.02)
    ap.add_argument("--dist", choices=["uniform", "normal"], default="uniform")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="overwrite existing safetensors files in --out")
    ap.add_argument("--family", choices=["olmoe", "qwen2_moe", "glm4_moe", "gpt_oss", "deepseek_v3"], default="olmoe")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="a published shape (flags given explicitly win)")
    ap.add_argument("--head-dim", type=int, default=None, help="default: hidden / heads (OLMoE: always)")
    ap.add_argument("--shared-intermediate", type=int, default=None, help="qwen2_moe / glm4_moe / deepseek_v3 shared expert width "
                    "(glm4_moe / deepseek_v3: a multiple of --intermediate, n_shared_experts of it)")
    ap.add_argument("--dense-intermediate", type=int, default=None, help="glm4_moe / deepseek_v3 dense first layers' width")
    ap.add_argument("--first-k-dense", type=int, default=1, help="glm4_moe / deepseek_v3: dense first layers")
    ap.add_argument("--q-lora-rank", type=int, default=1536, help="deepseek_v3")
    ap.add_argument("--kv-lora-rank", type=int, default=512, help="deepseek_v3")
    ap.add_argument("--qk-nope", type=int, default=128, help="deepseek_v3: qk_nope_head_dim")
    ap.add_argument("--qk-rope", type=int, default=64, help="deepseek_v3: qk_rope_head_dim")
    ap.add_argument("--v-head-dim", type=int, default=128, help="deepseek_v3")
    ap.add_argument("--n-group", type=int, default=1, help="deepseek_v3: expert groups")
    ap.add_argument("--topk-group", type=int, default=1, help="deepseek_v3: groups a token may use")
    ap.add_argument("--routed-scaling", type=float, default=1.0, help="deepseek_v3: routed_scaling_factor")
    ap.add_argument("--yarn-factor", type=float, default=40.0, help="deepseek_v3: YaRN factor")
    ap.add_argument("--yarn-beta-fast", type=float, default=32.0, help="deepseek_v3: YaRN beta_fast")
    ap.add_argument("--fp8", action="store_true", help="deepseek_v3 / glm4_moe: block-scaled FP8 linears (see above)")
    ap.add_argument("--mxfp4", action="store_true", help="gpt_oss: the experts in MXFP4 (*_blocks + *_scales)")
    argv = sys.argv[1:]
    pre = ap.parse_known_args(argv)[0].preset
    if pre:  # the preset's values become the defaults; explicit flags override them
        ap.set_defaults(**PRESETS[pre])
    a = ap.parse_args(argv)
    if a.kv_heads is None:
        a.kv_heads = a.heads
    if a.head_dim is None:
        a.head_dim = a.hidden // a.heads
    if a.shared_intermediate is None:
        a.shared_intermediate = 4 * a.intermediate
    if a.dense_intermediate is None:
        a.dense_intermediate = 8 * a.intermediate
    if a.family == "olmoe" and a.head_dim * a.heads != a.hidden:
        ap.error("olmoe: head_dim is hidden / heads")
    if (a.family == "olmoe" and a.hidden % a.heads) or a.heads % a.kv_heads or a.head_dim % 2:
        ap.error("hidden must be a multiple of heads, heads of kv-heads, and head_dim even")
    if a.top_k > a.experts:
        ap.error("--top-k > --experts")
    if a.family == "deepseek_v3" and (a.experts % a.n_group or a.experts // a.n_group < 2 or a.topk_group > a.n_group
                                      or a.top_k > a.topk_group * (a.experts // a.n_group)):
        ap.error("deepseek_v3: --n-group must split --experts into groups of >= 2, --topk-group <= --n-group, "
                 "and the kept groups must hold --top-k experts")
    if a.mxfp4 and (a.family != "gpt_oss" or a.hidden % 32 or a.intermediate % 32):
        ap.error("--mxfp4: gpt_oss only, with --hidden and --intermediate multiples of 32")
    if a.family == "deepseek_v3" and a.qk_rope % 2:
        ap.error("deepseek_v3: --qk-rope must be even (RoPE pairs)")
    if a.family in ("glm4_moe", "deepseek_v3") and (a.shared_intermediate % a.intermediate
                                                    or a.shared_intermediate < a.intermediate):
        ap.error(f"{a.family}: --shared-intermediate must be a positive multiple of --intermediate "
                 "(config.json says n_shared_experts = shared / intermediate)")

    if a.fp8 and a.family not in ("deepseek_v3", "glm4_moe"):
        ap.error("--fp8: deepseek_v3 and glm4_moe only (the families published in block-scaled FP8)")
    files = fp8_plan(plan(a), a) if a.fp8 else plan(a)
    nbytes = lambda shape, kind: math.prod(shape) * tensor_dtype(kind, a)[1]
    os.makedirs(a.out, exist_ok=True)
    existing = [f for f in os.listdir(a.out) if f.endswith(".safetensors")]
    if existing and not a.force:
        sys.exit(f"{a.out} already has safetensors files; use --force")
    for f in existing:
        os.remove(os.path.join(a.out, f))

    total_bytes = sum(nbytes(s, k) for _, ts in files for _, s, k in ts)
    n_params = sum(math.prod(s) * (2 if k == "u8" else k not in ("e8m0", "scale")) for _, ts in files for _, s, k in ts)
    print(f"{n_params / 1e9:.3f} B parameters, {total_bytes / 1e9:.2f} GB in {len(files)} files -> {a.out}",
          flush=True)

    weight_map = {}
    writer = Writer()
    t0 = time.time()
    written = 0
    tensor_idx = 0
    for fname, tensors in files:
        header = {"__metadata__": {"format": "pt"}}
        off = 0
        for name, shape, kind in tensors:
            nb = nbytes(shape, kind)
            header[name] = {"dtype": tensor_dtype(kind, a)[0], "shape": shape, "data_offsets": [off, off + nb]}
            off += nb
            weight_map[name] = fname
        hb = json.dumps(header, separators=(",", ":")).encode()
        hb += b" " * (-len(hb) % 8)
        writer.put("open", os.path.join(a.out, fname))
        writer.put("data", len(hb).to_bytes(8, "little") + hb)
        for name, shape, kind in tensors:
            rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence([a.seed, tensor_idx])))
            tensor_idx += 1
            for chunk in gen_chunks(math.prod(shape), kind, rng, a):
                writer.put("data", chunk)
        writer.put("close")
        written += off
        el = time.time() - t0
        print(f"  {fname}: {len(tensors)} tensors, {off / 1e6:.1f} MB  "
              f"[{written / 1e9:.2f}/{total_bytes / 1e9:.2f} GB, {written / 1e6 / max(el, 1e-9):.0f} MB/s]",
              flush=True)
    writer.finish()

    index = {"metadata": {"total_size": total_bytes}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config_json(a), f, indent=2, sort_keys=True)
        f.write("\n")

    # sanity: file sizes match the headers
    for fname, _ in files:
        path = os.path.join(a.out, fname)
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            hdr = json.loads(f.read(n))
        end = max(v["data_offsets"][1] for k, v in hdr.items() if k != "__metadata__")
        if os.path.getsize(path) != 8 + n + end:
            sys.exit(f"{fname}: size mismatch")
    el = time.time() - t0
    print(f"done: {total_bytes / 1e9:.2f} GB in {el:.1f} s ({total_bytes / 1e6 / el:.0f} MB/s)")


if __name__ == "__main__":
    main()
