#!/usr/bin/env python3
"""Convert a Hugging Face checkpoint to GGUF with llama.cpp's own converter, for bench/peer_llamacpp.sh.

    .venv/bin/python tools/peer_gguf.py --llama-src LLAMA_SRC --model DIR --out FILE.gguf [--outtype bf16]
    .venv/bin/python tools/peer_gguf.py --llama-src LLAMA_SRC --step-bytes FILE.gguf [--top-k 8 --experts 64]

LLAMA_SRC is a llama.cpp source tree (e.g. the vendor/llama.cpp of the llama-cpp-python sdist): its
convert_hf_to_gguf.py and gguf-py are used from there, nothing is installed.

Two things the random checkpoints of tools/make_random_checkpoint.py lack, supplied here:
  * a tokenizer: when DIR has no tokenizer.json, a synthetic byte-level BPE one is written into DIR
    (the 256 byte symbols, then merged pairs of them up to the config's vocab_size), with a
    tokenizer_config.json; roe reads the same file, so both tokenize a prompt alike;
  * a known pre-tokenizer hash: llama.cpp's converter refuses a BPE tokenizer whose pre-tokenizer
    it does not recognise; for an unknown one this wrapper answers "gpt-2" (GPT-2's regex, which
    is what a byte-level BPE with default settings does).
Needs torch, transformers, tokenizers, numpy (the project's venv) and sentencepiece-free paths only.
"""

import argparse
import json
import os
import sys


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def write_tokenizer(model_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    with open(os.path.join(model_dir, "config.json")) as f:
        vocab_size = json.load(f)["vocab_size"]
    base = bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(base)}
    merges = []
    for a in base:
        for b in base:
            if len(vocab) >= vocab_size:
                break
            if a + b not in vocab:
                vocab[a + b] = len(vocab)
                merges.append((a, b))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 4096}, f)
    print(f"peer_gguf: wrote a synthetic byte-level BPE tokenizer of {len(vocab)} tokens to {model_dir}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-src", required=True)
    ap.add_argument("--model", help="checkpoint directory to convert")
    ap.add_argument("--out", help="GGUF file to write")
    ap.add_argument("--outtype", default="bf16")
    ap.add_argument("--step-bytes", metavar="GGUF",
                    help="instead: print the bytes a batch-1 decode step reads from this GGUF (every tensor but "
                         "the token embedding, the expert tensors (*_exps) times top-k / experts)")
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--experts", type=int, default=64)
    a = ap.parse_args()
    if a.step_bytes:
        sys.path.insert(0, os.path.join(a.llama_src, "gguf-py"))
        from gguf import GGUFReader

        total = 0.0
        for t in GGUFReader(a.step_bytes).tensors:
            if t.name.startswith("token_embd"):
                continue
            total += int(t.n_bytes) * (a.top_k / a.experts if "_exps" in t.name else 1.0)
        print(int(total))
        return
    if not a.model or not a.out:
        ap.error("--model and --out are needed to convert")
    if not os.path.exists(os.path.join(a.model, "tokenizer.json")):
        write_tokenizer(a.model)
    sys.path.insert(0, os.path.join(a.llama_src, "gguf-py"))
    sys.path.insert(0, a.llama_src)
    from conversion.base import TextModel

    known = TextModel.get_vocab_base_pre

    def vocab_base_pre(self, tokenizer):
        try:
            return known(self, tokenizer)
        except NotImplementedError:
            return "gpt-2"

    TextModel.get_vocab_base_pre = vocab_base_pre
    import convert_hf_to_gguf

    sys.argv = ["convert_hf_to_gguf.py", a.model, "--outfile", a.out, "--outtype", a.outtype]
    convert_hf_to_gguf.main()


if __name__ == "__main__":
    main()
