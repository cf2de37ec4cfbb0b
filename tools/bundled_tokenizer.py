#!/usr/bin/env python3
"""Train the byte-level BPE tokenizer of the bundled model on the training split.

GPT-2 style: ByteLevel pre-tokenizer (GPT-2 regex, add_prefix_space=False), ByteLevel
decoder, no normalizer, vocabulary 4096 including the special token <|endoftext|>
(id 0; used as eos / bos / pad and as the document separator). With --pad, a second special
token <|pad|> (id 1) is the pad token instead: a pad id distinct from every token the text
ever produces (issue 19's specialising model).

Usage: python tools/bundled_tokenizer.py [--data .data/olmoe-tiny] [--out models/olmoe-tiny] [--pad]
"""
import argparse
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EOT = "<|endoftext|>"
PAD = "<|pad|>"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(REPO, ".data", "olmoe-tiny"))
    ap.add_argument("--out", default=os.path.join(REPO, "models", "olmoe-tiny"))
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--pad", action="store_true", help="a separate <|pad|> token (id 1)")
    args = ap.parse_args()

    def texts():
        with open(os.path.join(args.data, "train.jsonl"), encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)["text"]

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab,
        min_frequency=2,
        special_tokens=[EOT, PAD] if args.pad else [EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts(), trainer=trainer)
    os.makedirs(args.out, exist_ok=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": EOT,
        "eos_token": EOT,
        "unk_token": EOT,
        "pad_token": PAD if args.pad else EOT,
        "add_prefix_space": False,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 512,
    }
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("vocab", tok.get_vocab_size(), "eot id", tok.token_to_id(EOT), "pad id", tok.token_to_id(PAD))


if __name__ == "__main__":
    main()
