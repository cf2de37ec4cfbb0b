/*
 * tokenizer_regex.c — tokenizer.json regexes (Oniguruma, Ruby syntax, as `tokenizers` runs
 * them) translated to PCRE2 patterns that match the same strings, then compiled.
 *
 * The translation spells every construct whose meaning depends on Unicode data or on the
 * dialect out explicitly, so that PCRE2's own (older) tables and defaults never decide:
 *   \p{X} \P{X} \p{^X}    the set from our Unicode 16 tables (tokenizer_unicode.c), as a class
 *   \s \S \d \D \w \W     Oniguruma's White_Space, Nd and Word (= Alphabetic, marks, Nd, Pc,
 *                         join controls: unlike PCRE2 10.42's \w it has combining marks)
 *   \b \B                 lookarounds on that \w, so a combining mark is inside a word
 *   a class with any of those: the union of its items as one set, spelled again
 *   \h \H                 Ruby's hex digit (PCRE2's \h is horizontal space)
 *   \v                    U+000B (PCRE2's \v is vertical space)
 *   \uHHHH                \x{HHHH}
 *   {,n}                  {0,n} (PCRE2 10.42 reads "{,n}" as text)
 *   (?m)                  (?s): Ruby's m is PCRE2's dotall
 *   ^ $                   line anchors, as in Ruby (PCRE2_MULTILINE | PCRE2_ALT_CIRCUMFLEX,
 *                         newline LF: `.` and `$` treat only \n as a line end)
 * Refused, since the two engines would differ: a property inside (?i) (Oniguruma folds case
 * in \p{Lu}, PCRE2 does not), class intersection (&&), nested classes, POSIX brackets
 * ([:alpha:] is Alphabetic in Oniguruma), \X (grapheme clusters by version-dependent rules),
 * \Q...\E, \N, \p without braces, and the (?x) and other inline options.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "tokenizer_impl.h"

enum { ROE__RX_MAX_DEPTH = 64 };

struct roe__rx {
    const char *p; /* the pattern */
    size_t n, i;
    struct roe__buf out;
    size_t w;
    int mode;                           /* ROE__UCD_* */
    int caseless;                       /* (?i) in force */
    int saved[ROE__RX_MAX_DEPTH], depth; /* caseless at each open group */
    roe__uset set, tmp;
};

static roe_status roe__rx_refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static roe_status roe__rx_refuse(const char *fmt, ...) {
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return roe_fail(ROE_ERR_UNSUPPORTED, "%s", why);
}

static roe_status roe__rx_put(struct roe__rx *x, const char *s, size_t n) {
    ROE_TRY(roe__buf_reserve(&x->out, x->w + n + 1));
    memcpy(x->out.p + x->w, s, n);
    x->w += n;
    x->out.p[x->w] = '\0';
    return ROE_OK;
}

static roe_status roe__rx_puts(struct roe__rx *x, const char *s) {
    return roe__rx_put(x, s, strlen(s));
}

static int roe__hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads \p{...} / \P{...} at x->i (just past 'p' or 'P') into x->set (added, or its
 * complement added when negated). */
static roe_status roe__rx_property(struct roe__rx *x, int negated) {
    if (x->i >= x->n || x->p[x->i] != '{')
        return roe__rx_refuse("\\p without braces at offset %zu (Oniguruma does not read \\pL "
                              "as a property)", x->i);
    size_t start = ++x->i;
    while (x->i < x->n && x->p[x->i] != '}')
        x->i++;
    if (x->i >= x->n) return roe__rx_refuse("unterminated \\p{ at offset %zu", start);
    const char *name = x->p + start;
    size_t len = x->i - start;
    x->i++;
    if (len && name[0] == '^') negated = !negated, name++, len--;
    if (x->caseless)
        return roe__rx_refuse("\\p{%.*s} inside (?i) (Oniguruma folds case in a property, PCRE2 "
                              "does not)", (int)len, name);
    roe__uset_clear(&x->tmp);
    if (!roe__uset_add_property(&x->tmp, name, len))
        return roe__rx_refuse("the property \\p{%.*s} is not in roe's Unicode %s tables (general "
                              "categories; the scripts Han, Hiragana, Katakana, Hangul, Latin, "
                              "Greek, Cyrillic, Arabic, Hebrew, Thai, Devanagari)",
                              (int)len, name, roe__ucd_version());
    if (negated) roe__uset_invert(&x->tmp);
    roe__uset_or(&x->set, &x->tmp);
    return ROE_OK;
}

/* \s \S \d \D \w \W \h \H into x->set. */
static void roe__rx_class_escape(struct roe__rx *x, char d) {
    char lower = (char)(d | 0x20);
    roe__uset_clear(&x->tmp);
    if (lower == 'h') {
        roe__uset_add_range(&x->tmp, '0', '9');
        roe__uset_add_range(&x->tmp, 'a', 'f');
        roe__uset_add_range(&x->tmp, 'A', 'F');
    } else {
        roe__uset_add_class(&x->tmp, lower);
    }
    if (d != lower) roe__uset_invert(&x->tmp);
    roe__uset_or(&x->set, &x->tmp);
}

/* Writes x->set as a class: [set], or [^set] when negated. */
static roe_status roe__rx_emit_set(struct roe__rx *x, int negated) {
    if (roe__uset_empty(&x->set)) return roe__rx_puts(x, negated ? "[\\x{0}-\\x{10FFFF}]" : "(?!)");
    ROE_TRY(roe__rx_puts(x, negated ? "[^" : "["));
    ROE_TRY(roe__uset_spell(&x->set, x->mode, &x->out, &x->w));
    return roe__rx_puts(x, "]");
}

/* One literal character of a class (escapes resolved) at x->i; -1 if it is not one. */
static int32_t roe__rx_class_char(struct roe__rx *x) {
    const char *p = x->p;
    if (p[x->i] != '\\') {
        uint32_t cp;
        x->i += roe__utf8_decode(p, x->n, x->i, &cp);
        return (int32_t)cp;
    }
    if (x->i + 1 >= x->n) return -1;
    char d = p[x->i + 1];
    static const char simple[] = "n\nr\rt\tf\fv\va\ae\x1b";
    for (const char *s = simple; *s; s += 2)
        if (d == s[0]) return x->i += 2, (int32_t)(uint8_t)s[1];
    if (d == 'x' || d == 'u') {
        size_t j = x->i + 2;
        int brace = d == 'x' && j < x->n && p[j] == '{';
        if (brace) j++;
        uint32_t v = 0;
        int k = 0, max = brace ? 8 : d == 'u' ? 4 : 2;
        while (j < x->n && k < max && roe__hexval(p[j]) >= 0)
            v = v * 16 + (uint32_t)roe__hexval(p[j++]), k++;
        if (k == 0 || (d == 'u' && k != 4) || v > 0x10FFFF) return -1;
        if (brace) {
            if (j >= x->n || p[j] != '}') return -1;
            j++;
        }
        x->i = j;
        return (int32_t)v;
    }
    if ((d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') || (d >= '0' && d <= '9')) return -1;
    uint32_t cp; /* an escaped symbol stands for itself */
    x->i += 1 + roe__utf8_decode(p, x->n, x->i + 1, &cp);
    return (int32_t)cp;
}

/* Does the class starting at x->i ('[') need rewriting? Sets *end past its ']'. */
static roe_status roe__rx_class_scan(const struct roe__rx *x, size_t *end, int *needs) {
    size_t j = x->i + 1;
    *needs = 0;
    if (j < x->n && x->p[j] == '^') j++;
    if (j < x->n && x->p[j] == ']') j++;
    for (; j < x->n; j++) {
        char c = x->p[j];
        if (c == ']') {
            *end = j + 1;
            return ROE_OK;
        }
        if (c == '[')
            return roe__rx_refuse("a nested class or POSIX bracket at offset %zu (Oniguruma "
                                  "reads these differently from PCRE2)", j);
        if (c == '&' && j + 1 < x->n && x->p[j + 1] == '&')
            return roe__rx_refuse("class intersection && at offset %zu", j);
        if (c == '\\' && j + 1 < x->n) {
            if (strchr("sSdDwWhHpP", x->p[j + 1])) *needs = 1;
            j++;
        }
    }
    return roe__rx_refuse("unterminated class at offset %zu", x->i);
}

/* A class whose items include a property: parsed into one set and spelled out. */
static roe_status roe__rx_class_set(struct roe__rx *x, size_t end) {
    int negated = 0;
    x->i++;
    if (x->p[x->i] == '^') negated = 1, x->i++;
    roe__uset_clear(&x->set);
    int first = 1;
    while (x->i < end - 1) {
        const char *p = x->p;
        if (p[x->i] == '\\' && x->i + 1 < x->n && strchr("sSdDwWhHpP", p[x->i + 1])) {
            char d = p[x->i + 1];
            x->i += 2;
            if (d == 'p' || d == 'P')
                ROE_TRY(roe__rx_property(x, d == 'P'));
            else
                roe__rx_class_escape(x, d);
            first = 0;
            continue;
        }
        size_t at = x->i;
        int32_t a = (first && p[x->i] == ']') ? (x->i++, ']') : roe__rx_class_char(x);
        first = 0;
        if (a < 0) return roe__rx_refuse("an escape in a class at offset %zu", at);
        int32_t z = a;
        if (x->i + 1 < end - 1 && p[x->i] == '-') { /* a range, unless '-' ends the class */
            x->i++;
            at = x->i;
            z = roe__rx_class_char(x);
            if (z < 0 || z < a) return roe__rx_refuse("a bad range in a class at offset %zu", at);
        }
        roe__uset_add_range(&x->set, (uint32_t)a, (uint32_t)z);
    }
    x->i = end;
    if (x->caseless && !roe__uset_empty(&x->set))
        return roe__rx_refuse("a class with \\s, \\d, \\w or a property inside (?i)");
    return roe__rx_emit_set(x, negated);
}

static roe_status roe__rx_class(struct roe__rx *x) {
    size_t end = 0;
    int needs = 0;
    ROE_TRY(roe__rx_class_scan(x, &end, &needs));
    if (needs) return roe__rx_class_set(x, end);
    /* only literals: copied, with \v and \uHHHH spelled for PCRE2 */
    while (x->i < end) {
        if (x->p[x->i] == '\\' && x->i + 1 < end && (x->p[x->i + 1] == 'v' || x->p[x->i + 1] == 'u')) {
            int32_t c = roe__rx_class_char(x);
            if (c < 0) return roe__rx_refuse("a bad \\u escape in a class at offset %zu", x->i);
            char t[16];
            snprintf(t, sizeof t, "\\x{%X}", (unsigned)c);
            ROE_TRY(roe__rx_puts(x, t));
            continue;
        }
        size_t k = x->p[x->i] == '\\' && x->i + 1 < end ? 2 : 1;
        ROE_TRY(roe__rx_put(x, x->p + x->i, k));
        x->i += k;
    }
    return ROE_OK;
}

/* \b or \B as lookarounds on Oniguruma's \w. */
static roe_status roe__rx_boundary(struct roe__rx *x, int at_boundary) {
    roe__uset_clear(&x->set);
    roe__uset_add_class(&x->set, 'w');
    size_t w0 = x->w;
    ROE_TRY(roe__rx_puts(x, "["));
    ROE_TRY(roe__uset_spell(&x->set, x->mode, &x->out, &x->w));
    ROE_TRY(roe__rx_puts(x, "]"));
    size_t n = x->w - w0;
    char *cls = roe_strndup(x->out.p + w0, n);
    if (!cls) return roe_fail(ROE_ERR_NOMEM, "tokenizer: regex: \\b");
    x->w = w0;
    const char *parts[] = {"(?:(?<=", cls, at_boundary ? ")(?!" : ")(?=", cls, ")|(?<!", cls,
                           at_boundary ? ")(?=" : ")(?!", cls, "))"};
    roe_status st = ROE_OK;
    for (size_t k = 0; k < sizeof parts / sizeof parts[0] && st == ROE_OK; k++)
        st = roe__rx_puts(x, parts[k]);
    roe_free(cls);
    return st;
}

/* An escape outside a class, at x->i ('\\'). */
static roe_status roe__rx_escape(struct roe__rx *x) {
    if (x->i + 1 >= x->n) return roe__rx_refuse("a trailing backslash");
    char d = x->p[x->i + 1];
    if (strchr("sSdDwWhHpP", d)) {
        x->i += 2;
        roe__uset_clear(&x->set);
        int negated = 0;
        if (d == 'p' || d == 'P') {
            ROE_TRY(roe__rx_property(x, 0));
            negated = d == 'P';
        } else {
            roe__rx_class_escape(x, (char)(d | 0x20)); /* the set; negation as [^...] */
            negated = d != (char)(d | 0x20);
        }
        return roe__rx_emit_set(x, negated);
    }
    if (d == 'b' || d == 'B') {
        x->i += 2;
        return roe__rx_boundary(x, d == 'b');
    }
    if (d == 'v' || d == 'u') {
        size_t at = x->i;
        int32_t c = roe__rx_class_char(x);
        if (c < 0) return roe__rx_refuse("a bad \\%c escape at offset %zu", d, at);
        char t[16];
        snprintf(t, sizeof t, "\\x{%X}", (unsigned)c);
        return roe__rx_puts(x, t);
    }
    if (strchr("XQENC", d))
        return roe__rx_refuse("\\%c at offset %zu is not supported (the engines differ)", d, x->i);
    ROE_TRY(roe__rx_put(x, x->p + x->i, 2));
    x->i += 2;
    return ROE_OK;
}

/* "(?" at x->i: inline options and group kinds. */
static roe_status roe__rx_group_open(struct roe__rx *x) {
    if (x->depth == ROE__RX_MAX_DEPTH) return roe__rx_refuse("groups nested deeper than %d", ROE__RX_MAX_DEPTH);
    const char *p = x->p;
    size_t j = x->i + 2;
    int on = 1, cl = x->caseless, is_opt = 0;
    char flags[16];
    size_t nf = 0;
    while (j < x->n && strchr("imx-", p[j])) {
        char c = p[j++];
        is_opt = 1;
        if (c == '-') on = 0;
        else if (c == 'x') return roe__rx_refuse("the (?x) option");
        else if (c == 'i') cl = on;
        if (nf + 1 < sizeof flags) flags[nf++] = c == 'm' ? 's' : c; /* Ruby's m is dotall */
    }
    if (is_opt && j < x->n && (p[j] == ')' || p[j] == ':')) {
        ROE_TRY(roe__rx_puts(x, "(?"));
        ROE_TRY(roe__rx_put(x, flags, nf));
        ROE_TRY(roe__rx_put(x, p + j, 1));
        x->i = j + 1;
        if (p[j] == ')') { /* to the end of the enclosing group */
            x->caseless = cl;
            return ROE_OK;
        }
        x->saved[x->depth++] = x->caseless;
        x->caseless = cl;
        return ROE_OK;
    }
    if (is_opt) return roe__rx_refuse("inline options at offset %zu", x->i);
    x->saved[x->depth++] = x->caseless;
    ROE_TRY(roe__rx_put(x, p + x->i, 2));
    x->i += 2;
    return ROE_OK;
}

static roe_status roe__rx_step(struct roe__rx *x) {
    const char *p = x->p;
    char c = p[x->i];
    if (c == '\\') return roe__rx_escape(x);
    if (c == '[') return roe__rx_class(x);
    if (c == '(' && x->i + 1 < x->n && p[x->i + 1] == '?') return roe__rx_group_open(x);
    if (c == '(') {
        if (x->depth == ROE__RX_MAX_DEPTH) return roe__rx_refuse("groups nested too deep");
        x->saved[x->depth++] = x->caseless;
    } else if (c == ')' && x->depth > 0) {
        x->caseless = x->saved[--x->depth];
    } else if (c == '{' && x->i + 1 < x->n && p[x->i + 1] == ',') {
        size_t j = x->i + 2;
        while (j < x->n && p[j] >= '0' && p[j] <= '9')
            j++;
        if (j > x->i + 2 && j < x->n && p[j] == '}') { /* {,n} is {0,n} in Ruby */
            x->i++;
            return roe__rx_puts(x, "{0");
        }
    }
    ROE_TRY(roe__rx_put(x, p + x->i, 1));
    x->i++;
    return ROE_OK;
}

roe_status roe__regex_translate(const char *pattern, size_t len, int mode, char **out, size_t *out_len) {
    struct roe__rx x = {.p = pattern, .n = len, .mode = mode};
    roe_status st = ROE_OK;
    *out = NULL;
    ROE_CHECK(roe__uset_init(&x.set));
    ROE_CHECK(roe__uset_init(&x.tmp));
    ROE_CHECK(roe__rx_puts(&x, ""));
    while (x.i < x.n)
        ROE_CHECK(roe__rx_step(&x));
    *out = x.out.p;
    *out_len = x.w;
    x.out.p = NULL;
fail:
    roe_free(x.out.p);
    roe__uset_free(&x.set);
    roe__uset_free(&x.tmp);
    return st;
}

roe_status roe__regex_compile(const roe_tokenizer *t, const char *path, const char *field,
                              const char *pattern, int literal, pcre2_code **out) {
    size_t len = strlen(pattern);
    char *rewritten = NULL;
    const char *p = pattern;
    if (!literal) {
        roe_status st = roe__regex_translate(pattern, len, roe__ucd_pcre2_mode(), &rewritten, &len);
        if (st != ROE_OK)
            return roe_fail_context(st, "%s: %s: the regex \"%s\"", path, field, pattern);
        p = rewritten;
    }
    pcre2_compile_context *cc = pcre2_compile_context_create(t->pcre_gctx);
    if (!cc) {
        roe_free(rewritten);
        return roe_fail(ROE_ERR_NOMEM, "%s: %s: PCRE2 compile context", path, field);
    }
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    pcre2_set_bsr(cc, PCRE2_BSR_UNICODE);
    int err = 0;
    PCRE2_SIZE at = 0;
    uint32_t opts = literal ? PCRE2_UTF | PCRE2_LITERAL
                            : PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_ALT_CIRCUMFLEX;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)p, len, opts, &err, &at, cc);
    pcre2_compile_context_free(cc);
    roe_free(rewritten);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return roe_fail(err == PCRE2_ERROR_HEAP_FAILED || err == PCRE2_ERROR_NOMEMORY ? ROE_ERR_NOMEM
                                                                                      : ROE_ERR_UNSUPPORTED,
                        "%s: %s: cannot compile the regex \"%s\": %s", path, field, pattern, (const char *)msg);
    }
    /* JIT is an optimisation: on failure pcre2_match interprets. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return ROE_OK;
}
