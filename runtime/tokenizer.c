/*
 * tokenizer.c — the public tokenizer API (tokenizer.h): load, the encode pipeline, decode.
 *
 * encode follows Hugging Face's TokenizerImpl::encode(s, add_special_tokens=False):
 *   1. added tokens with normalized=false are found in the raw text (leftmost-longest,
 *      with their single_word / lstrip / rstrip rules: AddedVocabulary::find_matches);
 *   2. each gap between them is normalized, and added tokens with normalized=true are
 *      found in it the same way;
 *   3. each remaining gap runs through the pre-tokenizer steps (each step splits every
 *      piece of the previous one), and BPE encodes every final piece.
 * The tokenizer is immutable after load; encode keeps its scratch (PCRE2 match data,
 * buffers) in a per-call struct, so concurrent calls on one tokenizer are safe.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "tokenizer_impl.h"

/* ---- load / free --------------------------------------------------------------------------- */

static void *roe__pcre2_malloc(PCRE2_SIZE n, void *ud) {
    (void)ud;
    return roe_malloc(n);
}
static void roe__pcre2_free(void *p, void *ud) {
    (void)ud;
    roe_free(p);
}

static roe_status roe__read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return roe_fail(ROE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    roe_status st = ROE_OK;
    char *buf = NULL;
    long size;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = roe_fail(ROE_ERR_IO, "%s: cannot size: %s", path, strerror(errno));
        goto fail;
    }
    buf = roe_malloc((size_t)size + 1);
    if (!buf) {
        st = roe_fail(ROE_ERR_NOMEM, "%s: reading %ld bytes", path, size);
        goto fail;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        st = roe_fail(ROE_ERR_IO, "%s: short read", path);
        goto fail;
    }
    buf[size] = '\0';
    *out = buf;
    *len = (size_t)size;
    buf = NULL;
fail:
    roe_free(buf);
    fclose(f);
    return st;
}

roe_status roe_tokenizer_load(const char *tokenizer_json_path, roe_tokenizer **out) {
    if (!tokenizer_json_path || !out)
        return roe_fail(ROE_ERR_INVALID_ARG, "roe_tokenizer_load: NULL argument");
    *out = NULL;
    char *json = NULL;
    size_t len = 0;
    ROE_TRY(roe__read_file(tokenizer_json_path, &json, &len));
    roe_status st = ROE_OK;
    roe_tokenizer *t = roe_calloc(1, sizeof *t);
    if (!t) {
        st = roe_fail(ROE_ERR_NOMEM, "%s: allocating the tokenizer", tokenizer_json_path);
        goto fail;
    }
    roe__bytemap_init(t->byte_to_cp, t->cp_to_byte);
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = t->byte_tok[b] = -1;
    t->unk_id = -1;
    t->pcre_gctx = pcre2_general_context_create(roe__pcre2_malloc, roe__pcre2_free, NULL);
    if (!t->pcre_gctx) {
        st = roe_fail(ROE_ERR_NOMEM, "%s: PCRE2 context", tokenizer_json_path);
        goto fail;
    }
    ROE_CHECK(roe__tokenizer_parse(t, tokenizer_json_path, json, len));
    *out = t;
    t = NULL;
fail:
    roe_free(json);
    roe_tokenizer_free(t);
    return st;
}

void roe_tokenizer_free(roe_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_steps; i++)
        pcre2_code_free(t->steps[i].re);
    for (int i = 0; i < t->n_norms; i++) {
        pcre2_code_free(t->norms[i].re);
        roe_free(t->norms[i].text);
    }
    for (int i = 0; i < t->n_decoders; i++) {
        pcre2_code_free(t->decoders[i].re);
        roe_free(t->decoders[i].text);
    }
    roe__u64map_free(&t->char_id);
    roe_free(t->pieces);
    for (int32_t i = 0; i < t->n_added; i++) {
        roe_free(t->added[i].content);
        roe_free(t->added[i].match);
    }
    roe_free(t->added);
    roe__trie_free(&t->trie_raw);
    roe__trie_free(&t->trie_norm);
    roe__u64map_free(&t->merges);
    roe__strmap_free(&t->vocab_bytes);
    roe__strmap_free(&t->by_text);
    roe_free(t->tokens);
    roe_free(t->arena);
    pcre2_general_context_free(t->pcre_gctx);
    roe_free(t);
}

/* ---- encode -------------------------------------------------------------------------------- */

/* Scratch of one encode call. Level k of the pre-tokenizer owns prefix[k] and spans[k],
 * which stay valid while deeper levels run on the pieces they describe. */
struct roe__enc {
    const roe_tokenizer *t;
    struct roe__ids ids;
    pcre2_match_data *md;
    struct roe__buf ucs[2]; /* normalizer output */
    struct roe__buf prefix[ROE__TOK_MAX_STEPS];
    struct roe__spans spans[ROE__TOK_MAX_STEPS];
    struct roe__bpe_scratch bpe;
};

/* A piece of text and whether it starts at offset 0 of the original input (Metaspace's
 * prepend_scheme "first" asks; see roe__metaspace). Tracked as: the first gap of the input,
 * and within it the first piece of each split. Hugging Face's alignments would also call a
 * later piece "at 0" when everything before it in the normalized text came from the first
 * input character (a Prepend, a decomposition of that character); no tokenizer we know puts a
 * Split between such a normalizer and Metaspace "first". */
typedef roe_status (*roe__gap_fn)(struct roe__enc *e, const char *s, size_t n, int origin0);

static roe_status roe__pretok(struct roe__enc *e, int k, const char *s, size_t n, int origin0);

/* Metaspace: spaces become the replacement, which is prepended (always, or only to the piece
 * at the start of the input), then the piece is split before each replacement or not. */
static roe_status roe__metaspace(struct roe__enc *e, int k, const char *s, size_t n, int origin0) {
    const struct roe__pretok_step *st = &e->t->steps[k];
    size_t spaces = 0;
    for (size_t i = 0; i < n; i++)
        spaces += s[i] == ' ';
    const int starts = n >= st->n_rep && memcmp(s, st->rep, st->n_rep) == 0;
    const int first = s[0] == ' ' || starts; /* after replacing, it starts with the replacement */
    const int prepend = !first && (st->prepend == ROE__PREPEND_ALWAYS ||
                                   (st->prepend == ROE__PREPEND_FIRST && origin0));
    struct roe__buf *b = &e->prefix[k];
    ROE_TRY(roe__buf_reserve(b, n + (spaces + 1) * st->n_rep + 1));
    size_t w = 0;
    if (prepend) memcpy(b->p, st->rep, st->n_rep), w = st->n_rep;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ')
            memcpy(b->p + w, st->rep, st->n_rep), w += st->n_rep;
        else
            b->p[w++] = s[i];
    }
    if (!st->re) return roe__pretok(e, k + 1, b->p, w, origin0);
    struct roe__spans *sp = &e->spans[k];
    ROE_TRY(roe__regex_split(st, e->md, b->p, w, sp));
    for (size_t i = 0; i < sp->n; i++)
        ROE_TRY(roe__pretok(e, k + 1, b->p + sp->v[i].start, sp->v[i].end - sp->v[i].start,
                            origin0 && sp->v[i].start == 0));
    return ROE_OK;
}

static roe_status roe__pretok(struct roe__enc *e, int k, const char *s, size_t n, int origin0) {
    const roe_tokenizer *t = e->t;
    if (n == 0) return ROE_OK; /* empty pieces are dropped (and get no prefix space) */
    if (k == t->n_steps) return roe__bpe_word(t, &e->bpe, s, n, &e->ids);
    const struct roe__pretok_step *st = &t->steps[k];
    if (st->kind == ROE__STEP_METASPACE) return roe__metaspace(e, k, s, n, origin0);
    if (st->kind == ROE__STEP_BYTELEVEL && st->add_prefix_space && s[0] != ' ') {
        ROE_TRY(roe__buf_reserve(&e->prefix[k], n + 1));
        e->prefix[k].p[0] = ' ';
        memcpy(e->prefix[k].p + 1, s, n);
        s = e->prefix[k].p;
        n++;
    }
    if (!st->re) return roe__pretok(e, k + 1, s, n, origin0);
    struct roe__spans *sp = &e->spans[k];
    ROE_TRY(roe__regex_split(st, e->md, s, n, sp));
    for (size_t i = 0; i < sp->n; i++)
        ROE_TRY(roe__pretok(e, k + 1, s + sp->v[i].start, sp->v[i].end - sp->v[i].start,
                            origin0 && sp->v[i].start == 0));
    return ROE_OK;
}

static int roe__word_before(const char *s, size_t n, size_t i) {
    uint32_t cp;
    roe__utf8_decode(s, n, roe__utf8_prev(s, i), &cp);
    return roe__is_word(cp);
}

static int roe__word_at(const char *s, size_t n, size_t i) {
    uint32_t cp;
    roe__utf8_decode(s, n, i, &cp);
    return roe__is_word(cp);
}

/* AddedVocabulary::find_matches + split_with_indices: added-token ids go to the output,
 * the gaps between them to `gap`. Arithmetic mirrors Hugging Face's, including its
 * overlap when an rstrip token is followed by a token starting with whitespace. */
static roe_status roe__split_added(struct roe__enc *e, const roe__trie *trie, const char *s,
                                   size_t n, roe__gap_fn gap, int origin0) {
    size_t start_offset = 0, from = 0, ms, me;
    int32_t idx;
    while (roe__trie_find(trie, s, n, from, &ms, &me, &idx)) {
        const struct roe__added *a = &e->t->added[idx];
        size_t start = ms, stop = me;
        from = me; /* the matcher resumes after the match, not after stripped spaces */
        if (a->single_word) {
            int space_before = start == 0 || !roe__word_before(s, n, start);
            int space_after = stop == n || !roe__word_at(s, n, stop);
            if (!space_before || !space_after) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                uint32_t cp;
                size_t p = roe__utf8_prev(s, ns);
                roe__utf8_decode(s, n, p, &cp);
                if (!roe__is_whitespace(cp)) break;
                ns = p;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (stop < n) {
                uint32_t cp;
                size_t l = roe__utf8_decode(s, n, stop, &cp);
                if (!roe__is_whitespace(cp)) break;
                stop += l;
            }
        }
        if (start_offset < start)
            ROE_TRY(gap(e, s + start_offset, start - start_offset, origin0 && start_offset == 0));
        ROE_TRY(roe__ids_push(&e->ids, a->id));
        start_offset = stop;
    }
    if (start_offset < n) ROE_TRY(gap(e, s + start_offset, n - start_offset, origin0 && start_offset == 0));
    return ROE_OK;
}

static roe_status roe__gap_normalized(struct roe__enc *e, const char *s, size_t n, int origin0) {
    return roe__pretok(e, 0, s, n, origin0);
}

static roe_status roe__gap_raw(struct roe__enc *e, const char *s, size_t n, int origin0) {
    const char *ns;
    size_t nn;
    ROE_TRY(roe__normalize(e->t, s, n, e->ucs, &ns, &nn));
    return roe__split_added(e, &e->t->trie_norm, ns, nn, roe__gap_normalized, origin0);
}

roe_status roe_tokenizer_encode(const roe_tokenizer *t, const char *text, size_t len, int32_t **ids,
                                size_t *n_ids) {
    if (!t || !ids || !n_ids || (!text && len))
        return roe_fail(ROE_ERR_INVALID_ARG, "roe_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (!text) text = "";
    size_t bad;
    if (!roe__utf8_valid(text, len, &bad))
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "roe_tokenizer_encode: invalid UTF-8 at byte offset %zu (byte 0x%02x)", bad,
                        (uint8_t)text[bad]);
    roe_status st = ROE_OK;
    struct roe__enc e = {.t = t};
    e.md = pcre2_match_data_create(1, t->pcre_gctx);
    if (!e.md) {
        st = roe_fail(ROE_ERR_NOMEM, "roe_tokenizer_encode: PCRE2 match data");
        goto fail;
    }
    ROE_CHECK(roe__split_added(&e, &t->trie_raw, text, len, roe__gap_raw, 1));
    if (!e.ids.v) {
        e.ids.v = roe_malloc(sizeof *e.ids.v); /* the caller always gets a buffer to free */
        if (!e.ids.v) {
            st = roe_fail(ROE_ERR_NOMEM, "roe_tokenizer_encode: empty id list");
            goto fail;
        }
    }
    *ids = e.ids.v;
    *n_ids = e.ids.n;
    e.ids.v = NULL;
fail:
    roe_free(e.ids.v);
    pcre2_match_data_free(e.md);
    roe_free(e.ucs[0].p);
    roe_free(e.ucs[1].p);
    for (int k = 0; k < ROE__TOK_MAX_STEPS; k++) {
        roe_free(e.prefix[k].p);
        roe_free(e.spans[k].v);
    }
    roe__bpe_scratch_free(&e.bpe);
    return st;
}

/* ---- decode and accessors ------------------------------------------------------------------ */

static const struct roe__token *roe__token_get(const roe_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_tokens || t->tokens[id].kind == ROE__TOK_HOLE) return NULL;
    return &t->tokens[id];
}

roe_status roe_tokenizer_decode(const roe_tokenizer *t, const int32_t *ids, size_t n, int flags,
                                char **text, size_t *len) {
    if (!t || !text || !len || (!ids && n))
        return roe_fail(ROE_ERR_INVALID_ARG, "roe_tokenizer_decode: NULL argument");
    *text = NULL;
    *len = 0;
    for (size_t i = 0; i < n; i++)
        if (!roe__token_get(t, ids[i]))
            return roe_fail(ROE_ERR_INVALID_ARG,
                            "roe_tokenizer_decode: ids[%zu] = %d is not a token id (vocabulary "
                            "size %d)",
                            i, (int)ids[i], (int)t->n_tokens);
    return roe__decode(t, ids, n, flags & ROE_DECODE_SKIP_SPECIAL, text, len);
}

roe_status roe_tokenizer_token_bytes(const roe_tokenizer *t, int32_t id, const char **bytes,
                                     size_t *len) {
    if (!t || !bytes || !len)
        return roe_fail(ROE_ERR_INVALID_ARG, "roe_tokenizer_token_bytes: NULL argument");
    const struct roe__token *tok = roe__token_get(t, id);
    if (!tok)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "roe_tokenizer_token_bytes: %d is not a token id "
                        "(vocabulary size %d)",
                        (int)id, (int)t->n_tokens);
    *bytes = tok->bytes;
    *len = tok->n_bytes;
    return ROE_OK;
}

roe_status roe_tokenizer_token_text(const roe_tokenizer *t, int32_t id, const char **text, size_t *len) {
    if (!t || !text || !len) return roe_fail(ROE_ERR_INVALID_ARG, "roe_tokenizer_token_text: NULL argument");
    const struct roe__token *tok = roe__token_get(t, id);
    if (!tok)
        return roe_fail(ROE_ERR_INVALID_ARG, "roe_tokenizer_token_text: %d is not a token id (vocabulary size %d)",
                        (int)id, (int)t->n_tokens);
    *text = tok->text;
    *len = tok->n_text;
    return ROE_OK;
}

int32_t roe_tokenizer_vocab_size(const roe_tokenizer *t) {
    return t ? t->n_tokens : 0;
}

int32_t roe_tokenizer_find(const roe_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    return roe__strmap_get(&t->by_text, token, strlen(token));
}

int roe_tokenizer_is_special(const roe_tokenizer *t, int32_t id) {
    const struct roe__token *tok = t ? roe__token_get(t, id) : NULL;
    return tok ? tok->special : 0;
}
