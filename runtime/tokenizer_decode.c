/*
 * tokenizer_decode.c — ids back to text, as Hugging Face's Tokenizer::decode does it: each id
 * becomes its token string (an added token's content, else the vocab spelling), special ones
 * dropped on request, and the decoder steps run over the list of strings in order
 * (Decoder::decode_chain), whose results are joined. With no decoder the strings are joined
 * with " ".
 *
 * Each step, as in the library's decoders:
 *   ByteLevel     every token whose chars are all in the byte map becomes those bytes, any
 *                 other its own UTF-8; the bytes of all tokens are one string, made valid
 *                 UTF-8 lossily (from_utf8_lossy)
 *   Replace       each token's matches of the pattern become the content
 *   ByteFallback  runs of "<0xXX>" tokens become their bytes if those are valid UTF-8, else
 *                 one U+FFFD per token
 *   Fuse          all tokens become one
 *   Strip         each token loses up to `start` leading and `stop` trailing `content` chars
 *   Metaspace     the replacement becomes a space, except in the first token (where it is
 *                 dropped) unless prepend_scheme is "never"
 *
 * A token's piece (roe_tokenizer_token_bytes, for streaming) is the steps that act on one
 * token alone applied to it, with raw bytes kept raw: ByteLevel's map, Replace, a "<0xXX>"
 * token's byte, Metaspace's replacement as a space.
 */
#include <string.h>

#include "base/alloc.h"
#include "tokenizer_impl.h"

/* A list of strings in one buffer. */
struct roe__strs {
    struct roe__buf data;
    size_t used;
    size_t *off, *len; /* [n] */
    size_t n, cap;
};

static roe_status roe__strs_push(struct roe__strs *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        size_t *off = roe_realloc(l->off, cap * sizeof *off);
        if (off) l->off = off;
        size_t *len = roe_realloc(l->len, cap * sizeof *len);
        if (len) l->len = len;
        if (!off || !len) return roe_fail(ROE_ERR_NOMEM, "tokenizer: decode: %zu strings", cap);
        l->cap = cap;
    }
    ROE_TRY(roe__buf_reserve(&l->data, l->used + n + 1));
    memcpy(l->data.p + l->used, s, n);
    l->off[l->n] = l->used;
    l->len[l->n++] = n;
    l->used += n;
    return ROE_OK;
}

/* Appends s to the last string of l (which must be the last thing written). */
static roe_status roe__strs_append(struct roe__strs *l, const char *s, size_t n) {
    ROE_TRY(roe__buf_reserve(&l->data, l->used + n + 1));
    memcpy(l->data.p + l->used, s, n);
    l->used += n;
    l->len[l->n - 1] += n;
    return ROE_OK;
}

static void roe__strs_reset(struct roe__strs *l) {
    l->n = 0;
    l->used = 0;
}

static void roe__strs_free(struct roe__strs *l) {
    roe_free(l->data.p);
    roe_free(l->off);
    roe_free(l->len);
}

/* ByteLevel on one token: its bytes if all its chars are in the byte map; *ok 0 if not. */
static size_t roe__bytelevel_token(const roe_tokenizer *t, const char *s, size_t n, char *out, int *ok) {
    size_t k = 0;
    *ok = 1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += roe__utf8_decode(s, n, i, &cp);
        if (cp >= 324 || t->cp_to_byte[cp] < 0) {
            *ok = 0;
            return 0;
        }
        out[k++] = (char)t->cp_to_byte[cp];
    }
    return k;
}

/* "<0xXX>" -> the byte (u8::from_str_radix of its two characters, which takes a '+'). */
static int roe__fallback_byte(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = s[3] == '+' ? 0 : (s[3] >= '0' && s[3] <= '9')   ? s[3] - '0'
                           : (s[3] >= 'a' && s[3] <= 'f') ? s[3] - 'a' + 10
                           : (s[3] >= 'A' && s[3] <= 'F') ? s[3] - 'A' + 10
                                                          : -1;
    int lo = (s[4] >= '0' && s[4] <= '9')   ? s[4] - '0'
             : (s[4] >= 'a' && s[4] <= 'f') ? s[4] - 'a' + 10
             : (s[4] >= 'A' && s[4] <= 'F') ? s[4] - 'A' + 10
                                            : -1;
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* Every match of re in s[0..n) replaced by text, appended as one new string of out. */
static roe_status roe__replace_into(const struct roe__decoder *d, pcre2_match_data *md,
                                    struct roe__spans *sp, const char *s, size_t n, struct roe__strs *out) {
    ROE_TRY(roe__strs_push(out, "", 0));
    if (n == 0) return ROE_OK;
    ROE_TRY(roe__find_matches(d->re, md, s, n, sp));
    for (size_t i = 0; i < sp->n; i++) {
        const struct roe__span *v = &sp->v[i];
        if (v->is_match)
            ROE_TRY(roe__strs_append(out, d->text, d->n_text));
        else
            ROE_TRY(roe__strs_append(out, s + v->start, v->end - v->start));
    }
    return ROE_OK;
}

/* ---- the steps over a list ----------------------------------------------------------------- */

struct roe__dec_ctx {
    const roe_tokenizer *t;
    pcre2_match_data *md;
    struct roe__spans sp;
    struct roe__buf tmp;
};

static roe_status roe__step_bytelevel(struct roe__dec_ctx *c, const struct roe__strs *in,
                                      struct roe__strs *out) {
    size_t w = 0;
    ROE_TRY(roe__buf_reserve(&c->tmp, in->used + 1));
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->data.p + in->off[i];
        int ok;
        size_t k = roe__bytelevel_token(c->t, s, in->len[i], c->tmp.p + w, &ok);
        if (!ok) memcpy(c->tmp.p + w, s, k = in->len[i]);
        w += k;
    }
    ROE_TRY(roe__strs_push(out, "", 0));
    size_t before = out->used;
    ROE_TRY(roe__utf8_lossy(c->tmp.p, w, &out->data, &out->used));
    out->len[out->n - 1] = out->used - before;
    return ROE_OK;
}

/* ByteFallback's pending bytes, flushed as one string or one U+FFFD each. */
static roe_status roe__flush_bytes(const char *b, size_t n, struct roe__strs *out) {
    size_t bad;
    if (n == 0) return ROE_OK;
    if (roe__utf8_valid(b, n, &bad)) return roe__strs_push(out, b, n);
    for (size_t i = 0; i < n; i++)
        ROE_TRY(roe__strs_push(out, "\xEF\xBF\xBD", 3));
    return ROE_OK;
}

static roe_status roe__step_bytefallback(struct roe__dec_ctx *c, const struct roe__strs *in,
                                         struct roe__strs *out) {
    size_t pending = 0;
    ROE_TRY(roe__buf_reserve(&c->tmp, in->n + 1));
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->data.p + in->off[i];
        int byte = roe__fallback_byte(s, in->len[i]);
        if (byte >= 0) {
            c->tmp.p[pending++] = (char)byte;
            continue;
        }
        ROE_TRY(roe__flush_bytes(c->tmp.p, pending, out));
        pending = 0;
        ROE_TRY(roe__strs_push(out, s, in->len[i]));
    }
    return roe__flush_bytes(c->tmp.p, pending, out);
}

static roe_status roe__step_strip(const struct roe__decoder *d, const struct roe__strs *in,
                                  struct roe__strs *out) {
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->data.p + in->off[i];
        size_t n = in->len[i], a = 0, z = n, k = 0;
        uint32_t cp;
        while (k < d->start && a < n && (roe__utf8_decode(s, n, a, &cp), cp == d->cp))
            a += roe__utf8_decode(s, n, a, &cp), k++;
        for (k = 0; k < d->stop && z > a; k++) {
            size_t p = roe__utf8_prev(s, z);
            roe__utf8_decode(s, n, p, &cp);
            if (cp != d->cp) break;
            z = p;
        }
        ROE_TRY(roe__strs_push(out, s + a, z - a));
    }
    return ROE_OK;
}

static roe_status roe__step_metaspace(const struct roe__decoder *d, const struct roe__strs *in,
                                      struct roe__strs *out) {
    char rep[4];
    size_t nr = roe__utf8_encode(d->cp, rep);
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->data.p + in->off[i];
        size_t n = in->len[i], from = 0;
        const int drop = i == 0 && d->prepend != ROE__PREPEND_NEVER;
        ROE_TRY(roe__strs_push(out, "", 0));
        for (size_t j = 0; j + nr <= n;) {
            if (memcmp(s + j, rep, nr) != 0) {
                uint32_t cp;
                j += roe__utf8_decode(s, n, j, &cp);
                continue;
            }
            ROE_TRY(roe__strs_append(out, s + from, j - from));
            if (!drop) ROE_TRY(roe__strs_append(out, " ", 1));
            j += nr;
            from = j;
        }
        ROE_TRY(roe__strs_append(out, s + from, n - from));
    }
    return ROE_OK;
}

static roe_status roe__dec_step(struct roe__dec_ctx *c, const struct roe__decoder *d,
                                const struct roe__strs *in, struct roe__strs *out) {
    switch (d->kind) {
    case ROE__DEC_BYTELEVEL:
        return roe__step_bytelevel(c, in, out);
    case ROE__DEC_BYTEFALLBACK:
        return roe__step_bytefallback(c, in, out);
    case ROE__DEC_STRIP:
        return roe__step_strip(d, in, out);
    case ROE__DEC_METASPACE:
        return roe__step_metaspace(d, in, out);
    case ROE__DEC_FUSE:
        ROE_TRY(roe__strs_push(out, "", 0));
        for (size_t i = 0; i < in->n; i++)
            ROE_TRY(roe__strs_append(out, in->data.p + in->off[i], in->len[i]));
        return ROE_OK;
    default: /* ROE__DEC_REPLACE */
        for (size_t i = 0; i < in->n; i++)
            ROE_TRY(roe__replace_into(d, c->md, &c->sp, in->data.p + in->off[i], in->len[i], out));
        return ROE_OK;
    }
}

/* The list's strings joined into *out (with " " between them when sep). */
static roe_status roe__join(const struct roe__strs *l, int sep, char **out, size_t *len) {
    size_t total = l->used + (sep && l->n ? l->n - 1 : 0);
    char *o = roe_malloc(total + 1);
    if (!o) return roe_fail(ROE_ERR_NOMEM, "tokenizer: decode: %zu bytes", total + 1);
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (sep && i) o[w++] = ' ';
        memcpy(o + w, l->data.p + l->off[i], l->len[i]);
        w += l->len[i];
    }
    o[w] = '\0';
    *out = o;
    *len = w;
    return ROE_OK;
}

roe_status roe__decode(const roe_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                       char **out, size_t *len) {
    struct roe__strs l[2];
    memset(l, 0, sizeof l);
    struct roe__dec_ctx c = {.t = t};
    roe_status st = ROE_OK;
    for (size_t i = 0; i < n; i++) {
        const struct roe__token *tok = &t->tokens[ids[i]];
        if (skip_special && tok->special) continue;
        ROE_CHECK(roe__strs_push(&l[0], tok->text, tok->n_text));
    }
    int cur = 0;
    for (int k = 0; k < t->n_decoders; k++) {
        if (t->decoders[k].kind == ROE__DEC_REPLACE && !c.md &&
            !(c.md = pcre2_match_data_create(1, t->pcre_gctx))) {
            st = roe_fail(ROE_ERR_NOMEM, "tokenizer: decode: PCRE2 match data");
            goto fail;
        }
        roe__strs_reset(&l[!cur]);
        ROE_CHECK(roe__dec_step(&c, &t->decoders[k], &l[cur], &l[!cur]));
        cur = !cur;
    }
    ROE_CHECK(roe__join(&l[cur], !t->has_decoder, out, len));
fail:
    roe__strs_free(&l[0]);
    roe__strs_free(&l[1]);
    pcre2_match_data_free(c.md);
    roe_free(c.sp.v);
    roe_free(c.tmp.p);
    return st;
}

/* ---- pieces -------------------------------------------------------------------------------- */

/* One token's piece: into out (reset first). */
static roe_status roe__piece(struct roe__dec_ctx *c, const char *s, size_t n, struct roe__strs l[2],
                             const char **piece, size_t *np) {
    int cur = 0;
    roe__strs_reset(&l[0]);
    ROE_TRY(roe__strs_push(&l[0], s, n));
    for (int k = 0; k < c->t->n_decoders; k++) {
        const struct roe__decoder *d = &c->t->decoders[k];
        const char *p = l[cur].data.p + l[cur].off[0];
        size_t pn = l[cur].len[0];
        struct roe__strs *o = &l[!cur];
        roe__strs_reset(o);
        int ok = 1, byte = d->kind == ROE__DEC_BYTEFALLBACK ? roe__fallback_byte(p, pn) : -1;
        char c1 = (char)byte;
        if (d->kind == ROE__DEC_BYTELEVEL) {
            ROE_TRY(roe__buf_reserve(&c->tmp, pn + 1));
            size_t k2 = roe__bytelevel_token(c->t, p, pn, c->tmp.p, &ok);
            ROE_TRY(ok ? roe__strs_push(o, c->tmp.p, k2) : roe__strs_push(o, p, pn));
        } else if (d->kind == ROE__DEC_REPLACE) {
            ROE_TRY(roe__replace_into(d, c->md, &c->sp, p, pn, o));
        } else if (byte >= 0) {
            ROE_TRY(roe__strs_push(o, &c1, 1));
        } else if (d->kind == ROE__DEC_METASPACE) {
            struct roe__decoder every = *d; /* a piece keeps its leading space */
            every.prepend = ROE__PREPEND_NEVER;
            struct roe__strs one = l[cur];
            one.n = 1;
            ROE_TRY(roe__step_metaspace(&every, &one, o));
        } else {
            ROE_TRY(roe__strs_push(o, p, pn)); /* ByteFallback on another token, Fuse, Strip */
        }
        cur = !cur;
    }
    *piece = l[cur].data.p + l[cur].off[0];
    *np = l[cur].len[0];
    return ROE_OK;
}

roe_status roe__tokens_pieces(roe_tokenizer *t) {
    struct roe__dec_ctx c = {.t = t};
    struct roe__strs l[2];
    memset(l, 0, sizeof l);
    struct roe__buf all = {0};
    size_t used = 0;
    roe_status st = ROE_OK;
    c.md = pcre2_match_data_create(1, t->pcre_gctx);
    if (!c.md) {
        st = roe_fail(ROE_ERR_NOMEM, "tokenizer: PCRE2 match data");
        goto fail;
    }
    for (int32_t id = 0; id < t->n_tokens; id++) {
        struct roe__token *tok = &t->tokens[id];
        if (tok->kind == ROE__TOK_HOLE) continue;
        const char *p;
        size_t pn;
        ROE_CHECK(roe__piece(&c, tok->text, tok->n_text, l, &p, &pn));
        ROE_CHECK(roe__buf_reserve(&all, used + pn + 1));
        memcpy(all.p + used, p, pn);
        all.p[used + pn] = '\0';
        tok->n_bytes = (uint32_t)pn;
        tok->bytes = (const char *)(uintptr_t)used; /* an offset until the block stops moving */
        used += pn + 1;
    }
    for (int32_t id = 0; id < t->n_tokens; id++)
        if (t->tokens[id].kind != ROE__TOK_HOLE)
            t->tokens[id].bytes = all.p + (uintptr_t)t->tokens[id].bytes;
    t->pieces = all.p;
    all.p = NULL;
fail:
    roe_free(all.p);
    roe__strs_free(&l[0]);
    roe__strs_free(&l[1]);
    pcre2_match_data_free(c.md);
    roe_free(c.sp.v);
    roe_free(c.tmp.p);
    return st;
}
