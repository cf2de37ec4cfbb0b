#!/usr/bin/env python3
"""Write a random OLMoE checkpoint (default: the OLMoE-1B-7B shape, ~14 GB of bf16) for benchmarks.

The checkpoint has the tensor names and config.json of the published OLMoE checkpoints
(per-expert tensors `model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj.weight`, legacy
top-level "rope_theta"), so transformers' OlmoeForCausalLM.from_pretrained loads it.

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

DTYPES = {
    # name: (safetensors dtype, bytes per element)
    "bf16": ("BF16", 2),
    "f16": ("F16", 2),
    "f32": ("F32", 4),
}
TORCH_DTYPE_NAMES = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}
CHUNK = 1 << 22  # elements per generated chunk


def layer_tensors(i, a):
    """(name, shape, kind) for decoder layer i; kind is "w" (random) or "norm" (ones)."""
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


def config_json(a):
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
    a = ap.parse_args()
    if a.kv_heads is None:
        a.kv_heads = a.heads
    if a.hidden % a.heads or a.heads % a.kv_heads or (a.hidden // a.heads) % 2:
        ap.error("hidden must be a multiple of heads, heads of kv-heads, and head_dim even")
    if a.top_k > a.experts:
        ap.error("--top-k > --experts")

    st_dtype, esize = DTYPES[a.dtype]
    files = plan(a)
    os.makedirs(a.out, exist_ok=True)
    existing = [f for f in os.listdir(a.out) if f.endswith(".safetensors")]
    if existing and not a.force:
        sys.exit(f"{a.out} already has safetensors files; use --force")
    for f in existing:
        os.remove(os.path.join(a.out, f))

    total_bytes = sum(math.prod(s) * esize for _, ts in files for _, s, _ in ts)
    n_params = total_bytes // esize
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
        for name, shape, _ in tensors:
            nb = math.prod(shape) * esize
            header[name] = {"dtype": st_dtype, "shape": shape, "data_offsets": [off, off + nb]}
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
