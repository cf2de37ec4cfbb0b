#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets, tests/fuzz/corpus/<name>/ (standard library
only; deterministic). The seeds are small valid inputs derived from the fixtures, plus a few
near misses, so the fuzzers start from inputs that reach deep into each parser.

Usage: tools/make_fuzz_corpus.py     (from anywhere; rewrites the corpora)
"""
import json
import os
import struct

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, meta=None, pad=0):
    """tensors: [(name, dtype, shape, bytes)] -> a safetensors file."""
    hdr, off, blob = {}, 0, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dt, shape, data in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
        blob += data
    h = json.dumps(hdr).encode() + b" " * pad
    return struct.pack("<Q", len(h)) + h + blob


def seeds_safetensors():
    f32 = struct.pack("<4f", 1, 2, 3, 4)
    put("safetensors", "two", safetensors([("a.weight", "F32", [2, 2], f32), ("b", "BF16", [3], b"\x80\x3f" * 3)],
                                          {"format": "pt"}))
    put("safetensors", "dtypes", safetensors([("x", "F16", [1, 2, 1], b"\x00\x3c" * 2), ("i", "I64", [1], b"\x07" + b"\0" * 7),
                                              ("e", "F32", [0, 3], b""), ("s", "U8", [], b"\x01"),
                                              ("f8", "F8_E4M3", [2], b"\x01\x02")], pad=7))
    put("safetensors", "empty", safetensors([]))
    # the real fixture's header with its data cut short: every tensor but the first is out of bounds
    with open(os.path.join(ROOT, "tests/fixtures/olmoe/model/model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    small = {k: v for k, v in sorted(hdr.items())[:6]}
    h = json.dumps(small).encode()
    put("safetensors", "fixture_cut", struct.pack("<Q", len(h)) + h + b"\0" * 256)


def seeds_config():
    for fam in ("olmoe", "mixtral", "qwen3_moe", "qwen2_moe", "glm4_moe", "glm4_moe_b", "gpt_oss", "gpt_oss_b",
                "deepseek_v3", "deepseek_v3_b"):
        with open(os.path.join(ROOT, "tests/fixtures", fam, "model", "config.json")) as f:
            put("config", fam, f.read())
    with open(os.path.join(ROOT, "models/olmoe-tiny/config.json")) as f:
        put("config", "olmoe_tiny", f.read())


def shrink_tokenizer(path, keep_ids):
    """A tokenizer.json with the vocabulary cut to ids < keep_ids and the merges it allows."""
    with open(path) as f:
        t = json.load(f)
    m = t["model"]
    vocab = {k: v for k, v in m["vocab"].items() if v < keep_ids}
    merges = []
    for mg in m["merges"]:
        a, b = mg if isinstance(mg, list) else mg.split(" ", 1)
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(mg)
    m["vocab"], m["merges"] = vocab, merges
    t["added_tokens"] = [a for a in t["added_tokens"] if a["id"] < keep_ids + 64][:4]
    return json.dumps(t, ensure_ascii=False, indent=None)


def seeds_tokenizer_load():
    for style in ("gpt2style", "neoxstyle", "qwenstyle"):
        put("tokenizer_load", style,
            shrink_tokenizer(os.path.join(ROOT, "tests/data/tokenizer", style, "tokenizer.json"), 300))
    put("tokenizer_load", "bundled",
        shrink_tokenizer(os.path.join(ROOT, "models/olmoe-tiny/tokenizer.json"), 290))


def seeds_tokenizer_text():
    with open(os.path.join(ROOT, "tests/data/tokenizer/text.txt"), "rb") as f:
        text = f.read()
    for i in range(4):
        chunk = text[i * 600:(i + 1) * 600]
        put("tokenizer_text", "encode_bundled_%d" % i, b"\x00" + chunk)
        put("tokenizer_text", "encode_qwen_%d" % i, b"\x01" + chunk)
    put("tokenizer_text", "encode_special", b"\x00a <|endoftext|>b\xc3\xa9  \n\n\t 123")
    put("tokenizer_text", "encode_bad_utf8", b"\x01ab\xff\xc3(\xe2\x82")
    ids = struct.pack("<8i", 0, 1, 255, 256, 300, 4095, 17, 42)
    put("tokenizer_text", "decode_bundled", b"\x02" + ids)
    put("tokenizer_text", "decode_qwen", b"\x03" + ids + struct.pack("<2i", -1, 1 << 30))


# ---- protobuf (comm/control.proto), hand-encoded ----
def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def fv(field, n):
    return varint(field << 3) + varint(n)


def fb(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def packed(field, vals, fmt=None):
    body = b"".join(struct.pack(fmt, v) for v in vals) if fmt else b"".join(varint(v) for v in vals)
    return fb(field, body)


def seeds_control():
    head = fv(1, 1) + fb(2, "0.1.0")
    roster = fv(1, 4) + packed(2, [0.0] + [0.3] * 6 + [0.0], "<f") + fv(3, 1) + fv(5, 1)
    bind = fv(1, 0) + fv(2, 1) + fv(3, 1234) + fb(4, roster) + fv(5, 1)
    step = (fv(1, 7) + fb(2, bind) + packed(3, [0, 0, 0]) + packed(4, [0, 1, 1]) + packed(5, [5, 6, 6]) +
            packed(6, [0, 0, 1]) + packed(7, [0, 1, 1]) + packed(8, [1]) + packed(9, [2]) + packed(10, [3]))
    put("control", "step", b"\x00" + head + fb(4, step))
    opn = (fb(1, "/models/olmoe-tiny") + fv(2, 4) + fv(3, 256) + fv(4, 64) + fv(5, 1) + fv(6, 2) + fv(8, 2) +
           fv(9, 4) + packed(10, [0, 0, 1, 1, 0, 1, 0, 1], None) + fb(11, "contiguous") + fv(14, 1))
    put("control", "open", b"\x00" + head + fb(3, opn))
    put("control", "exit", b"\x00" + head + fb(5, fv(1, 0)))
    put("control", "old_version", b"\x00" + fv(1, 0) + fb(2, "0.0.9") + fb(5, b""))
    reply = head + fv(3, 1) + fv(4, 7) + packed(7, [0.5, -1.0, 2.0], "<f") + fv(8, 3) + fv(9, 3) + fb(11, "cpu-avx2")
    put("control", "reply", b"\x01" + reply)
    put("control", "reply_failed", b"\x01" + head + fv(3, 1) + fv(5, 5) + fb(6, "out of memory"))


def seeds_openai():
    bodies = {
        "completion": {"model": "olmoe-tiny", "prompt": "Q: 4821 + 379 = ? A:", "max_tokens": 16},
        "completion_ids": {"model": "olmoe-tiny", "prompt": [1, 2, 3, 4], "max_tokens": 4, "return_token_ids": True,
                           "temperature": 0.7, "top_p": 0.9, "top_k": 20, "seed": 3, "ignore_eos": True},
        "completion_roe": {"model": "olmoe-tiny", "prompt": ["hi"], "roe_k": 4, "roe_tau": 0.5, "roe_keep_clean": 1,
                           "roe_gate": "noisy", "roe_adaptive": 0.5, "stream": True,
                           "stream_options": {"include_usage": True}},
        "completion_profile": {"model": "olmoe-tiny", "prompt": "x", "roe_profile": "four", "n": 1},
        "completion_refused": {"model": "olmoe-tiny", "prompt": "x", "stop": ["\n"], "logprobs": 2},
    }
    for name, b in bodies.items():
        put("openai", name, b"\x00" + json.dumps(b).encode())
        put("openai", name + "_qwen", b"\x02" + json.dumps(b).encode())
    chats = {
        "chat": {"model": "olmoe-tiny", "messages": [{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "Q: 7 + 8 = ? A:"}]},
        "chat_stream": {"model": "olmoe-tiny", "stream": True, "max_completion_tokens": 8, "roe_k": 2,
                        "messages": [{"role": "user", "content": [{"type": "text", "text": "caf\u00e9"}]}]},
    }
    for name, b in chats.items():
        put("openai", name, b"\x01" + json.dumps(b).encode())
        put("openai", name + "_chatml", b"\x03" + json.dumps(b, ensure_ascii=False).encode())
    put("openai", "truncated", b"\x00" + b'{"model": "olmoe-tiny", "prompt": "abc", "max_to')


if __name__ == "__main__":
    seeds_safetensors()
    seeds_config()
    seeds_tokenizer_load()
    seeds_tokenizer_text()
    seeds_control()
    seeds_openai()
