#!/usr/bin/env python3
"""Generate runtime/tokenizer_unicode_data.h: the Unicode property sets that tokenizer.json
split patterns use, as `tokenizers` itself sees them.

Hugging Face `tokenizers` runs its regexes with Oniguruma (Unicode 16 tables in tokenizers
0.23); roe runs them with PCRE2, whose tables may be older (10.42: Unicode 14). roe therefore
spells every property class of a pattern out as explicit code point ranges from this table
(runtime/tokenizer_regex.c). The table is not taken from a Unicode database file: it is read
off `tokenizers` itself, by splitting every code point with a `Split(Regex("\\p{X}"))`
pre-tokenizer and recording which ones match, so roe gets exactly the sets the reference
uses (including Oniguruma's own definitions of \\w, \\d and \\s).

Checks, each fatal: every code point has at most one general category; each one-letter
category is the union of its two-letter ones; every code point that Python's unicodedata
(Unicode 14 in Python 3.11) assigns keeps its category, except the few that Unicode changed
since (listed).

Usage:  /work/venv/bin/python tools/make_unicode_tables.py [--out runtime/tokenizer_unicode_data.h]
"""

import argparse
import os
import sys
import unicodedata

import tokenizers
from tokenizers import Regex, normalizers, pre_tokenizers

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GC = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe",
      "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cn"]
AGGREGATES = {"L": ["Lu", "Ll", "Lt", "Lm", "Lo"], "M": ["Mn", "Mc", "Me"], "N": ["Nd", "Nl", "No"],
              "P": ["Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"], "S": ["Sm", "Sc", "Sk", "So"],
              "Z": ["Zs", "Zl", "Zp"], "C": ["Cc", "Cf", "Co", "Cn"]}
# Sets other than general categories: (name in the C table, Oniguruma pattern)
EXTRA = [("Word", r"\w"), ("Digit", r"\d"), ("Space", r"\s"),
         ("Han", r"\p{Han}"), ("Hiragana", r"\p{Hiragana}"), ("Katakana", r"\p{Katakana}"),
         ("Hangul", r"\p{Hangul}"), ("Latin", r"\p{Latin}"), ("Greek", r"\p{Greek}"),
         ("Cyrillic", r"\p{Cyrillic}"), ("Arabic", r"\p{Arabic}"), ("Hebrew", r"\p{Hebrew}"),
         ("Thai", r"\p{Thai}"), ("Devanagari", r"\p{Devanagari}")]

CODE_POINTS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


def members(pattern):
    """The code points `tokenizers` matches with `pattern` (one code point at a time)."""
    split = pre_tokenizers.Split(Regex(pattern), behavior="removed")
    out = set()
    step = 1 << 14
    for i in range(0, len(CODE_POINTS), step):
        chunk = CODE_POINTS[i:i + step]
        s = "".join(map(chr, chunk))
        covered = bytearray(len(chunk))
        for _, (a, b) in split.pre_tokenize_str(s):  # the non-matching runs (char offsets)
            covered[a:b] = b"\x01" * (b - a)
        out.update(cp for cp, c in zip(chunk, covered) if not c)
    return out


def norm_barriers(cat):
    """Code points that `tokenizers`' normalizers (unicode-normalization-alignments, whose data
    is Unicode 9) treat as inert starters although newer Unicode data gives them a combining
    class, a decomposition or a composition: every character assigned after Python's
    unicodedata version, and those of its version that `tokenizers` does not know. roe's
    normalizer splits the text at them (tokenizer_text.c), which is what an inert starter does."""
    nfd, nfkd, nfc = normalizers.NFD(), normalizers.NFKD(), normalizers.NFC()
    barriers = {c for c in CODE_POINTS if unicodedata.category(chr(c)) == "Cn" and cat[c] not in ("Cn", "Co")}
    pairs = {}
    for c in CODE_POINTS:
        d = unicodedata.decomposition(chr(c))
        if d and not d.startswith("<"):
            parts = [int(x, 16) for x in d.split()]
            if len(parts) == 2 and unicodedata.normalize("NFC", chr(parts[0]) + chr(parts[1])) == chr(c):
                pairs.setdefault(parts[0], []).append((parts[0], parts[1], c))
                pairs.setdefault(parts[1], []).append((parts[0], parts[1], c))
    known = unknown = 0
    for c in CODE_POINTS:
        ch = chr(c)
        relevant = unicodedata.combining(ch) or unicodedata.decomposition(ch) or c in pairs
        if not relevant or c in barriers:
            continue
        probes = [ch, "a\u0345" + ch, "a" + ch + "\u0316"]  # ccc: moves before 240, or after 220
        inert = (all(nfd.normalize_str(p) == p for p in probes) and nfkd.normalize_str(ch) == ch and
                 all(nfc.normalize_str(chr(a) + chr(b)) != chr(r) for a, b, r in pairs.get(c, [])))
        same = (all(nfd.normalize_str(p) == unicodedata.normalize("NFD", p) for p in probes) and
                nfkd.normalize_str(ch) == unicodedata.normalize("NFKD", ch) and
                all(nfc.normalize_str(chr(a) + chr(b)) == chr(r) for a, b, r in pairs.get(c, [])))
        if inert and not same:
            barriers.add(c)
            unknown += 1
        elif same:
            known += 1
        else:
            sys.exit(f"U+{c:04X}: tokenizers neither knows it as Unicode {unicodedata.unidata_version} does nor ignores it")
    print(f"normalization: {known} characters as in Unicode {unicodedata.unidata_version}, {unknown} of them unknown to "
          f"tokenizers; {len(barriers)} barriers in all")
    return barriers


def ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "runtime", "tokenizer_unicode_data.h"))
    args = ap.parse_args()

    cat = {}
    for g in GC:
        for c in members(r"\p{%s}" % g):
            if c in cat:
                sys.exit(f"U+{c:04X} is both {cat[c]} and {g}")
            cat[c] = g
    missing = [c for c in CODE_POINTS if c not in cat]
    if missing:
        sys.exit(f"{len(missing)} code points have no general category, e.g. U+{missing[0]:04X}")
    for agg, parts in AGGREGATES.items():
        got = members(r"\p{%s}" % agg)
        want = {c for c in CODE_POINTS if cat[c] in parts}
        if agg == "C":
            got = {c for c in got if not 0xD800 <= c <= 0xDFFF}
        if got != want:
            sys.exit(f"\\p{{{agg}}} is not the union of {parts}: {len(got ^ want)} differ")

    changed = []
    for c in CODE_POINTS:
        old = unicodedata.category(chr(c))
        if old != "Cn" and old != cat[c]:
            changed.append((c, old, cat[c]))
    new = sum(1 for c in CODE_POINTS if unicodedata.category(chr(c)) == "Cn" and cat[c] != "Cn")
    print(f"tokenizers {tokenizers.__version__}: {len(CODE_POINTS) - sum(1 for c in CODE_POINTS if cat[c] == 'Cn')} "
          f"assigned code points; {new} assigned since Unicode {unicodedata.unidata_version}; "
          f"{len(changed)} changed category since:")
    for c, old, now in changed:
        print(f"  U+{c:04X} {old} -> {now}")
    if len(changed) > 64:
        sys.exit("too many category changes: is this really Unicode 16?")

    # Unicode's own count of characters (graphic + format) names the version
    n_chars = sum(1 for c in CODE_POINTS if cat[c] not in ("Cn", "Co", "Cc"))
    version = {154998: "16.0.0", 159801: "17.0.0", 149813: "15.1.0", 149186: "15.0.0", 144697: "14.0.0"}.get(n_chars)
    if not version:
        sys.exit(f"{n_chars} characters: not a Unicode version this tool knows")
    print(f"Unicode {version} ({n_chars} characters)")

    # general category runs: each entry starts a run of one category
    runs = []
    prev = None
    for c in range(0x110000):
        g = "Cs" if 0xD800 <= c <= 0xDFFF else cat[c]
        if g != prev:
            runs.append((c, g))
            prev = g
    extra = [(name, ranges(members(pat))) for name, pat in EXTRA]
    barrier_ranges = ranges(norm_barriers(cat))
    # where Python's unicodedata (the Unicode version of PCRE2 10.40-10.42's tables) differs
    delta = []
    for c in CODE_POINTS:
        old = unicodedata.category(chr(c))
        if old != cat[c]:
            if delta and delta[-1][1] == c - 1 and delta[-1][2] == old:
                delta[-1][1] = c
            else:
                delta.append([c, c, old])

    cats = GC[:-1] + ["Cs", "Cn"]
    lines = [
        "/* tokenizer_unicode_data.h — GENERATED by tools/make_unicode_tables.py from `tokenizers` "
        f"{tokenizers.__version__}",
        " * (its Oniguruma's Unicode tables): do not edit. Included only by tokenizer_unicode.c. */",
        "",
        f'static const char roe__gc_version[] = "{version}"; /* the Unicode version of these tables */',
        "",
        "/* General categories, in this order (ROE__GC_*). */",
        "static const char *const roe__gc_names[] = {" + ", ".join(f'"{g}"' for g in cats) + "};",
        "",
        f"/* {len(runs)} runs: each code point from .start up to the next run's start has category .gc. */",
        "static const struct roe__gc_run roe__gc_runs[] = {",
    ]
    row = []
    for c, g in runs:
        row.append(f"{{0x{c:X}, {cats.index(g)}}}")
        if len(row) == 8:
            lines.append("    " + ", ".join(row) + ",")
            row = []
    if row:
        lines.append("    " + ", ".join(row) + ",")
    lines.append("};")
    lines += ["", f"/* Unicode {unicodedata.unidata_version} (Python's unicodedata) where it differs from the above: "
              f"{len(delta)} runs [first, last] with their category then. */",
              f'static const char roe__gc_old_version[] = "{unicodedata.unidata_version}";',
              "static const struct roe__gc_delta roe__gc_old_delta[] = {"]
    row = []
    for a, b, g in delta:
        row.append(f"{{0x{a:X}, 0x{b:X}, {cats.index(g)}}}")
        if len(row) == 6:
            lines.append("    " + ", ".join(row) + ",")
            row = []
    if row:
        lines.append("    " + ", ".join(row) + ",")
    lines.append("};")
    for name, rs in extra:
        lines.append("")
        pat = dict(EXTRA)[name]
        lines.append(f"/* {pat}: {sum(b - a + 1 for a, b in rs)} code points in {len(rs)} ranges */")
        lines.append(f"static const struct roe__cp_range roe__set_{name}[] = {{")
        row = []
        for a, b in rs:
            row.append(f"{{0x{a:X}, 0x{b:X}}}")
            if len(row) == 6:
                lines.append("    " + ", ".join(row) + ",")
                row = []
        if row:
            lines.append("    " + ", ".join(row) + ",")
        lines.append("};")
    lines.append("")
    lines.append(f"/* Normalization barriers: {len(barrier_ranges)} ranges (see norm_barriers in the tool). */")
    lines.append("static const struct roe__cp_range roe__norm_barriers[] = {")
    row = []
    for a, b in barrier_ranges:
        row.append(f"{{0x{a:X}, 0x{b:X}}}")
        if len(row) == 6:
            lines.append("    " + ", ".join(row) + ",")
            row = []
    if row:
        lines.append("    " + ", ".join(row) + ",")
    lines.append("};")
    lines.append("")
    lines.append("static const struct roe__named_set roe__named_sets[] = {")
    for name, _ in extra:
        lines.append(f'    {{"{name}", roe__set_{name}, sizeof roe__set_{name} / sizeof roe__set_{name}[0]}},')
    lines.append("};")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {len(runs)} category runs, " +
          ", ".join(f"{n} {len(r)} ranges" for n, r in extra))


if __name__ == "__main__":
    main()
