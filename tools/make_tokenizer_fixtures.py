#!/usr/bin/env python3
"""Generate tokenizer fixtures with the Hugging Face `tokenizers` library.

Writes, under tests/data/tokenizer/:

  text.txt                 test text (UTF-8, ~30 KB): prose, C and Python code, numbers, whitespace
                           runs, \\r\\n, contractions, accented / Greek / Cyrillic / CJK / emoji / ZWJ /
                           combining and decomposed text. Read it as BYTES (no newline translation).
  <name>/tokenizer.json    small byte-level BPE tokenizers trained here:
                             gpt2style  GPT-2 regex ByteLevel pre-tokenizer, merges as "a b" strings
                             qwenstyle  NFC + Split(Qwen2 regex, isolated) + ByteLevel(use_regex=false),
                                        merges as ["a", "b"] pairs, special + non-special added tokens
                             neoxstyle  NFC + ByteLevel (GPT-NeoX / OLMoE style), merges as "a b",
                                        special tokens at ids 0/1 and non-special whitespace-run
                                        added tokens (matched before pre-tokenization)
  <name>/text.ids          ids of text.txt (add_special_tokens=False), space-separated, one line
  <name>/cases.jsonl       {"text", "ids", "tokens", "decoded"} for ~70 short tricky strings;
                           decoded = decode(ids, skip_special_tokens=False)

The training corpus is the license texts in /usr/share/common-licenses (Debian) plus text.txt.
Part of text.txt comes from /usr/share/common-licenses/Apache-2.0 (checked by sha256).

Usage:  .venv/bin/python tools/make_tokenizer_fixtures.py [--out tests/data/tokenizer]
"""

import argparse
import hashlib
import json
import os
import sys
import unicodedata

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
import tokenizers

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LICENSE_DIR = "/usr/share/common-licenses"
APACHE_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# ------------------------------------------------------------------------------------------------
# Test text

PROSE = """\
The Lighthouse Keeper's Notebook

It's a strange thing, keeping a light. You'd think the work is all about the lamp, but it isn't:
it's about the weather, the ledger, and the long hours when nothing happens. I'm told the
previous keeper didn't write much. He'd note the wind ("NW, force 6") and the ships he'd seen,
and that's all. We've kept his notebooks anyway; they're in the cupboard by the stairs.

"Don't touch the brass," my aunt used to say. "It'll tarnish if you do, and you'll be the one
polishing it." She wasn't wrong. THE BRASS IS STILL THERE. IT'S STILL SHINY. WE'VE NEVER LET
IT GO DULL, AND WE'LL NEVER LET IT GO DULL. I'D RATHER NOT SAY WHO'S POLISHING IT NOW.
The harbourmaster's boat, the Jones'S ferry and the keeper'S cat: apostrophes everywhere.
Typographic apostrophes look different: don’t, it’s, we’re, ‘quoted’ and “double-quoted”.

Some days the fog rolls in at 06:45 and doesn't lift until 17:30. On those days the horn sounds
every 30 seconds -- that's 120 blasts an hour, 2,880 a day, and more than 1,051,200 in a year of
fog (which, thankfully, we've never had). The log says: 1987-03-14, 1994-11-02, 2003-07-19.
Mr. O'Brien and Ms. D'Souza visited on the 3rd; Dr. McAllister-Smith came on the 21st.

Questions people ask: Is it lonely? Sometimes. Isn't it cold? Usually. Would you do it again?
Yes -- absolutely, without hesitation... well, maybe with a little hesitation!!! ?!?! (No.)
Email: keeper@light-house.example.org, web: https://example.org/logs?year=2024&month=03#top.
Paths: /usr/local/share/light/lamp.conf and C:\\Program Files\\Light\\lamp.ini.
Hashtags #fog #NightShift and @mentions, 50% off, 3/4 cup, x^2 + y^2 = r^2, a_b, __init__.

"""

C_CODE = """\
/* lamp.c -- rotate the lamp and count the flashes.   */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_FLASHES   1024u
#define PERIOD_MS     (15 * 1000)
#define MASK          0xDEADBEEFu

typedef struct {
\tuint32_t\tflashes;   \t/* total since boot */
\tuint64_t\tticks;
\tconst char *name;
\tdouble   \tangle_rad;
} lamp_t;

static int lamp_init(lamp_t *l, const char *name)
{
\tif (!l || !name)
\t\treturn -1;
\tmemset(l, 0, sizeof(*l));
\tl->name = name;   
\tl->angle_rad = 3.14159265358979323846 / 4.0;
\treturn 0;
}

static uint32_t hash32(const uint8_t *p, size_t n)
{
\tuint32_t h = 2166136261u;
\tfor (size_t i = 0; i < n; ++i) {
\t\th ^= p[i];
\t\th *= 16777619u;
\t}
\treturn h ^ MASK;
}

int main(int argc, char **argv)
{
\tlamp_t l;
\tchar buf[256] = {0};
\tif (lamp_init(&l, argc > 1 ? argv[1] : "north") != 0) {
\t\tfprintf(stderr, "error: %s:%d: init failed\\n", __FILE__, __LINE__);
\t\treturn 1;
\t}
\tfor (int i = 0; i < 10; i++) {
\t\tl.flashes += (i % 3 == 0) ? 2 : 1;\t\t// two flashes every third turn
\t\tl.ticks   += PERIOD_MS;
\t}
\tsnprintf(buf, sizeof buf, "%s: %u flashes, %llu ms, h=%08x\\t\\"ok\\"",
\t         l.name, l.flashes, (unsigned long long)l.ticks,
\t         hash32((const uint8_t *)l.name, strlen(l.name)));
\tputs(buf);
\treturn l.flashes > MAX_FLASHES ? 2 : 0;
}
"""

# This block is written with CRLF line endings.
C_CODE_CRLF = """\
// Windows line endings below (\\r\\n):
int add(int a, int b)
{
    return a + b;   
}

int sub(int a, int b) { return a - b; }
"""

PY_CODE = '''\
# -*- coding: utf-8 -*-
"""Tide tables for the lighthouse."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Tide:
    """A single tide: height in metres at a given hour."""

    hour: float
    height_m: float
    label: str = field(default="")

    def __repr__(self) -> str:
        return f"Tide({self.hour:05.2f}h, {self.height_m:+.3f} m, {self.label!r})"


def harmonic(t: float, amplitudes=(1.20, 0.35, 0.08), periods=(12.42, 12.00, 25.82)) -> float:
    total = 0.0
    for a, p in zip(amplitudes, periods):
        total += a * math.cos(2 * math.pi * t / p)
    return total


def table(hours: int = 24, step: float = 0.5) -> list[Tide]:
    out: list[Tide] = []
    t = 0.0
    while t <= hours:
        h = harmonic(t)
        if h > 1.0:
            label = "HIGH"
        elif h < -1.0:
            label = "LOW"
        else:
            label = ""
        out.append(Tide(t, h, label))
        t += step
    return out


class Keeper:
    def __init__(self, name: str, years: int) -> None:
        self.name = name
        self.years = years
        self._log: dict[str, list[str]] = {}

    def note(self, day: str, text: str) -> None:
        self._log.setdefault(day, []).append(text)

    def summary(self) -> str:
        lines = []
        for day in sorted(self._log):
            for i, entry in enumerate(self._log[day]):
                if i == 0:
                    lines.append(f"{day}: {entry}")
                else:
                    lines.append(" " * 12 + entry)
        return "\\n".join(lines)


if __name__ == "__main__":
    k = Keeper("Ada", years=7)
    k.note("1987-03-14", "fog, horn on 06:45-17:30")
    k.note("1987-03-14", "wind NW 6")
    print(k.summary())
    for tide in table(6, 1.5):
        print(tide)
    café = {"naïve": True, "λ": lambda x: x ** 2, "données": [1, 2, 3]}
    assert café["λ"](3) == 9, "squares don't work?!"
'''

MARKUP = """\
Markup section.
```json
{"name": "lamp", "version": "1.0.2", "tags": ["fog", "night"], "enabled": true, "ratio": 0.75,
 "nested": {"empty": {}, "list": [], "null": null, "escaped": "tab\\tnewline\\n\\"quote\\" \\u00e9"}}
```
<html lang="en"><head><meta charset="utf-8"><title>Keeper &amp; Co.</title></head>
<body><p class="note">It&#39;s <b>bold</b>, <i>italic</i> &lt;tag&gt; &nbsp; &copy; 2024</p>
<!-- comment --><br/><img src="lamp.png" alt="a lamp"/></body></html>

| Day | Wind | Fog? |
|-----|:----:|-----:|
| Mon | NW 6 | yes  |
| Tue | S 2  | no   |

* bullet one
  * nested bullet
1. numbered
> quoted line with **emphasis** and `inline code` and [a link](https://example.org).

$ for f in *.log; do grep -c "fog" "$f" || true; done | sort -n | tail -3
$ export PATH="$HOME/.local/bin:$PATH"; echo "${PATH%%:*}" >> /tmp/out.txt 2>&1
SELECT name, COUNT(*) AS n FROM keepers WHERE years >= 5 GROUP BY name ORDER BY n DESC;

More prose. They'd said the job wouldn't last; it's lasted thirty years. You'll find that
keepers don't retire so much as fade into the weather. I've met three of them. I'd've liked to
meet the fourth, but she'd gone to the mainland by then, and who'd blame her? Y'all know how it
is: ma'am, o'clock, rock 'n' roll, '90s, the 'til and the 'cause, and the dog's bowl's empty.
SHE'D SAID IT'D RAIN. THEY'LL SAY IT WON'T. I'M SURE WE'VE HEARD IT ALL BEFORE.
"""

CHAT = """\

Chat transcript (these look like special tokens to some tokenizers):
<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
What's the tide at 06:00?<|im_end|>
<|im_start|>assistant
<think>
The table says 1.55 m.
</think>
It's about 1.55 m.<|im_end|>
<|endoftext|>Next document starts here. <|endoftext|> and <|endoftext |> and <|im_end> are near misses.
"""

WHITESPACE = (
    "Whitespace section.\n"
    "two  spaces, three   spaces, four    spaces, eight        spaces.\n"
    "\ttab at start\n"
    "\t\ttwo tabs\t\tin the middle\t\n"
    "  \t  mixed \t indentation \t \n"
    "trailing spaces   \n"
    "trailing tab\t\n"
    "\n"
    "\n"
    "   \n"
    "\n\n\n\n"
    "after four newlines\n"
    "windows line\r\n"
    "another windows line\r\n"
    "\r\n"
    "blank windows line above\r\n"
    "lone carriage return\rin the middle\n"
    "form\x0cfeed and vertical\x0btab\n"
    "no-break\u00a0space, thin\u2009space, ideographic\u3000space, zero\u200bwidth space, en\u2002space\n"
    "                                        forty leading spaces\n"
    "ends with spaces and a newline       \n"
    "   \t\t   \n"
)

NUMBERS_HEADER = "Numbers section.\n"

MULTILINGUAL = """\
Multilingual section.
Français : « Où est la bibliothèque ? » — Il était une fois, à l'été, un garçon très âgé.
Deutsch: Größenwahn, Straße, Übermäßig, „Anführungszeichen“, die Äpfel und Öfen.
Español: ¿Dónde está el niño? ¡Qué año! Mañana, señor Muñoz, pingüino.
Português: Não há coração sem ação; São Paulo, açaí, pão.
Polski: Zażółć gęślą jaźń. Łódź, Gdańsk, źdźbło.
Čeština: Příliš žluťoučký kůň úpěl ďábelské ódy.
Türkçe: İstanbul'da ılık bir gün; IĞDIR, ıspanak, İı.
Tiếng Việt: Tôi yêu tiếng Việt, người Việt Nam, Hà Nội, phở bò, những điều kỳ diệu.
Íslenska: Þjóðin, æðarfugl, ð and þ.
Ελληνικά: Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο. ΑΒΓΔ αβγδ ς σ ΐ ΰ.
Русский: Съешь же ещё этих мягких французских булок, да выпей чаю. ЁЖИК ёжик.
Українська: Ґанок, їжак, є, і — «Чуєш їх, доцю, га?»
Български: Щастие, ъгъл, ѝ.
Հայերեն: Բարեւ աշխարհ։ Ქართული: გამარჯობა მსოფლიო.
עברית: שלום עולם, מה שלומך?  العربية: مرحبا بالعالم، كيف حالك؟  فارسی: سلام دنیا.
हिन्दी: नमस्ते दुनिया, क्षत्रिय, हिंदी।  বাংলা: আমি বাংলায় গান গাই।
ไทย: สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ
中文：你好，世界！我们的灯塔在海边。繁體中文：燈塔、風雨、龍。
日本語：こんにちは世界。灯台守の日記です。カタカナ、ﾊﾝｶｸｶﾀｶﾅ、漢字かな交じり文。
한국어: 안녕하세요 세계! 등대지기의 공책입니다.
Full-width: ＡＢＣ　ａｂｃ　１２３！？　Ligatures: ﬁne ﬂow ﬀ. Roman: Ⅻ ⅻ. Fractions: ½ ¾ ⅞.
Math: ∀x ∈ ℝ: x² ≥ 0; √2 ≈ 1.41421; ∑ᵢ aᵢ = ∞? ≠ ≤ ≥ ± × ÷ → ⇒ ↔ ∂ ∇ ∫ ℵ₀ π τ.
Box drawing: ┌──┬──┐ │ab│cd│ └──┴──┘ ░▒▓█ ▲▼◆● ★☆ ♠♣♥♦ ♪♫ © ® ™ § ¶ † ‡ • … ‰ € £ ¥ ₹ ₿.
Astral plane: 𝄞 music, 𐌰𐌱𐌲 Gothic, 𝐀𝐁𝐂 bold math, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 fraktur, 𠀀𠀁 CJK ext B, 🀄 mahjong.
Emoji: 😀 😂 🙂 👍 👍🏽 👋🏿 ❤️ ❤ ✨ 🔥 💯 🚀 🌊 🌍 🏠 ⚓ 🗼 ☕ 🍕
ZWJ sequences: 👨‍👩‍👧‍👦 family, 👩‍💻 technologist, 🧑🏿‍🚀 astronaut, 🏳️‍🌈 rainbow flag, 🏴‍☠️ pirate, 👁️‍🗨️ eye.
Flags and keycaps: 🇫🇷 🇯🇵 🇺🇸 🇧🇷 🇺🇦 1️⃣ 2️⃣ #️⃣ *️⃣; variation selectors: ☺︎ ☺️ ✌︎ ✌️.
"""

# Decomposed (NFD) and otherwise non-NFC text: NFC changes these.
DECOMPOSED = (
    "Decomposed section (NFD; an NFC normalizer changes it):\n"
    "cafe\u0301, e\u0301le\u0300ve, na\u0131\u0308ve? no: nai\u0308ve, A\u030angstro\u0308m, n\u0303, u\u0308ber, "
    "Cre\u0300me bru\u0302le\u0301e, Vie\u0323\u0302t Nam, \u1112\u1161\u11ab\u1100\u116e\u11a8\u110b\u1165 "
    "(Hangul jamo), \u212b (angstrom sign), \u2126 (ohm sign), K\u0327, q\u0307\u0323, "
    "a\u0323\u0307 vs a\u0307\u0323 (order of combining marks).\n"
    "Composed for comparison: café, élève, naïve, Ångström, ñ, über, Crème brûlée, Việt Nam, 한국어.\n"
    "Zalgo: Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334a\u0300\u0304l\u0350\u0357g\u0305\u0310o\u0306\u034f "
    "combining on space: \u0301 and at end of line e\u0301\n"
    "Combining grapheme joiner: a\u034fb, soft hyphen: co\u00adoperate, BOM-like: \ufeffword, "
    "bidi marks: \u200eLTR\u200f RTL\u202a\u202c.\n"
)


def pi_digits(n):
    """First n decimal digits of pi (Machin's formula with integers)."""
    def arctan_inv(x, scale):
        total = term = scale // x
        x2, k, sign = x * x, 3, -1
        while term:
            term //= x2
            total += sign * (term // k)
            k += 2
            sign = -sign
        return total
    scale = 10 ** (n + 10)
    pi = 4 * (4 * arctan_inv(5, scale) - arctan_inv(239, scale))
    return str(pi // 10 ** 10)[:n]


def numbers_section():
    import math
    lines = [NUMBERS_HEADER]
    p = pi_digits(400)
    lines.append(f"pi = {p[0]}.{p[1:]}\n")
    lines.append(f"2^256 = {2 ** 256}\n")
    lines.append(f"60! = {math.factorial(60)}\n")
    lines.append("Fibonacci: " + ", ".join(str(f) for f in _fib(60)) + "\n")
    lines.append("Powers of ten: " + " ".join(str(10 ** i) for i in range(0, 25, 3)) + "\n")
    lines.append("Decimals: 0.5 .5 5. 3.14159 -2.71828 +1.0e-10 6.022E23 1e6 0.000001 1_000_000 0b1011 0o777 "
                 "0x7FFFFFFF 0xdeadbeef 1'000'000 1,234,567.89 1.234.567,89 12:34:56.789 v2.10.3-rc1\n")
    lines.append("Money and units: $1,000.00 €25 £3.50 ¥1000 ₹99 100% 37.5°C -40°F 9.81m/s² 5km 10kg 3ms 2GHz 64GiB\n")
    lines.append("Dates and ids: 2024-02-29T23:59:59Z 1999/12/31 31.12.1999 ISBN 978-3-16-148410-0 "
                 "tel +1 (555) 010-9999 IPv4 192.168.0.1 IPv6 2001:db8::ff00:42:8329 MAC 00:1A:2B:3C:4D:5E\n")
    lines.append("Other digits: ١٢٣٤٥ (Arabic-Indic) ۱۲۳ (Persian) १२३ (Devanagari) ๑๒๓ (Thai) "
                 "１２３ (full-width) ¹²³ ₁₂₃ ①②③ Ⅳ 〇一二三\n")
    lines.append("Long runs: " + "".join(str(i % 10) for i in range(1, 121)) + " " + "9" * 50 + " " + "0" * 33 + "1\n")
    lines.append("Digits next to letters: abc123def 4x4 H2O CO2 mp3 x86_64 utf8 i18n l10n 3rd 21st 1000s\n")
    # a table with aligned columns (runs of spaces)
    lines.append("  id      value        hex\n")
    for i in range(1, 13):
        v = (i * 7919) ** 3 % 1000003
        lines.append(f"{i:4d}  {v:10d}   0x{v:06x}\n")
    return "".join(lines)


def _fib(n):
    a, b = 0, 1
    for _ in range(n):
        yield a
        a, b = b, a + b


def make_text():
    path = os.path.join(LICENSE_DIR, "Apache-2.0")
    with open(path, "rb") as f:
        apache = f.read()
    if hashlib.sha256(apache).hexdigest() != APACHE_SHA256:
        sys.exit(f"{path} differs from the expected text; text.txt would change")
    apache = apache.decode("utf-8")
    # the terms and conditions (indented, long lines, quotes)
    start = apache.index("   TERMS AND CONDITIONS")
    end = apache.index("   END OF TERMS AND CONDITIONS")
    crlf = C_CODE_CRLF.replace("\n", "\r\n")
    parts = [
        PROSE,
        C_CODE,
        "\n",
        crlf,
        "\n",
        MULTILINGUAL,
        "\n",
        WHITESPACE,
        "\n",
        PY_CODE,
        "\n",
        numbers_section(),
        "\n",
        DECOMPOSED,
        "\n",
        MARKUP,
        "\n",
        CHAT,
        "\n",
        "From the Apache License, Version 2.0:\n\n",
        apache[start:end],
        "\nThe end. That's all, folks -- THAT'S ALL!   \n",
    ]
    return "".join(parts)


# ------------------------------------------------------------------------------------------------
# Short cases

CASES = [
    "",
    " ",
    "  ",
    "a",
    "\n",
    "\n\n\n",
    "\r\n",
    "\t",
    "  leading",
    "trailing   ",
    "   both   ",
    "a\tb",
    "a \t b",
    "line1\nline2",
    "line1\r\nline2\r\n",
    "para\n\n\nnext",
    "x  \n  y",
    "Hello world",
    "Hello, world!",
    "hello world",
    " hello world",
    "1234567",
    "3.14159",
    "1,234,567.89",
    "x=1234567890123",
    "don't",
    "DON'T",
    "we're they've I'm you'll he'd it's",
    "WE'RE THEY'VE I'M YOU'LL HE'D IT'S",
    "Jones'S",
    "don’t",
    "'s",
    "''",
    "...",
    "!!!???",
    "-- --- ----",
    "a_b __init__",
    "foo.bar(baz)",
    "if (x) {\n\treturn 0;\n}",
    "    def f(self):\n        return 1",
    "#include <stdio.h>",
    "https://example.org/a?b=c&d=e#f",
    "é",
    "e\u0301",
    "cafe\u0301",
    "Ångström",
    "A\u030angstro\u0308m",
    "\u212b",
    "\u1112\u1161\u11ab",
    "naïve façade",
    "Ελληνικά",
    "Съешь же ещё",
    "你好，世界",
    "こんにちは",
    "안녕하세요",
    "😀",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "🇫🇷🇯🇵",
    "1️⃣",
    "𝄞𠀀",
    "\u00a0nbsp\u00a0",
    "zero\u200bwidth",
    "\ufeffbom",
    "<|endoftext|>",
    "hi<|endoftext|>there",
    "hi <|endoftext|> there",
    "hi  <|endoftext|>  there",
    "<|endoftext|><|endoftext|>",
    "<|endoftext|>\n",
    "<|endoftext |>",
    "<|im_start|>user\nhi<|im_end|>\n",
    "<|im_start|> user <|im_end|>",
    "<think>\nok\n</think>\n\nanswer",
    "a<think>b",
    "'STOP",
    "'stop",
    "'\u017ftop",          # long s: Oniguruma's (?i) uses Unicode case folding, so (?i:'s) matches
    "'lLama he'Ll",
    "a\u0085b",            # NEL: \s in the regexes (Unicode White_Space)
    "a\u2028b a\u3000b",
    "a\x1cb a\x1fb",       # not \s for the regexes (unlike Python's str.isspace)
    "\u00bd \u216b \u00b2 \u2460 \u0663",  # \p{N} beyond ASCII digits: No, Nl, Nd
    "\u01c5ungla \u02b0i",  # titlecase (Lt) and modifier (Lm) letters are \p{L}
    " \u0301x",            # a combining mark is not \p{L}
    "\u00df \u1e9e \u0130stanbul \ufb01",
    "x" * 40,
    " " * 17 + "x",
    "The quick brown fox jumps over the lazy dog.",
]


# ------------------------------------------------------------------------------------------------
# Tokenizers

def corpus(text):
    files = sorted(f for f in os.listdir(LICENSE_DIR)
                   if os.path.isfile(os.path.join(LICENSE_DIR, f)) and not os.path.islink(os.path.join(LICENSE_DIR, f)))
    docs = []
    for f in files:
        with open(os.path.join(LICENSE_DIR, f), "rb") as fh:
            docs.append(fh.read().decode("utf-8", errors="replace"))
    # the test text twice (gives non-ASCII and code merges some weight)
    docs += [text, text]
    # paragraphs as training "sentences"
    out = []
    for d in docs:
        out += [p for p in d.split("\n\n") if p]
    return out


def train(tok, vocab_size, special_first, sentences):
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=special_first,
    )
    tok.train_from_iterator(sentences, trainer=trainer)
    return tok


def build_gpt2style(sentences):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train(tok, 1200, [], sentences)
    # GPT-2: <|endoftext|> is the last id
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    return tok


def build_qwenstyle(sentences):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train(tok, 1600, [], sentences)
    # Qwen2/3: special tokens after the BPE vocabulary, <think> / </think> are non-special
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ("<think>", "</think>")])
    return tok


def build_neoxstyle(sentences):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    # GPT-NeoX / OLMoE: <|endoftext|> = 0, <|padding|> = 1
    train(tok, 1000, [AddedToken("<|endoftext|>", special=True, normalized=False),
                      AddedToken("<|padding|>", special=True, normalized=False)], sentences)
    # ... and runs of spaces as non-special, normalized added tokens at the end of the vocabulary
    tok.add_tokens([AddedToken(" " * n, special=False, normalized=True) for n in (24, 16, 8, 4, 2)])
    return tok


def set_merges_format(path, legacy):
    """Rewrite model.merges as "a b" strings (legacy) or ["a", "b"] pairs."""
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    merges = j["model"]["merges"]
    pairs = [m.split(" ") if isinstance(m, str) else list(m) for m in merges]
    for p in pairs:
        assert len(p) == 2 and all(" " not in x for x in p), p
    j["model"]["merges"] = [" ".join(p) for p in pairs] if legacy else pairs
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, indent=2)
        f.write("\n")
    return isinstance(merges[0], str)


def write_fixture(name, tok, legacy_merges, text, out_dir):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "tokenizer.json")
    tok.save(path, pretty=True)
    native_legacy = set_merges_format(path, legacy_merges)
    # reload the rewritten file: it must behave exactly like the in-memory tokenizer
    tok2 = Tokenizer.from_file(path)
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok2.encode(text, add_special_tokens=False).ids == ids
    with open(os.path.join(d, "text.ids"), "w") as f:
        f.write(" ".join(map(str, ids)) + "\n")

    notes = []
    with open(os.path.join(d, "cases.jsonl"), "w", encoding="utf-8") as f:
        for s in CASES:
            enc = tok2.encode(s, add_special_tokens=False)
            assert enc.ids == tok.encode(s, add_special_tokens=False).ids
            dec = tok2.decode(enc.ids, skip_special_tokens=False)
            f.write(json.dumps({"text": s, "ids": enc.ids, "tokens": enc.tokens, "decoded": dec},
                               ensure_ascii=False) + "\n")
            if dec != s:
                notes.append((s, dec))
    dec_text = tok2.decode(ids, skip_special_tokens=False)
    return dict(name=name, vocab=tok2.get_vocab_size(with_added_tokens=True), n_ids=len(ids),
                text_roundtrip=dec_text == text, text_nfc_roundtrip=dec_text == unicodedata.normalize("NFC", text),
                case_mismatches=notes, native_legacy_merges=native_legacy, legacy=legacy_merges)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "data", "tokenizer"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    text = make_text()
    with open(os.path.join(args.out, "text.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
    with open(os.path.join(args.out, "text.txt"), "rb") as f:
        assert f.read().decode("utf-8") == text
    print(f"text.txt: {len(text.encode('utf-8'))} bytes, {len(text)} code points, "
          f"NFC-stable: {unicodedata.normalize('NFC', text) == text}")

    sentences = corpus(text)
    results = [
        write_fixture("gpt2style", build_gpt2style(sentences), True, text, args.out),
        write_fixture("qwenstyle", build_qwenstyle(sentences), False, text, args.out),
        write_fixture("neoxstyle", build_neoxstyle(sentences), True, text, args.out),
    ]
    print(f"tokenizers {tokenizers.__version__}")
    for r in results:
        print(f"{r['name']}: vocab {r['vocab']}, text.txt -> {r['n_ids']} ids, "
              f"decode(encode(text)) == text: {r['text_roundtrip']}, == NFC(text): {r['text_nfc_roundtrip']}, "
              f"merges saved natively as {'strings' if r['native_legacy_merges'] else 'pairs'}, "
              f"written as {'strings' if r['legacy'] else 'pairs'}")
        for s, dec in r["case_mismatches"]:
            print(f"    case does not round-trip: {ascii(s)} -> {ascii(dec)}"
                  f"{'  (= NFC)' if dec == unicodedata.normalize('NFC', s) else ''}")


if __name__ == "__main__":
    main()
