/*
 * tokenizer_unicode.c — the Unicode property sets of tokenizer regexes, as `tokenizers` sees
 * them (Unicode 16, read off its Oniguruma by tools/make_unicode_tables.py into
 * tokenizer_unicode_data.h), and their spelling as PCRE2 character classes.
 *
 * PCRE2 10.42 knows Unicode 14: its \p{L} misses the ~10,000 characters of Unicode 15 and 16
 * (emoji such as U+1FA77, CJK extension H/I, new scripts). A class is therefore written out
 * from our table. To keep PCRE2's O(1) property lookups for the bulk of each set, the class
 * is spelled as the PCRE2 categories wholly inside the set *by PCRE2's own tables* plus the
 * code point ranges those miss: for \p{L} under PCRE2 10.42 that is
 * [\p{L}<the letters added in Unicode 15 and 16>]. The categories' extent in PCRE2's tables
 * is known exactly when PCRE2 reports a Unicode version we hold a table for (16.0.0, or the
 * 14.0.0 delta); for any other version no PCRE2 property is used and the set is all ranges.
 */
#include <stdio.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/alloc.h"
#include "tokenizer_impl.h"

struct roe__gc_run {
    uint32_t start;
    uint8_t gc;
};
struct roe__gc_delta {
    uint32_t first, last;
    uint8_t gc;
};
struct roe__cp_range {
    uint32_t first, last;
};
struct roe__named_set {
    const char *name;
    const struct roe__cp_range *r;
    size_t n;
};

#include "tokenizer_unicode_data.h"

enum { ROE__N_GC = (int)(sizeof roe__gc_names / sizeof roe__gc_names[0]) };
enum { ROE__GC_CS = 28, ROE__GC_CN = 29 }; /* positions in roe__gc_names */
enum { ROE__SUR_FIRST = 0xD800, ROE__SUR_LAST = 0xDFFF };

/* ---- lookups ------------------------------------------------------------------------------- */

int roe__ucd_gc(uint32_t cp) {
    size_t lo = 0, hi = sizeof roe__gc_runs / sizeof roe__gc_runs[0];
    if (cp >= ROE__UCP_MAX) return ROE__GC_CN;
    while (hi - lo > 1) { /* the last run starting at or before cp */
        size_t mid = (lo + hi) / 2;
        if (roe__gc_runs[mid].start <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return roe__gc_runs[lo].gc;
}

static int roe__in_ranges(const struct roe__cp_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].first)
            hi = mid;
        else if (cp > r[mid].last)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

static const struct roe__named_set *roe__named(const char *name) {
    for (size_t i = 0; i < sizeof roe__named_sets / sizeof roe__named_sets[0]; i++)
        if (strcmp(roe__named_sets[i].name, name) == 0) return &roe__named_sets[i];
    return NULL;
}

/* The Rust regex crate's \w (added tokens' single_word): Oniguruma's Word plus the join
 * controls U+200C and U+200D (UTS #18 lists them; Oniguruma leaves them out). */
int roe__is_word(uint32_t cp) {
    if (cp == 0x200C || cp == 0x200D) return 1;
    return cp < 0x80 ? (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') ||
                           (cp >= 'A' && cp <= 'Z') || cp == '_'
                     : roe__in_ranges(roe__set_Word, sizeof roe__set_Word / sizeof roe__set_Word[0], cp);
}

int roe__is_whitespace(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

int roe__is_norm_barrier(uint32_t cp) {
    return roe__in_ranges(roe__norm_barriers, sizeof roe__norm_barriers / sizeof roe__norm_barriers[0], cp);
}

const char *roe__ucd_version(void) {
    return roe__gc_version;
}

/* ---- sets ---------------------------------------------------------------------------------- */

roe_status roe__uset_init(roe__uset *s) {
    s->bits = roe_calloc(ROE__USET_WORDS, sizeof *s->bits);
    if (!s->bits) return roe_fail(ROE_ERR_NOMEM, "tokenizer: a Unicode set (%d words)", ROE__USET_WORDS);
    return ROE_OK;
}

void roe__uset_free(roe__uset *s) {
    roe_free(s->bits);
    s->bits = NULL;
}

void roe__uset_clear(roe__uset *s) {
    memset(s->bits, 0, ROE__USET_WORDS * sizeof *s->bits);
}

int roe__uset_has(const roe__uset *s, uint32_t cp) {
    return cp < ROE__UCP_MAX && (s->bits[cp >> 6] >> (cp & 63) & 1);
}

void roe__uset_add_range(roe__uset *s, uint32_t a, uint32_t b) {
    if (b >= ROE__UCP_MAX) b = ROE__UCP_MAX - 1;
    for (uint32_t c = a; c <= b;) {
        if ((c & 63) == 0 && b - c >= 63) {
            s->bits[c >> 6] = ~(uint64_t)0;
            c += 64;
        } else {
            s->bits[c >> 6] |= (uint64_t)1 << (c & 63);
            c++;
        }
    }
}

/* Code points whose category (by the current tables) is in `cats` (a bitmask over
 * roe__gc_names); `old`: by the older tables of roe__gc_old_delta. */
static void roe__uset_add_gc(roe__uset *s, uint64_t cats, int old) {
    const size_t n = sizeof roe__gc_runs / sizeof roe__gc_runs[0];
    for (size_t i = 0; i < n; i++) {
        uint32_t end = i + 1 < n ? roe__gc_runs[i + 1].start - 1 : ROE__UCP_MAX - 1;
        if (cats >> roe__gc_runs[i].gc & 1) roe__uset_add_range(s, roe__gc_runs[i].start, end);
    }
    if (!old) return;
    for (size_t i = 0; i < sizeof roe__gc_old_delta / sizeof roe__gc_old_delta[0]; i++) {
        const struct roe__gc_delta *d = &roe__gc_old_delta[i];
        for (uint32_t c = d->first; c <= d->last; c++) {
            if (cats >> d->gc & 1)
                s->bits[c >> 6] |= (uint64_t)1 << (c & 63);
            else
                s->bits[c >> 6] &= ~((uint64_t)1 << (c & 63));
        }
    }
}

/* Oniguruma compares property names ignoring case, spaces, '-' and '_'. */
static void roe__prop_key(const char *name, size_t len, char *key, size_t cap) {
    size_t w = 0;
    for (size_t i = 0; i < len && w + 1 < cap; i++) {
        char c = name[i];
        if (c == ' ' || c == '-' || c == '_') continue;
        key[w++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    key[w] = '\0';
}

/* The categories of a general-category name (short or long), as a bitmask; 0 if unknown. */
static uint64_t roe__gc_mask(const char *key) {
    static const struct {
        const char *name, *cats;
    } agg[] = {
        {"l", "Lu Ll Lt Lm Lo"},    {"letter", "Lu Ll Lt Lm Lo"},  {"lc", "Lu Ll Lt"},
        {"casedletter", "Lu Ll Lt"}, {"m", "Mn Mc Me"},             {"mark", "Mn Mc Me"},
        {"n", "Nd Nl No"},          {"number", "Nd Nl No"},        {"p", "Pc Pd Ps Pe Pi Pf Po"},
        {"punctuation", "Pc Pd Ps Pe Pi Pf Po"}, {"s", "Sm Sc Sk So"}, {"symbol", "Sm Sc Sk So"},
        {"z", "Zs Zl Zp"},          {"separator", "Zs Zl Zp"},     {"c", "Cc Cf Cs Co Cn"},
        {"other", "Cc Cf Cs Co Cn"}, {"uppercaseletter", "Lu"},   {"lowercaseletter", "Ll"},
        {"titlecaseletter", "Lt"},  {"modifierletter", "Lm"},      {"otherletter", "Lo"},
        {"nonspacingmark", "Mn"},   {"spacingmark", "Mc"},         {"enclosingmark", "Me"},
        {"decimalnumber", "Nd"},    {"letternumber", "Nl"},        {"othernumber", "No"},
        {"connectorpunctuation", "Pc"}, {"dashpunctuation", "Pd"}, {"openpunctuation", "Ps"},
        {"closepunctuation", "Pe"}, {"initialpunctuation", "Pi"},  {"finalpunctuation", "Pf"},
        {"otherpunctuation", "Po"}, {"mathsymbol", "Sm"},          {"currencysymbol", "Sc"},
        {"modifiersymbol", "Sk"},   {"othersymbol", "So"},         {"spaceseparator", "Zs"},
        {"lineseparator", "Zl"},    {"paragraphseparator", "Zp"},  {"control", "Cc"},
        {"format", "Cf"},           {"surrogate", "Cs"},           {"privateuse", "Co"},
        {"unassigned", "Cn"},       {"any", "Lu Ll Lt Lm Lo Mn Mc Me Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc "
                                            "Sk So Zs Zl Zp Cc Cf Cs Co Cn"},
    };
    for (int g = 0; g < ROE__N_GC; g++) {
        char k[4];
        roe__prop_key(roe__gc_names[g], 2, k, sizeof k);
        if (strcmp(k, key) == 0) return (uint64_t)1 << g;
    }
    for (size_t i = 0; i < sizeof agg / sizeof agg[0]; i++) {
        if (strcmp(agg[i].name, key) != 0) continue;
        uint64_t m = 0;
        for (const char *c = agg[i].cats; *c; c += c[2] ? 3 : 2)
            for (int g = 0; g < ROE__N_GC; g++)
                if (memcmp(roe__gc_names[g], c, 2) == 0) m |= (uint64_t)1 << g;
        return m;
    }
    return 0;
}

int roe__uset_add_property(roe__uset *s, const char *name, size_t len) {
    char key[64];
    if (len >= sizeof key) return 0;
    roe__prop_key(name, len, key, sizeof key);
    const uint64_t cats = roe__gc_mask(key);
    if (cats) {
        roe__uset_add_gc(s, cats, 0);
        return 1;
    }
    for (size_t i = 0; i < sizeof roe__named_sets / sizeof roe__named_sets[0]; i++) {
        char k[64];
        const struct roe__named_set *ns = &roe__named_sets[i];
        if (strcmp(ns->name, "Word") == 0 || strcmp(ns->name, "Digit") == 0 ||
            strcmp(ns->name, "Space") == 0)
            continue; /* \w \d \s, not property names */
        roe__prop_key(ns->name, strlen(ns->name), k, sizeof k);
        if (strcmp(k, key) != 0) continue;
        for (size_t r = 0; r < ns->n; r++)
            roe__uset_add_range(s, ns->r[r].first, ns->r[r].last);
        return 1;
    }
    return 0;
}

void roe__uset_add_class(roe__uset *s, char which) {
    const char *name = which == 'w' ? "Word" : which == 'd' ? "Digit" : "Space";
    const struct roe__named_set *ns = roe__named(name);
    for (size_t r = 0; r < ns->n; r++)
        roe__uset_add_range(s, ns->r[r].first, ns->r[r].last);
}

void roe__uset_invert(roe__uset *s) {
    for (size_t i = 0; i < ROE__USET_WORDS; i++)
        s->bits[i] = ~s->bits[i];
}

void roe__uset_or(roe__uset *dst, const roe__uset *src) {
    for (size_t i = 0; i < ROE__USET_WORDS; i++)
        dst->bits[i] |= src->bits[i];
}

int roe__uset_empty(const roe__uset *s) {
    for (size_t i = 0; i < ROE__USET_WORDS; i++)
        if (s->bits[i] && !(i >= ROE__SUR_FIRST / 64 && i <= ROE__SUR_LAST / 64)) return 0;
    return 1;
}

/* ---- spelling a set as a PCRE2 class body --------------------------------------------------- */

int roe__ucd_pcre2_mode(void) {
    char v[32] = {0};
    if (pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, v) < 0) return ROE__UCD_RANGES;
    if (strcmp(v, roe__gc_version) == 0) return ROE__UCD_SAME;
    if (strcmp(v, roe__gc_old_version) == 0) return ROE__UCD_OLD;
    return ROE__UCD_RANGES;
}

static roe_status roe__emit(struct roe__buf *b, size_t *w, const char *s) {
    size_t n = strlen(s);
    ROE_TRY(roe__buf_reserve(b, *w + n + 1));
    memcpy(b->p + *w, s, n + 1);
    *w += n;
    return ROE_OK;
}

static roe_status roe__emit_range(struct roe__buf *b, size_t *w, uint32_t a, uint32_t z) {
    char t[48];
    if (a == z)
        snprintf(t, sizeof t, "\\x{%X}", (unsigned)a);
    else
        snprintf(t, sizeof t, "\\x{%X}-\\x{%X}", (unsigned)a, (unsigned)z);
    return roe__emit(b, w, t);
}

/* Membership for spelling: surrogates never occur in valid UTF-8, so they join whichever
 * side keeps the ranges fewest (and no range ends on one, which PCRE2 would refuse). */
static int roe__spell_has(const roe__uset *s, uint32_t c) {
    if (c >= ROE__SUR_FIRST && c <= ROE__SUR_LAST)
        return roe__uset_has(s, ROE__SUR_FIRST - 1) && roe__uset_has(s, ROE__SUR_LAST + 1);
    return roe__uset_has(s, c);
}

/* Are all of [a, b] in s? */
static int roe__uset_has_range(const roe__uset *s, uint32_t a, uint32_t b) {
    for (uint32_t c = a; c <= b;) {
        if ((c & 63) == 0 && b - c >= 63) {
            if (s->bits[c >> 6] != ~(uint64_t)0) return 0;
            c += 64;
        } else {
            if (!(s->bits[c >> 6] >> (c & 63) & 1)) return 0;
            c++;
        }
    }
    return 1;
}

/* The PCRE2 categories wholly inside s by PCRE2's tables (mode), as a mask over gc names:
 * one pass over the category runs (with the older tables' exceptions set aside, then
 * checked by their own category). */
static roe_status roe__base_cats(const roe__uset *s, int mode, uint64_t *out) {
    *out = 0;
    if (mode == ROE__UCD_RANGES) return ROE_OK;
    const size_t n_runs = sizeof roe__gc_runs / sizeof roe__gc_runs[0];
    const size_t n_delta = sizeof roe__gc_old_delta / sizeof roe__gc_old_delta[0];
    roe__uset w = {0}; /* s, plus the code points whose older category is another */
    ROE_TRY(roe__uset_init(&w));
    memcpy(w.bits, s->bits, ROE__USET_WORDS * sizeof *w.bits);
    for (size_t i = 0; mode == ROE__UCD_OLD && i < n_delta; i++)
        roe__uset_add_range(&w, roe__gc_old_delta[i].first, roe__gc_old_delta[i].last);
    uint64_t outside = (uint64_t)1 << ROE__GC_CS, present = 0;
    for (size_t i = 0; i < n_runs; i++) {
        const uint32_t end = i + 1 < n_runs ? roe__gc_runs[i + 1].start - 1 : ROE__UCP_MAX - 1;
        const int g = roe__gc_runs[i].gc;
        present |= (uint64_t)1 << g;
        if (!(outside >> g & 1) && !roe__uset_has_range(&w, roe__gc_runs[i].start, end))
            outside |= (uint64_t)1 << g;
    }
    for (size_t i = 0; mode == ROE__UCD_OLD && i < n_delta; i++) {
        const struct roe__gc_delta *d = &roe__gc_old_delta[i];
        present |= (uint64_t)1 << d->gc;
        if (!roe__uset_has_range(s, d->first, d->last)) outside |= (uint64_t)1 << d->gc;
    }
    roe__uset_free(&w);
    *out = present & ~outside;
    return ROE_OK;
}

roe_status roe__uset_spell(const roe__uset *s, int mode, struct roe__buf *b, size_t *w) {
    uint64_t base;
    ROE_TRY(roe__base_cats(s, mode, &base));
    roe__uset rest = {0};
    ROE_TRY(roe__uset_init(&rest));
    memcpy(rest.bits, s->bits, ROE__USET_WORDS * sizeof *rest.bits);
    roe_status st = ROE_OK;
    if (base) {
        roe__uset covered = {0};
        ROE_CHECK(roe__uset_init(&covered));
        roe__uset_add_gc(&covered, base, mode == ROE__UCD_OLD);
        for (size_t i = 0; i < ROE__USET_WORDS; i++)
            rest.bits[i] &= ~covered.bits[i];
        roe__uset_free(&covered);
        /* one-letter categories where all their parts are in */
        static const char *const groups[] = {"L", "M", "N", "P", "S", "Z"};
        for (size_t k = 0; k < sizeof groups / sizeof groups[0]; k++) {
            char key[2] = {(char)(groups[k][0] - 'A' + 'a'), 0};
            const uint64_t m = roe__gc_mask(key);
            if ((base & m) != m) continue;
            char t[8];
            snprintf(t, sizeof t, "\\p{%s}", groups[k]);
            ROE_CHECK(roe__emit(b, w, t));
            base &= ~m;
        }
        for (int g = 0; g < ROE__N_GC; g++) {
            if (!(base >> g & 1)) continue;
            char t[8];
            snprintf(t, sizeof t, "\\p{%s}", roe__gc_names[g]);
            ROE_CHECK(roe__emit(b, w, t));
        }
    }
    for (uint32_t c = 0; c < ROE__UCP_MAX;) {
        if ((c & 63) == 0 && rest.bits[c >> 6] == 0 && !(c >= ROE__SUR_FIRST && c <= ROE__SUR_LAST)) {
            c += 64; /* an empty word */
            continue;
        }
        if (!roe__spell_has(&rest, c)) {
            c++;
            continue;
        }
        uint32_t e = c;
        while (e + 1 < ROE__UCP_MAX && roe__spell_has(&rest, e + 1))
            e++;
        uint32_t a = c, z = e; /* trim surrogates off the ends */
        if (a >= ROE__SUR_FIRST && a <= ROE__SUR_LAST) a = ROE__SUR_LAST + 1;
        if (z >= ROE__SUR_FIRST && z <= ROE__SUR_LAST) z = ROE__SUR_FIRST - 1;
        if (a <= z) ROE_CHECK(roe__emit_range(b, w, a, z));
        c = e + 1;
    }
fail:
    roe__uset_free(&rest);
    return st;
}
