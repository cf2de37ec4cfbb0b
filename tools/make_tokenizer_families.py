#!/usr/bin/env python3
"""Build small tokenizers in the style of each model family roe serves, with the Hugging Face
`tokenizers` library, and record how `tokenizers` encodes and decodes ~6,000 varied strings
with each (~5,000): the fixtures of tests/e2e/tokenize_families.sh (which runs them through
`roe tokenize`, without Python).

Writes tests/data/tokenizer/families/:

  strings.jsonl.gz         gzip: one JSON string per line (json.dumps, ensure_ascii=False: the
                           escaping cJSON prints), shared by every family: prose, code, numbers,
                           whitespace runs, every script, emoji (ZWJ, flags, keycaps, skin tones,
                           Unicode 15 and 16 additions), the letters of Unicode 15-16 scripts,
                           random code points of every plane, combining marks, added tokens
  <family>/tokenizer.json  trained here (small vocabularies), configured as the family's
  <family>/ids.gz          gzip: line i = the ids of string i, comma-separated
                           (encode(s, add_special_tokens=False))
  <family>/decoded.tsv.gz  gzip: "i<TAB>json" for each string whose decode(ids) differs from it
                           (a normalizer changed it, or the tokenizer is lossy), with the
                           decoded text; every other string round-trips exactly

Families: gpt2, neox (OLMoE), llama3, qwen2, o200k (gpt-oss), deepseek_v3, llama2 (Mixtral /
Llama 2 SentencePiece BPE: Prepend + Replace normalizers, byte fallback), llama2_metaspace
(the same vocabulary as newer conversions write it: Metaspace prepend_scheme "first"), and
wordbound (a Split regex with \\w and \\b, where combining marks are word characters).

Deterministic: the same inputs give the same files. Usage:
  /work/venv/bin/python tools/make_tokenizer_families.py [--out DIR] [--strings N]
"""

import argparse
import gzip
import json
import os
import random
import sys
import unicodedata

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                  r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                 r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""", r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""", r"""\s*[\r\n]+""", r"""\s+(?!\S)""", r"""\s+"""])
DEEPSEEK_PATTERNS = [
    r"""\p{N}{1,3}""",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    (r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|"""
     r"""\s*[\r\n]+|\s+(?!\S)|\s+"""),
]
WORD_PATTERN = r"""\b\w+\b|[^\w\s]+|\s+"""

SPECIALS = {
    "gpt2": [("<|endoftext|>", True, False)],
    "neox": [("<|endoftext|>", True, False), ("<|padding|>", True, False)],
    "llama3": [(t, True, False) for t in ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                          "<|end_header_id|>", "<|eot_id|>", "<|reserved_special_token_0|>")],
    "qwen2": [(t, True, False) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] +
             [(t, False, False) for t in ("<think>", "</think>")],
    "o200k": [(t, True, False) for t in ("<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>",
                                         "<|channel|>", "<|start|>", "<|end|>", "<|message|>", "<|call|>")],
    "deepseek_v3": [(t, True, False) for t in ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>")] +
                   [(t, False, False) for t in ("<think>", "</think>")] +
                   [(t, False, True) for t in ("<｜User｜>", "<｜Assistant｜>")],
    "llama2": [(t, True, False) for t in ("<unk>", "<s>", "</s>")] + [("<extra>", False, True)],
    "wordbound": [("<|endoftext|>", True, False)],
}
SPECIALS["llama2_metaspace"] = SPECIALS["llama2"]
ALL_ADDED = sorted({t for v in SPECIALS.values() for t, _, _ in v} |
                   {"<|endoftext |>", "<|im_end>", "<s", "</s >", "<think", "Ġthe", "▁the", "<0x41>", "<unk>"})

# ------------------------------------------------------------------------------------------------
# Varied text

WORDS = ("the of and to in is that it was for on are with as his they be at one have this from or had by "
         "hot word but what some we can out other were all there when up use your how said an each she which "
         "do their time if will way about many then them write would like so these her long make thing see "
         "him two has look more day could go come did number sound no most people my over know water than "
         "call first who may down side been now find any new work part take get place made live where after "
         "back little only round man year came show every good me give our under name very through just form "
         "sentence great think say help low line differ turn cause much mean before move right boy old too "
         "same tell does set three want air well also play small end put home read hand port large spell add "
         "even land here must big high such follow act why ask men change went light kind off need house "
         "picture try us again animal point mother world near build self earth father").split()
CONTRACTIONS = ["don't", "it's", "we're", "they've", "I'm", "you'll", "he'd", "DON'T", "IT'S", "Jones'S", "can’t",
                "'s", "'t", "'re", "'S", "'LL", "o'clock", "rock 'n' roll"]
SCRIPTS = {  # name: ranges to draw letters from
    "latin_ext": [(0xC0, 0x24F)], "greek": [(0x391, 0x3C9)], "cyrillic": [(0x410, 0x44F), (0x450, 0x4FF)],
    "armenian": [(0x531, 0x556), (0x561, 0x587)], "hebrew": [(0x5D0, 0x5EA)], "arabic": [(0x621, 0x64A), (0x660, 0x669)],
    "devanagari": [(0x905, 0x939), (0x93E, 0x94D), (0x966, 0x96F)], "bengali": [(0x985, 0x9B9), (0x9BE, 0x9CD)],
    "tamil": [(0xB85, 0xBB9), (0xBBE, 0xBCD)], "thai": [(0xE01, 0xE3A), (0xE40, 0xE4E)], "lao": [(0xE81, 0xEAE)],
    "tibetan": [(0xF40, 0xF6C), (0xF71, 0xF84)], "georgian": [(0x10D0, 0x10FA)], "hangul": [(0xAC00, 0xD7A3)],
    "hiragana": [(0x3041, 0x3096)], "katakana": [(0x30A1, 0x30FA)], "cjk": [(0x4E00, 0x9FFF)],
    "cjk_ext_b": [(0x20000, 0x2A6DF)], "ethiopic": [(0x1200, 0x135A)], "cherokee": [(0x13A0, 0x13F5)],
    "mongolian": [(0x1820, 0x1878)], "fullwidth": [(0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0xFF10, 0xFF19)],
    "math_alnum": [(0x1D400, 0x1D6A5)], "gothic": [(0x10330, 0x1034A)],
    # added in Unicode 15.0, 15.1 and 16.0 (tokenizers knows them, PCRE2 10.42 does not)
    "cjk_ext_h": [(0x31350, 0x323AF)], "cjk_ext_i": [(0x2EBF0, 0x2EE5D)], "kawi": [(0x11F04, 0x11F10), (0x11F12, 0x11F33)],
    "nag_mundari": [(0x1E4D0, 0x1E4EB), (0x1E4F0, 0x1E4F9)], "garay": [(0x10D4A, 0x10D65), (0x10D70, 0x10D85), (0x10D40, 0x10D49)],
    "gurung_khema": [(0x16100, 0x1611D)], "kirat_rai": [(0x16D43, 0x16D6A), (0x16D70, 0x16D79)],
    "ol_onal": [(0x1E5D0, 0x1E5ED), (0x1E5F1, 0x1E5FA)], "sunuwar": [(0x11BC0, 0x11BE0), (0x11BF0, 0x11BF9)],
    "todhri": [(0x105C0, 0x105F3)], "tulu_tigalari": [(0x11380, 0x11389), (0x11390, 0x113B5)],
    "egyptian_ext_a": [(0x13460, 0x143FA)], "myanmar_ext_c": [(0x116D0, 0x116E3)],
    "latin_16": [(0xA7CB, 0xA7CD), (0xA7DA, 0xA7DC), (0x1DF25, 0x1DF2A)],
}
EMOJI = ["😀", "😂", "🙂", "👍", "👍🏽", "👋🏿", "❤️", "❤", "✨", "🔥", "💯", "🚀", "🌊", "🏠", "⚓", "☕", "🍕",
         "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏿‍🚀", "🏳️‍🌈", "🏴‍☠️", "👁️‍🗨️", "🇫🇷", "🇯🇵", "🇺🇦", "1️⃣", "#️⃣", "*️⃣", "☺︎", "✌️",
         # Unicode 15.0
         "🩷", "🩵", "🩶", "🫨", "🫎", "🫏", "🪽", "🐦‍⬛", "🪿", "🪼", "🫚", "🫛", "🪭", "🪮", "🪇", "🪈", "🪯", "🛜",
         # Unicode 15.1 sequences and 16.0
         "🐦‍🔥", "🍋‍🟩", "🍄‍🟫", "⛓️‍💥", "🙂‍↔️", "🙂‍↕️", "🧑‍🧑‍🧒", "🚶‍➡️", "🫩", "🫆", "🪾", "🫜", "🪉", "🪏", "🫟", "🇨🇶"]
SPACES = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", "\u00a0", "\u3000",
          "\u2009", "\u200b", "\x0b", "\x0c", "\u0085", "\u2028", " " * 8, " " * 17, " \t \n", "\u202f"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["...", "--", "«", "»", "“", "”", "‘", "’", "—", "–", "¿", "¡",
                                                      "。", "、", "！", "？", "：", "…", "•", "§", "©", "®", "™", "€", "£",
                                                      "¥", "₹", "₿", "°", "±", "×", "÷", "→", "⇒", "∀", "∈", "≠", "≤"]
DIGITS = ["0123456789", "١٢٣٤٥٦٧٨٩٠", "۱۲۳", "१२३४", "๑๒๓", "１２３", "¹²³", "₁₂₃", "①②③", "Ⅻ", "½¾", "〇一二"]
CODE = ["def f(x):\n    return x ** 2\n", "int main(void) {\n\treturn 0;\n}\n", "for (i = 0; i < n; ++i) a[i] += b[i];",
        '{"key": [1, 2.5, null, true], "s": "a\\"b"}', "<div class=\"x\">&amp;</div>", "SELECT * FROM t WHERE a >= 10;",
        "x_1 = __init__(self, *args, **kwargs)", "#include <stdio.h>", "$ grep -c 'fog' *.log | sort -n",
        "    if x:\n        y = [i for i in range(10) if i % 2]\n", "https://example.org/a?b=c&d=e#f", "C:\\Program Files\\x"]


def assigned_marks():
    return [c for c in range(0x300, 0x1FFFF) if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me")]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.marks = assigned_marks()

    def script_word(self):
        name = self.r.choice(sorted(SCRIPTS))
        lo, hi = self.r.choice(SCRIPTS[name])
        return "".join(chr(self.r.randint(lo, hi)) for _ in range(self.r.randint(1, 8)))

    def mixed_word(self):
        """Letters of old and new scripts side by side (where Unicode 14 and 16 split differently)."""
        parts = []
        for _ in range(self.r.randint(2, 4)):
            name = self.r.choice(sorted(SCRIPTS) + ["ascii", "ascii"])
            if name == "ascii":
                parts.append(self.r.choice(WORDS))
            else:
                lo, hi = self.r.choice(SCRIPTS[name])
                parts.append("".join(chr(self.r.randint(lo, hi)) for _ in range(self.r.randint(1, 3))))
        return "".join(parts) + self.r.choice(["", "'s", "'LL", "123", self.r.choice(EMOJI)])

    def english(self):
        ws = [self.r.choice(WORDS) for _ in range(self.r.randint(1, 12))]
        if self.r.random() < 0.3:
            ws.insert(self.r.randrange(len(ws) + 1), self.r.choice(CONTRACTIONS))
        s = " ".join(ws)
        if self.r.random() < 0.3:
            s = s.capitalize()
        if self.r.random() < 0.1:
            s = s.upper()
        return s + self.r.choice(["", ".", ",", "!", "?", ":", ";", " —", "..."])

    def number(self):
        k = self.r.random()
        if k < 0.4:
            return str(self.r.randint(0, 10 ** self.r.randint(1, 30)))
        if k < 0.6:
            return f"{self.r.uniform(-1e6, 1e6):.{self.r.randint(0, 8)}f}"
        if k < 0.8:
            return self.r.choice(DIGITS)
        return "".join(self.r.choice("0123456789,._ -") for _ in range(self.r.randint(2, 20)))

    def marked(self):
        base = self.r.choice("aeiouxzAEZ" + "αβγ" + "абв" + "क" + "한" + " ")
        return base + "".join(chr(self.r.choice(self.marks)) for _ in range(self.r.randint(1, 4)))

    def random_cp(self):
        while True:
            c = self.r.choice([self.r.randint(0x80, 0x2FFF), self.r.randint(0x3000, 0xFFFF),
                               self.r.randint(0x10000, 0x1FFFF), self.r.randint(0x20000, 0x10FFFF)])
            if not 0xD800 <= c <= 0xDFFF:
                return chr(c)

    def fragment(self):
        k = self.r.random()
        if k < 0.22:
            return self.english()
        if k < 0.30:
            return " ".join(self.script_word() for _ in range(self.r.randint(1, 4)))
        if k < 0.34:
            return self.mixed_word()
        if k < 0.42:
            return self.number()
        if k < 0.50:
            return self.r.choice(SPACES) * self.r.randint(1, 3)
        if k < 0.58:
            return "".join(self.r.choice(EMOJI) for _ in range(self.r.randint(1, 3)))
        if k < 0.64:
            return self.r.choice(CODE)
        if k < 0.70:
            return "".join(self.r.choice(PUNCT) for _ in range(self.r.randint(1, 4)))
        if k < 0.77:
            return self.marked()
        if k < 0.83:
            return "".join(self.random_cp() for _ in range(self.r.randint(1, 5)))
        if k < 0.92:
            return self.r.choice(ALL_ADDED)
        return unicodedata.normalize(self.r.choice(["NFD", "NFKD"]), self.english() + " café Ångström ﬁ ½")

    def string(self):
        parts = [self.fragment() for _ in range(self.r.choice([1, 1, 1, 2, 2, 3, 4, 6]))]
        sep = [self.r.choice(["", " ", " ", "\n", self.r.choice(SPACES)]) for _ in parts]
        s = "".join(p + q for p, q in zip(parts, sep))
        if self.r.random() < 0.15:
            s = self.r.choice(SPACES) + s
        return s


def strings(n, seed):
    g = Gen(seed)
    fixed = ["", " ", "a", "Hi 🩷!", "in the end", "Hello world", " hello", "  leading", "trailing  ", "\n",
             "e\u0301", "cafe\u0301 ab\u0301c", "\u0301x", "x\u0301 y\u0308z", "<s>hello", "hello</s>", "<s> hi", "a\U00010D4Ab", "Привет\U00031350мир", "x\U0001E4D0's",
             "<unk>", "<0x41>", "▁the", "Ġthe", "𱍐𮯰", "\U00031350 \U0002EBF0", "🫩🪉", "a\u034fb"]
    out = list(fixed)
    seen = set(out)
    while len(out) < n:
        s = g.string()
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def corpus(seed, n_bytes, text_txt):
    g = Gen(seed)
    docs, total = [text_txt], len(text_txt.encode())
    while total < n_bytes:
        d = "\n".join(g.string() for _ in range(20))
        docs.append(d)
        total += len(d.encode())
    return docs


# ------------------------------------------------------------------------------------------------
# Families

def added(tok, family):
    for content, special, normalized in SPECIALS[family]:
        tok.add_tokens([AddedToken(content, special=special, normalized=normalized)])


def byte_level(docs, vocab, normalizer=None, splits=(), use_regex=False, specials_first=(), ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer:
        tok.normalizer = normalizer
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=use_regex)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(p), behavior="isolated") for p in splits] + [bl])
                         if splits else bl)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[AddedToken(t, special=True, normalized=False) for t in specials_first])
    tok.train_from_iterator(docs, trainer=trainer)
    return tok


def build(family, docs):
    if family == "gpt2":
        tok = byte_level(docs, 1200, use_regex=True)
        added(tok, family)
        assert tok.token_to_id("Ġthe") is not None
        # an added token that duplicates a vocab entry decodes like it ("in the end")
        tok.add_tokens([AddedToken("Ġthe", special=False, normalized=False)])
        return tok
    if family == "neox":
        tok = byte_level(docs, 1000, normalizers.NFC(), use_regex=True, specials_first=("<|endoftext|>", "<|padding|>"))
        tok.add_tokens([AddedToken(" " * n, special=False, normalized=True) for n in (24, 16, 8, 4, 2)])
        return tok
    if family == "llama3":
        tok = byte_level(docs, 1400, splits=[LLAMA3_PATTERN], ignore_merges=True)
    elif family == "qwen2":
        tok = byte_level(docs, 1400, normalizers.NFC(), splits=[QWEN2_PATTERN])
    elif family == "o200k":
        tok = byte_level(docs, 1400, splits=[O200K_PATTERN], ignore_merges=True)
    elif family == "deepseek_v3":
        tok = byte_level(docs, 1400, normalizers.Sequence([]), splits=DEEPSEEK_PATTERNS)
    elif family == "wordbound":
        tok = byte_level(docs, 1000, splits=[WORD_PATTERN])
    else:
        return build_sentencepiece(family, docs)
    added(tok, family)
    return tok


def build_sentencepiece(family, docs):
    """Llama 2 / Mixtral: BPE over characters with byte fallback; <unk> <s> </s> = 0 1 2, the 256
    byte tokens <0x00>..<0xFF> = 3..258, then the merged pieces."""
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    # the 160 most frequent characters (ties by code point: limit_alphabet breaks ties at random)
    counts = {}
    for d in docs:
        for ch in d.replace(" ", "▁"):
            counts[ch] = counts.get(ch, 0) + 1
    alphabet = sorted(counts, key=lambda ch: (-counts[ch], ch))[:160]
    trainer = trainers.BpeTrainer(vocab_size=1200, min_frequency=2, show_progress=False,
                                  initial_alphabet=alphabet, limit_alphabet=160)
    trainer_tok.train_from_iterator(docs, trainer=trainer)
    j = json.loads(trainer_tok.to_str())
    trained = sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = 3 + b
    for t, _ in trained:
        if t not in vocab:
            vocab[t] = len(vocab)
    j["model"].update(vocab=vocab, unk_token="<unk>", byte_fallback=True, fuse_unk=True, ignore_merges=False)
    j["added_tokens"] = []
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    if family == "llama2":
        j["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        j["pre_tokenizer"] = None
    else:
        j["normalizer"] = None
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    tok = Tokenizer.from_str(json.dumps(j))
    added(tok, family)
    return tok


FAMILIES = ["gpt2", "neox", "llama3", "qwen2", "o200k", "deepseek_v3", "llama2", "llama2_metaspace", "wordbound"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "data", "tokenizer", "families"))
    ap.add_argument("--strings", type=int, default=5200)
    ap.add_argument("--corpus-bytes", type=int, default=1_500_000)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(REPO_ROOT, "tests", "data", "tokenizer", "text.txt"), encoding="utf-8", newline="") as f:
        text_txt = f.read()
    docs = corpus(1, args.corpus_bytes, text_txt)
    tests = strings(args.strings, 2)
    with gzip.GzipFile(os.path.join(args.out, "strings.jsonl.gz"), "wb", mtime=0) as f:
        for s in tests:
            f.write((json.dumps(s, ensure_ascii=False) + "\n").encode())
    print(f"tokenizers {tokenizers.__version__}: {len(tests)} strings, "
          f"{sum(len(s.encode()) for s in tests)} bytes; training corpus {sum(len(d.encode()) for d in docs)} bytes")
    for family in FAMILIES:
        tok = build(family, docs)
        d = os.path.join(args.out, family)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "tokenizer.json")
        tok.save(path, pretty=False)
        tok = Tokenizer.from_file(path)  # what the file says, not what was built
        diffs, n_ids = [], 0
        with gzip.GzipFile(os.path.join(d, "ids.gz"), "wb", mtime=0) as gz:
            for i, s in enumerate(tests):
                ids = tok.encode(s, add_special_tokens=False).ids
                n_ids += len(ids)
                gz.write((",".join(map(str, ids)) + "\n").encode())
                dec = tok.decode(ids, skip_special_tokens=False)
                if dec != s:
                    diffs.append((i, dec))
        with gzip.GzipFile(os.path.join(d, "decoded.tsv.gz"), "wb", mtime=0) as f:
            for i, dec in diffs:
                f.write(f"{i + 1}\t{json.dumps(dec, ensure_ascii=False)}\n".encode())
        print(f"  {family:17s} vocab {tok.get_vocab_size(with_added_tokens=True):5d}, "
              f"{os.path.getsize(path) // 1024:4d} KB, {n_ids} ids, {len(diffs)} strings do not round-trip")


if __name__ == "__main__":
    sys.exit(main())
