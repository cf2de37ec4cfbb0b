#!/usr/bin/env python3
"""Reference fixtures of the bundled model for the C engine's golden test.

Writes tests/fixtures/olmoe-tiny-ref/reference.json and logits.f32:
for each of 3 fixed prompts (one arithmetic, two text; tokenized with the bundled
tokenizer, add_special_tokens=False, no separator prepended), the fp32 logits of every
prompt position computed by transformers' OlmoeForCausalLM from the bf16 checkpoint
upcast to fp32 (dtype=torch.float32, eager attention, no KV cache), and the 32 greedy
tokens after the prompt (argmax over a full forward per step, no stopping at eos).

logits.f32: raw little-endian float32, the cases concatenated, each [n_prompt, vocab]
row-major; case i starts at float index logits_offset. Extra keys per case:
greedy_margin (top-1 minus top-2 logit at each greedy step; a tiny margin means a
near-tie the C engine may legitimately break the other way).

Usage: python tools/make_bundled_fixtures.py [--model models/olmoe-tiny]
                                             [--out tests/fixtures/olmoe-tiny-ref]
"""
import argparse
import json
import os

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# candidate prompts per case (one arithmetic, two text); for each case the first candidate
# whose 32 greedy steps all have a top-1/top-2 logit margin >= --min-margin is used
# (otherwise the candidate with the largest minimum margin), so that the golden greedy
# tokens are not decided by a near-tie.
CANDIDATES = [
    ["Q: 38 + 47 = ? A: 85\nQ: 702 - 315 = ? A: 387\nQ: 4821 + 379 = ? A:",
     "Q: 56 + 29 = ? A: 85\nQ: 914 - 208 = ? A: 706\nQ: 3187 - 452 = ? A:",
     "Q: 71 - 36 = ? A: 35\nQ: 468 + 257 = ? A: 725\nQ: 6093 + 918 = ? A:",
     "Q: 64 + 18 = ? A: 82\nQ: 530 - 147 = ? A: 383\nQ: 2746 - 689 = ? A:"],
    ["computer, computing machine, computing device (noun): a machine for performing calculations automatically",
     "house (noun): a dwelling that serves as living quarters for one or more families; \"he has a house on Cape Cod\"",
     "river (noun): a large natural stream of water (larger than a creek); \"the river was navigable for 50 miles\"",
     "run (verb): move fast by using one's feet, with one foot off the ground at any given time; \"Don't run--you'll be out of breath\""],
    ["A man said to the Universe: \"Sir, I exist!\" \"However,\" replied the Universe,",
     "The best way to predict the future is to invent it. If you can't explain it simply, you",
     "Love is the triumph of imagination over intelligence. A friend is someone who",
     "There are two kinds of people in the world: those who believe there are two kinds of people and"],
]


def dump_json(obj, ind=""):
    """JSON with one key per line but lists of numbers on a single line."""
    if isinstance(obj, dict):
        inner = ind + "  "
        items = [inner + json.dumps(k) + ": " + dump_json(v, inner) for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + ind + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        inner = ind + "  "
        return "[\n" + ",\n".join(inner + dump_json(v, inner) for v in obj) + "\n" + ind + "]"
    return json.dumps(obj, ensure_ascii=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "olmoe-tiny"))
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "olmoe-tiny-ref"))
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--min-margin", type=float, default=0.05)
    args = ap.parse_args()
    torch.set_num_threads(2)
    import transformers
    from transformers import AutoTokenizer, OlmoeForCausalLM

    tok = AutoTokenizer.from_pretrained(args.model)
    model = OlmoeForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    cases, blobs, offset = [], [], 0
    def run(p):
        ids = tok(p, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()
            seq, greedy, margins = list(ids), [], []
            for _ in range(args.new_tokens):
                last = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].float()
                top2 = torch.topk(last, 2)
                t = int(top2.indices[0])
                greedy.append(t)
                margins.append(round(float(top2.values[0] - top2.values[1]), 6))
                seq.append(t)
        return ids, logits.numpy().astype("<f4"), greedy, margins

    for cands in CANDIDATES:
        best = None
        for p in cands:
            r = run(p)
            print("candidate %r: min greedy margin %.4f" % (p[:40], min(r[3])))
            if best is None or min(r[3]) > min(best[1][3]):
                best = (p, r)
            if min(r[3]) >= args.min_margin:
                break
        p, (ids, arr, greedy, margins) = best
        # cross-check with transformers' generate (KV cache path), no eos stopping
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=args.new_tokens,
                                 min_new_tokens=args.new_tokens, eos_token_id=None, pad_token_id=0)
        gen_ids = gen[0, len(ids):].tolist()
        if gen_ids != greedy:
            print("note: generate() differs from the full-forward greedy loop", gen_ids, greedy)
        cases.append({
            "prompt": p,
            "prompt_ids": ids,
            "logits_offset": offset,
            "logits_shape": list(arr.shape),
            "greedy_ids": greedy,
            "greedy_text": tok.decode(greedy),
            "greedy_margin": margins,
            "max_abs_logit": float(np.abs(arr).max()),
        })
        blobs.append(arr.tobytes())
        offset += arr.size
        print("%d prompt tokens; greedy: %r (min margin %.4f)" % (len(ids), tok.decode(greedy), min(margins)))
    ref = {
        "model_dir": "models/olmoe-tiny",
        "cases": cases,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "logits_file": "logits.f32",
        "logits_dtype": "float32 little-endian",
        "generator": "python tools/make_bundled_fixtures.py",
    }
    with open(os.path.join(args.out, "logits.f32"), "wb") as f:
        for b in blobs:
            f.write(b)
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        f.write(dump_json(ref) + "\n")
    print("wrote %s (%d floats, %.2f MB)" % (args.out, offset, offset * 4 / 1e6))


if __name__ == "__main__":
    main()
