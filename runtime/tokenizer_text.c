/*
 * tokenizer_text.c — text-level pieces of the tokenizer: UTF-8, the GPT-2 byte map,
 * normalizers (utf8proc), pre-tokenizer regex splitting (PCRE2) and the added-token trie.
 *
 * The regexes themselves are translated from Oniguruma's dialect in tokenizer_regex.c.
 */
#include <string.h>

#include <utf8proc.h>

#include "base/alloc.h"
#include "tokenizer_impl.h"

/* ---- UTF-8 --------------------------------------------------------------------------------- */

int roe__utf8_valid(const char *s, size_t n, size_t *bad) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0; /* overlong */
            if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90; /* overlong */
            if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
        } else {
            *bad = i;
            return 0;
        }
        if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) {
            *bad = i;
            return 0;
        }
        for (size_t k = 2; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                *bad = i;
                return 0;
            }
        }
        i += len;
    }
    return 1;
}

size_t roe__utf8_decode(const char *s, size_t n, size_t i, uint32_t *cp) {
    const uint8_t *p = (const uint8_t *)s + i;
    (void)n;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] < 0xE0) {
        *cp = (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
        return 2;
    }
    if (p[0] < 0xF0) {
        *cp = (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
        return 3;
    }
    *cp = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
          (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    return 4;
}

size_t roe__utf8_prev(const char *s, size_t i) {
    do
        i--;
    while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80);
    return i;
}

size_t roe__utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2's bytes_to_unicode: the printable bytes 33..126, 161..172 and 174..255 stand for
 * themselves; the other 68 bytes, in increasing order, take the code points 256, 257, ... */
void roe__bytemap_init(uint16_t byte_to_cp[256], int16_t cp_to_byte[324]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        byte_to_cp[b] = (uint16_t)(printable ? b : 256 + n++);
    }
    for (int c = 0; c < 324; c++)
        cp_to_byte[c] = -1;
    for (int b = 0; b < 256; b++)
        cp_to_byte[byte_to_cp[b]] = (int16_t)b;
}

/* ---- normalizers --------------------------------------------------------------------------- */

int roe__norm_options(const char *type) {
    if (strcmp(type, "NFC") == 0) return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    if (strcmp(type, "NFD") == 0) return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    if (strcmp(type, "NFKC") == 0) return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    if (strcmp(type, "NFKD") == 0) return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    return -1;
}

roe_status roe__buf_reserve(struct roe__buf *b, size_t n) {
    if (n <= b->cap) return ROE_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < n) {
        if (cap > SIZE_MAX / 2) return roe_fail(ROE_ERR_NOMEM, "tokenizer: buffer of %zu bytes", n);
        cap *= 2;
    }
    char *p = roe_realloc(b->p, cap);
    if (!p) return roe_fail(ROE_ERR_NOMEM, "tokenizer: encode: buffer of %zu bytes", cap);
    b->p = p;
    b->cap = cap;
    return ROE_OK;
}

/* One Unicode normal form of cur[0..n) into b, by utf8proc. */
static roe_status roe__norm_utf8proc(int options, const char *cur, size_t n, struct roe__buf *b,
                                     size_t *len) {
    utf8proc_option_t opts = (utf8proc_option_t)options;
    if (n > (size_t)PTRDIFF_MAX / 8)
        return roe_fail(ROE_ERR_INVALID_ARG, "tokenizer: encode: text of %zu bytes is too long", n);
    /* Same steps as utf8proc_map, into our own buffer: decompose to UTF-32 (size query,
     * then fill), then reencode in place (which composes if asked). */
    utf8proc_ssize_t need =
        utf8proc_decompose((const utf8proc_uint8_t *)cur, (utf8proc_ssize_t)n, NULL, 0, opts);
    if (need < 0) return roe_fail(ROE_ERR_INTERNAL, "tokenizer: normalizer: %s", utf8proc_errmsg(need));
    ROE_TRY(roe__buf_reserve(b, ((size_t)need + 1) * sizeof(utf8proc_int32_t)));
    utf8proc_int32_t *u = (utf8proc_int32_t *)(void *)b->p;
    utf8proc_ssize_t got =
        utf8proc_decompose((const utf8proc_uint8_t *)cur, (utf8proc_ssize_t)n, u, need, opts);
    if (got != need) return roe_fail(ROE_ERR_INTERNAL, "tokenizer: normalizer: decomposition size changed");
    utf8proc_ssize_t r = utf8proc_reencode(u, got, opts);
    if (r < 0) return roe_fail(ROE_ERR_INTERNAL, "tokenizer: normalizer: %s", utf8proc_errmsg(r));
    *len = (size_t)r;
    return ROE_OK;
}

/* The first normalization barrier in s[from..n) (n if none). */
static size_t roe__next_barrier(const char *s, size_t n, size_t from) {
    for (size_t i = from; i < n;) {
        uint32_t cp;
        size_t l = roe__utf8_decode(s, n, i, &cp);
        if (cp >= 0x300 && roe__is_norm_barrier(cp)) return i;
        i += l;
    }
    return n;
}

/* One Unicode normal form as `tokenizers` computes it: its tables are Unicode 9's, so a
 * character they lack is an inert starter (roe__is_norm_barrier); the text is normalized
 * piecewise between such characters, which are kept as they are. */
static roe_status roe__norm_unicode(int options, const char *cur, size_t n, struct roe__buf *b,
                                    size_t *len) {
    size_t at = roe__next_barrier(cur, n, 0);
    if (at == n) return roe__norm_utf8proc(options, cur, n, b, len);
    struct roe__buf tmp = {0};
    roe_status st = ROE_OK;
    size_t w = 0, from = 0;
    while (from < n) {
        size_t seg;
        if (at > from) {
            ROE_CHECK(roe__norm_utf8proc(options, cur + from, at - from, &tmp, &seg));
            ROE_CHECK(roe__buf_reserve(b, w + seg + 1));
            memcpy(b->p + w, tmp.p, seg);
            w += seg;
        }
        if (at < n) {
            uint32_t cp;
            size_t l = roe__utf8_decode(cur, n, at, &cp);
            ROE_CHECK(roe__buf_reserve(b, w + l + 1));
            memcpy(b->p + w, cur + at, l);
            w += l;
            at += l;
        }
        from = at;
        at = roe__next_barrier(cur, n, from);
    }
    *len = w;
fail:
    roe_free(tmp.p);
    return st;
}

/* Replace: every match of re in cur[0..n) becomes `text` (NormalizedString::replace). */
static roe_status roe__norm_replace(const struct roe__norm *nm, pcre2_match_data *md,
                                    struct roe__spans *sp, const char *cur, size_t n,
                                    struct roe__buf *b, size_t *len) {
    ROE_TRY(roe__find_matches(nm->re, md, cur, n, sp));
    size_t w = 0;
    for (size_t i = 0; i < sp->n; i++) {
        const struct roe__span *v = &sp->v[i];
        const char *src = v->is_match ? nm->text : cur + v->start;
        size_t k = v->is_match ? nm->n_text : v->end - v->start;
        ROE_TRY(roe__buf_reserve(b, w + k + 1));
        memcpy(b->p + w, src, k);
        w += k;
    }
    *len = w;
    return ROE_OK;
}

static int roe__norms_unicode_only(const roe_tokenizer *t) {
    for (int k = 0; k < t->n_norms; k++)
        if (t->norms[k].kind != ROE__NORM_UNICODE) return 0;
    return 1;
}

roe_status roe__normalize(const roe_tokenizer *t, const char *s, size_t n, struct roe__buf ucs[2],
                          const char **out, size_t *n_out) {
    *out = s;
    *n_out = n;
    size_t i = 0;
    while (i < n && (uint8_t)s[i] < 0x80)
        i++;
    if (t->n_norms == 0 || (i == n && roe__norms_unicode_only(t)))
        return ROE_OK; /* every normal form leaves ASCII alone */
    pcre2_match_data *md = NULL;
    struct roe__spans sp = {0};
    roe_status st = ROE_OK;
    const char *cur = s;
    size_t cur_n = n;
    for (int k = 0; k < t->n_norms; k++) {
        const struct roe__norm *nm = &t->norms[k];
        struct roe__buf *b = cur == ucs[0].p ? &ucs[1] : &ucs[0]; /* never the one read */
        size_t len = 0;
        if (nm->kind == ROE__NORM_UNICODE) {
            ROE_CHECK(roe__norm_unicode(nm->opts, cur, cur_n, b, &len));
        } else if (nm->kind == ROE__NORM_PREPEND) {
            if (cur_n == 0) continue; /* Prepend leaves an empty string alone */
            ROE_CHECK(roe__buf_reserve(b, nm->n_text + cur_n + 1));
            memcpy(b->p, nm->text, nm->n_text);
            memcpy(b->p + nm->n_text, cur, cur_n);
            len = nm->n_text + cur_n;
        } else {
            if (!md && !(md = pcre2_match_data_create(1, t->pcre_gctx))) {
                st = roe_fail(ROE_ERR_NOMEM, "tokenizer: normalizer: PCRE2 match data");
                goto fail;
            }
            ROE_CHECK(roe__norm_replace(nm, md, &sp, cur, cur_n, b, &len));
        }
        cur = b->p;
        cur_n = len;
    }
    *out = cur;
    *n_out = cur_n;
fail:
    pcre2_match_data_free(md);
    roe_free(sp.v);
    return st;
}

/* Rust's from_utf8_lossy: a maximal prefix of a well-formed sequence that is cut short, or a
 * byte that starts none, becomes one U+FFFD. */
roe_status roe__utf8_lossy(const char *s, size_t n, struct roe__buf *b, size_t *w) {
    const uint8_t *p = (const uint8_t *)s;
    ROE_TRY(roe__buf_reserve(b, *w + n + 1));
    size_t i = 0;
    while (i < n) {
        size_t bad;
        size_t run = n - i;
        if (roe__utf8_valid(s + i, run, &bad)) bad = run;
        if (bad) { /* a valid run */
            ROE_TRY(roe__buf_reserve(b, *w + bad + 1));
            memcpy(b->p + *w, s + i, bad);
            *w += bad;
            i += bad;
            continue;
        }
        uint8_t c = p[i];
        size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
        size_t k = 1; /* bytes of the maximal subpart */
        while (k < need && i + k < n) {
            uint8_t lo = 0x80, hi = 0xBF, d = p[i + k];
            if (k == 1 && c == 0xE0) lo = 0xA0;
            if (k == 1 && c == 0xED) hi = 0x9F;
            if (k == 1 && c == 0xF0) lo = 0x90;
            if (k == 1 && c == 0xF4) hi = 0x8F;
            if (d < lo || d > hi) break;
            k++;
        }
        ROE_TRY(roe__buf_reserve(b, *w + 4));
        memcpy(b->p + *w, "\xEF\xBF\xBD", 3);
        *w += 3;
        i += k;
    }
    b->p[*w] = '\0';
    return ROE_OK;
}

/* ---- regex --------------------------------------------------------------------------------- */

roe_status roe__spans_push(struct roe__spans *s, size_t start, size_t end, int is_match) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct roe__span *v = roe_realloc(s->v, cap * sizeof *v);
        if (!v) return roe_fail(ROE_ERR_NOMEM, "tokenizer: encode: growing a split to %zu", cap);
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (struct roe__span){start, end, is_match};
    return ROE_OK;
}

/* The matches of `re` in s[0..n) as Hugging Face's Pattern::find_matches lists them: the
 * whole string covered by alternating gaps and matches, iterated like onig's find_iter (an
 * empty match right where the previous match ended is skipped by one char). */
roe_status roe__find_matches(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                             struct roe__spans *out) {
    out->n = 0;
    size_t prev = 0, last_end = 0, last_match_end = 0;
    int have_last = 0;
    while (last_end <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, last_end, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re, (PCRE2_SPTR)s, n, last_end, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                             NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return roe_fail(
                rc == PCRE2_ERROR_NOMEMORY ? ROE_ERR_NOMEM : ROE_ERR_INTERNAL,
                "tokenizer: encode: pre-tokenizer regex failed on a piece of %zu bytes: %s", n,
                (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms > me || me > n)
            return roe_fail(ROE_ERR_UNSUPPORTED, "tokenizer: encode: the pre-tokenizer regex "
                                                 "reported a match ending before it starts (\\K?)");
        if (ms == me && have_last && last_match_end == me) {
            uint32_t cp;
            last_end += last_end < n ? roe__utf8_decode(s, n, last_end, &cp) : 1;
            continue;
        }
        last_end = me;
        last_match_end = me;
        have_last = 1;
        if (prev != ms) ROE_TRY(roe__spans_push(out, prev, ms, 0));
        ROE_TRY(roe__spans_push(out, ms, me, 1));
        prev = me;
    }
    if (prev != n) ROE_TRY(roe__spans_push(out, prev, n, 0));
    return ROE_OK;
}

roe_status roe__regex_split(const struct roe__pretok_step *step, pcre2_match_data *md,
                            const char *s, size_t n, struct roe__spans *out) {
    out->n = 0;
    if (n == 0) return ROE_OK; /* a single empty piece, which is dropped */
    ROE_TRY(roe__find_matches(step->re, md, s, n, out));
    struct roe__span *v = out->v;
    size_t len = out->n, w = 0;
    if (step->invert)
        for (size_t i = 0; i < len; i++)
            v[i].is_match = !v[i].is_match;

    /* SplitDelimiterBehavior, as normalizer.rs applies it (folds over the match list). */
    int prev_match = 0;
    switch (step->behavior) {
    case ROE__SPLIT_ISOLATED:
        w = len;
        break;
    case ROE__SPLIT_REMOVED:
        for (size_t i = 0; i < len; i++)
            if (!v[i].is_match) v[w++] = v[i];
        break;
    case ROE__SPLIT_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < len; i++) {
            struct roe__span r = v[i];
            if (r.is_match && !prev_match && w > 0)
                v[w - 1].end = r.end;
            else
                v[w++] = r;
            prev_match = r.is_match;
        }
        break;
    case ROE__SPLIT_MERGED_WITH_NEXT: {
        size_t top = len; /* fold from the right into v[top..len) */
        for (size_t i = len; i-- > 0;) {
            struct roe__span r = v[i];
            if (r.is_match && !prev_match && top < len)
                v[top].start = r.start;
            else
                v[--top] = r;
            prev_match = r.is_match;
        }
        memmove(v, v + top, (len - top) * sizeof *v);
        w = len - top;
        break;
    }
    case ROE__SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < len; i++) {
            struct roe__span r = v[i];
            if (r.is_match == prev_match && w > 0)
                v[w - 1].end = r.end;
            else
                v[w++] = r;
            prev_match = r.is_match;
        }
        break;
    }
    /* Drop empty pieces (PreTokenizedString::split does). */
    size_t k = 0;
    for (size_t i = 0; i < w; i++)
        if (v[i].end > v[i].start) v[k++] = v[i];
    out->n = k;
    return ROE_OK;
}

/* ---- added-token trie ---------------------------------------------------------------------- */

roe_status roe__trie_build(roe__trie *trie, const roe_tokenizer *t, int normalized) {
    memset(trie, 0, sizeof *trie);
    size_t total = 1;
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized) total += t->added[i].n_match;
    if (total > INT32_MAX)
        return roe_fail(ROE_ERR_UNSUPPORTED, "tokenizer: added tokens too long (%zu bytes)", total);
    trie->terminal = roe_malloc(total * sizeof *trie->terminal);
    if (!trie->terminal)
        return roe_fail(ROE_ERR_NOMEM, "tokenizer: added-token trie of %zu nodes", total);
    ROE_TRY(roe__u64map_init(&trie->edges, total, "added-token trie"));
    for (size_t i = 0; i < total; i++)
        trie->terminal[i] = -1;
    trie->n_nodes = 1;
    /* Hugging Face lists special tokens before the others; the first pattern wins a tie. */
    for (int pass = 0; pass < 2; pass++) {
        for (int32_t i = 0; i < t->n_added; i++) {
            const struct roe__added *a = &t->added[i];
            if (a->normalized != normalized || a->special != (pass == 0) || a->n_match == 0)
                continue;
            int32_t node = 0;
            for (size_t k = 0; k < a->n_match; k++) {
                uint8_t byte = (uint8_t)a->match[k];
                uint64_t key = (uint64_t)node << 8 | byte;
                const struct roe__u64map_slot *e = roe__u64map_get(&trie->edges, key);
                if (e) {
                    node = e->a;
                } else {
                    roe__u64map_put(&trie->edges, key, trie->n_nodes, 0);
                    node = trie->n_nodes++;
                }
            }
            if (trie->terminal[node] < 0) trie->terminal[node] = i;
            trie->first[(uint8_t)a->match[0] >> 3] |= (uint8_t)(1u << ((uint8_t)a->match[0] & 7));
            trie->n_patterns++;
        }
    }
    return ROE_OK;
}

void roe__trie_free(roe__trie *trie) {
    roe__u64map_free(&trie->edges);
    roe_free(trie->terminal);
    memset(trie, 0, sizeof *trie);
}

int roe__trie_find(const roe__trie *trie, const char *s, size_t n, size_t from, size_t *ms,
                   size_t *me, int32_t *idx) {
    if (trie->n_patterns == 0) return 0;
    for (size_t i = from; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (!(trie->first[c >> 3] & (1u << (c & 7)))) continue;
        int32_t node = 0, best = -1;
        size_t best_end = 0;
        for (size_t j = i; j < n; j++) {
            const struct roe__u64map_slot *e =
                roe__u64map_get(&trie->edges, (uint64_t)node << 8 | (uint8_t)s[j]);
            if (!e) break;
            node = e->a;
            if (trie->terminal[node] >= 0) {
                best = trie->terminal[node];
                best_end = j + 1;
            }
        }
        if (best >= 0) {
            *ms = i;
            *me = best_end;
            *idx = best;
            return 1;
        }
    }
    return 0;
}
