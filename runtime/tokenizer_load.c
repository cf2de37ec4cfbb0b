/*
 * tokenizer_load.c — tokenizer.json (Hugging Face `tokenizers` serialization 1.0) to a
 * struct roe_tokenizer. Every field we read is checked; every field that would change
 * encode(s, add_special_tokens=False) and that we do not implement is rejected by name,
 * so a tokenizer either loads and matches Hugging Face or fails with a message such as
 *   "models/x/tokenizer.json: model.merges[12]: expected "a b" or ["a", "b"]".
 * Ignored on purpose: "version", "post_processor" (encode applies none), the ByteLevel
 * "trim_offsets" flag (offsets only), and "truncation" / "padding" (they shape batches for
 * training; loading says so once).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/json.h"
#include "base/log.h"
#include "tokenizer_impl.h"

/* ---- model --------------------------------------------------------------------------------- */

/* Checks the BPE options we do not implement. */
static roe_status roe__load_bpe_options(roe_tokenizer *t, const char *path, const cJSON *m) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
    if (type && !cJSON_IsString(type))
        return roe_fail(ROE_ERR_FORMAT, "%s: model.type: expected a string", path);
    if (type && strcmp(type->valuestring, "BPE") != 0)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: model.type: \"%s\" is unsupported (only BPE)",
                        path, type->valuestring);
    if (!type && !cJSON_GetObjectItemCaseSensitive(m, "merges"))
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "%s: model.type: missing, and no model.merges: not BPE", path);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (dropout && !cJSON_IsNull(dropout)) {
        if (!cJSON_IsNumber(dropout))
            return roe_fail(ROE_ERR_FORMAT, "%s: model.dropout: expected a number or null", path);
        if (dropout->valuedouble != 0.0)
            return roe_fail(ROE_ERR_UNSUPPORTED,
                            "%s: model.dropout: %g is unsupported (BPE dropout "
                            "is random; only null or 0)",
                            path, dropout->valuedouble);
    }
    static const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, affixes[k]);
        if (!v || cJSON_IsNull(v)) continue;
        if (!cJSON_IsString(v))
            return roe_fail(ROE_ERR_FORMAT, "%s: model.%s: expected a string or null", path,
                            affixes[k]);
        if (v->valuestring[0])
            return roe_fail(ROE_ERR_UNSUPPORTED, "%s: model.%s: \"%s\" is unsupported (only null)",
                            path, affixes[k], v->valuestring);
    }
    ROE_TRY(roe__json_bool(m, "fuse_unk", 0, path, "model", &t->fuse_unk));
    ROE_TRY(roe__json_bool(m, "byte_fallback", 0, path, "model", &t->byte_fallback));
    ROE_TRY(roe__json_bool(m, "ignore_merges", 0, path, "model", &t->ignore_merges));
    return ROE_OK;
}

/* What BPE needs of a vocab token: over chars, a one-char token is in the alphabet; at byte
 * level, BPE runs on bytes, each standing for its mapped char (a token with a char outside the
 * map can never come out of BPE), and the bytes go to the arena. */
static void roe__vocab_alphabet(roe_tokenizer *t, int32_t id, const char *text, size_t len) {
    if (!t->byte_level) {
        uint32_t cp;
        if (roe__utf8_decode(text, len, 0, &cp) == len) roe__u64map_put(&t->char_id, cp, id, 0);
        return;
    }
    char *out = t->arena + t->arena_used;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += roe__utf8_decode(text, len, i, &cp);
        if (cp >= 324 || t->cp_to_byte[cp] < 0) return;
        out[k++] = (char)t->cp_to_byte[cp];
    }
    out[k] = '\0';
    t->arena_used += k + 1;
    if (k == 1) t->byte_id[(uint8_t)out[0]] = id;
    if (t->ignore_merges) roe__strmap_put(&t->vocab_bytes, out, k, id, NULL);
}

/* Reads model.vocab: copies each token into the arena (as spelled, and at byte level as the
 * bytes it stands for) and fills t->tokens, t->by_text, t->byte_id or t->char_id. `n_added`
 * sizes by_text. */
static roe_status roe__load_vocab(roe_tokenizer *t, const char *path, const cJSON *vocab,
                                  int n_added, int32_t *max_id) {
    if (!cJSON_IsObject(vocab))
        return roe_fail(ROE_ERR_FORMAT, "%s: model.vocab: expected an object", path);
    size_t n = 0, bytes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        char where[48];
        snprintf(where, sizeof where, "model.vocab (entry %zu)", n);
        ROE_TRY(roe__json_utf8(e->string, path, where));
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e) || v != floor(v) || v < 0 || v > ROE__TOK_MAX_ID)
            return roe_fail(ROE_ERR_FORMAT, "%s: model.vocab[\"%s\"]: expected an id in [0, %d]",
                            path, e->string, ROE__TOK_MAX_ID);
        if ((int32_t)v > *max_id) *max_id = (int32_t)v;
        size_t len = strlen(e->string);
        if (len > UINT32_MAX / 2)
            return roe_fail(ROE_ERR_FORMAT, "%s: model.vocab: a token of %zu bytes", path, len);
        bytes += 2 * len + 2;
        n++;
    }
    t->arena = roe_malloc(bytes);
    if (!t->arena)
        return roe_fail(ROE_ERR_NOMEM, "%s: model.vocab: %zu bytes of strings", path, bytes);
    t->arena_len = bytes;
    ROE_TRY(roe__strmap_init(&t->by_text, n + (size_t)n_added, "vocabulary"));
    if (t->ignore_merges && t->byte_level)
        ROE_TRY(roe__strmap_init(&t->vocab_bytes, n, "vocabulary bytes"));
    if (!t->byte_level) ROE_TRY(roe__u64map_init(&t->char_id, n, "vocabulary characters"));
    /* Ids are at most ROE__TOK_MAX_ID; tokens[] is sized for the vocab here and grown for
     * added tokens by the caller. */
    t->n_tokens = *max_id + 1;
    t->tokens = roe_calloc((size_t)t->n_tokens, sizeof *t->tokens);
    if (!t->tokens)
        return roe_fail(ROE_ERR_NOMEM, "%s: model.vocab: table of %d ids", path, t->n_tokens);

    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        size_t len = strlen(e->string);
        char *text = t->arena + t->arena_used;
        memcpy(text, e->string, len + 1);
        t->arena_used += len + 1;
        int32_t old;
        if (!roe__strmap_put(&t->by_text, text, len, id, &old))
            return roe_fail(ROE_ERR_FORMAT, "%s: model.vocab: token \"%s\" appears twice", path,
                            text);
        struct roe__token *tok = &t->tokens[id];
        if (tok->kind != ROE__TOK_HOLE)
            return roe_fail(ROE_ERR_FORMAT,
                            "%s: model.vocab[\"%s\"]: id %d is already taken by "
                            "another token",
                            path, text, id);
        tok->text = text;
        tok->n_text = (uint32_t)len;
        tok->kind = ROE__TOK_VOCAB;
        tok->in_vocab = 1;
        roe__vocab_alphabet(t, id, text, len);
    }
    return ROE_OK;
}

/* Reads model.merges ("a b" strings or ["a", "b"] pairs; rank = position). */
static roe_status roe__load_merges(roe_tokenizer *t, const char *path, const cJSON *merges) {
    if (!cJSON_IsArray(merges))
        return roe_fail(ROE_ERR_FORMAT, "%s: model.merges: expected an array", path);
    int n = cJSON_GetArraySize(merges);
    ROE_TRY(roe__u64map_init(&t->merges, (size_t)n, "merges"));
    struct roe__buf cat = {0};
    roe_status st = ROE_OK;
    int rank = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges) {
        const char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (cJSON_IsString(e)) {
            /* Hugging Face splits on every space and wants exactly two parts. */
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                a = s, na = (size_t)(sp - s), b = sp + 1, nb = strlen(sp + 1);
            }
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring, na = strlen(a);
            b = cJSON_GetArrayItem(e, 1)->valuestring, nb = strlen(b);
        }
        if (!a) {
            st = roe_fail(ROE_ERR_FORMAT,
                          "%s: model.merges[%d]: expected \"a b\" (one space) or "
                          "[\"a\", \"b\"]",
                          path, rank);
            goto fail;
        }
        int32_t ia = roe__strmap_get(&t->by_text, a, na), ib = roe__strmap_get(&t->by_text, b, nb);
        ROE_CHECK(roe__buf_reserve(&cat, na + nb + 1));
        memcpy(cat.p, a, na);
        memcpy(cat.p + na, b, nb);
        cat.p[na + nb] = '\0';
        int32_t iab = roe__strmap_get(&t->by_text, cat.p, na + nb);
        if (ia < 0 || ib < 0 || iab < 0) {
            st = roe_fail(ROE_ERR_FORMAT,
                          "%s: model.merges[%d]: token \"%.*s\" is not in model.vocab", path, rank,
                          ia < 0   ? (int)na
                          : ib < 0 ? (int)nb
                                   : (int)(na + nb),
                          ia < 0   ? a
                          : ib < 0 ? b
                                   : cat.p);
            goto fail;
        }
        /* A repeated pair keeps its last rank, as Hugging Face's HashMap collect does. */
        roe__u64map_put(&t->merges, (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib, rank, iab);
        rank++;
    }
fail:
    roe_free(cat.p);
    return st;
}

/* ---- added tokens -------------------------------------------------------------------------- */

/* added_tokens[i] is an object with a string content (UTF-8) and an integral id. */
static roe_status roe__added_shape(const char *path, const char *where, const cJSON *o, const cJSON *content,
                                   const cJSON *jid) {
    if (!cJSON_IsObject(o) || !cJSON_IsString(content))
        return roe_fail(ROE_ERR_FORMAT, "%s: %s.content: expected a string", path, where);
    if (!cJSON_IsNumber(jid) || jid->valuedouble != floor(jid->valuedouble) || jid->valuedouble < 0 ||
        jid->valuedouble > ROE__TOK_MAX_ID)
        return roe_fail(ROE_ERR_FORMAT, "%s: %s.id: expected an id in [0, %d]", path, where, ROE__TOK_MAX_ID);
    return roe__json_utf8(content->valuestring, path, where);
}

/* The five flags of an added token into a (normalized defaults to !special). */
static roe_status roe__added_flags(const char *path, const char *where, const cJSON *o, struct roe__added *a) {
    int special, lstrip, rstrip, single_word, normalized;
    ROE_TRY(roe__json_bool(o, "special", 0, path, where, &special));
    ROE_TRY(roe__json_bool(o, "lstrip", 0, path, where, &lstrip));
    ROE_TRY(roe__json_bool(o, "rstrip", 0, path, where, &rstrip));
    ROE_TRY(roe__json_bool(o, "single_word", 0, path, where, &single_word));
    ROE_TRY(roe__json_bool(o, "normalized", !special, path, where, &normalized));
    a->special = (uint8_t)special, a->lstrip = (uint8_t)lstrip, a->rstrip = (uint8_t)rstrip;
    a->single_word = (uint8_t)single_word, a->normalized = (uint8_t)normalized;
    return ROE_OK;
}

/* The id Hugging Face assigns (AddedVocabulary::add_tokens): the vocab's id if the content
 * is in the vocab, else the next id after the vocab and earlier added tokens (max_added, -1
 * for none). It equals the file's "id" in any file Hugging Face wrote. */
static int32_t roe__added_id(const roe_tokenizer *t, const char *c, size_t len, int32_t n_vocab_entries,
                             int32_t max_added) {
    const int32_t id = roe__strmap_get(&t->by_text, c, len);
    if (id >= 0) return id;
    if (max_added < 0) return n_vocab_entries;
    return (max_added >= n_vocab_entries || n_vocab_entries == 0) ? max_added + 1 : n_vocab_entries;
}

/* Copies c into a, and the form it is matched in (a normalized token is matched in the
 * normalized text, so by its normal form); a counts in t->n_added once it holds content. */
static roe_status roe__added_copy(roe_tokenizer *t, const char *path, const char *where, struct roe__added *a,
                                  const char *c, size_t len, struct roe__buf ucs[2]) {
    a->content = roe_strndup(c, len);
    a->n_content = len;
    t->n_added++;
    if (!a->content) return roe_fail(ROE_ERR_NOMEM, "%s: %s: copying the content", path, where);
    const char *m = c;
    size_t nm = len;
    if (a->normalized) ROE_TRY(roe__normalize(t, c, len, ucs, &m, &nm));
    a->match = roe_strndup(m, nm);
    a->n_match = nm;
    if (!a->match) return roe_fail(ROE_ERR_NOMEM, "%s: %s: copying the content", path, where);
    return ROE_OK;
}

/* added_tokens[i] into t->added (an empty one is skipped, as Hugging Face does). */
static roe_status roe__load_added_one(roe_tokenizer *t, const char *path, const cJSON *o, int i,
                                      int32_t n_vocab_entries, int32_t *max_added, struct roe__buf ucs[2]) {
    char where[48];
    snprintf(where, sizeof where, "added_tokens[%d]", i);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(o, "content");
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(o, "id");
    ROE_TRY(roe__added_shape(path, where, o, content, jid));
    const char *c = content->valuestring;
    const size_t len = strlen(c);
    if (len == 0) return ROE_OK;
    struct roe__added *a = &t->added[t->n_added];
    ROE_TRY(roe__added_flags(path, where, o, a));
    for (int32_t k = 0; k < t->n_added; k++)
        if (t->added[k].n_content == len && memcmp(t->added[k].content, c, len) == 0)
            return roe_fail(ROE_ERR_FORMAT, "%s: %s.content: \"%s\" is already an added token", path, where, c);
    const int32_t id = roe__added_id(t, c, len, n_vocab_entries, *max_added);
    if (id > ROE__TOK_MAX_ID) return roe_fail(ROE_ERR_FORMAT, "%s: %s: id %d is too large", path, where, id);
    if (id != (int32_t)jid->valuedouble)
        ROE_LOG_WARN("tokenizer", "%s: %s: \"%s\" has id %d in the file but %d by Hugging Face's rule; using %d",
                     path, where, c, (int)jid->valuedouble, id, id);
    if (id > *max_added) *max_added = id;
    a->id = id;
    return roe__added_copy(t, path, where, a, c, len, ucs);
}

static roe_status roe__load_added(roe_tokenizer *t, const char *path, const cJSON *list,
                                  int32_t n_vocab_entries) {
    if (!list || cJSON_IsNull(list)) return ROE_OK;
    if (!cJSON_IsArray(list))
        return roe_fail(ROE_ERR_FORMAT, "%s: added_tokens: expected an array", path);
    int n = cJSON_GetArraySize(list);
    t->added = roe_calloc((size_t)n, sizeof *t->added);
    if (!t->added) return roe_fail(ROE_ERR_NOMEM, "%s: added_tokens: %d entries", path, n);
    struct roe__buf ucs[2] = {{0}, {0}};
    roe_status st = ROE_OK;
    int32_t max_added = -1;
    for (int i = 0; i < n && st == ROE_OK; i++)
        st = roe__load_added_one(t, path, cJSON_GetArrayItem(list, i), i, n_vocab_entries, &max_added, ucs);
    roe_free(ucs[0].p);
    roe_free(ucs[1].p);
    return st;
}

/* Is s the content of a special added token? (Hugging Face skips by the token's string.) */
static int roe__special_text(const roe_tokenizer *t, const char *s, size_t n) {
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].special && t->added[i].n_content == n && memcmp(t->added[i].content, s, n) == 0)
            return 1;
    return 0;
}

/* Sizes t->tokens for the added ids and records them: an added token decodes from its content
 * (or its normalized form when `normalized` changes it), through the decoder like any other
 * token, and takes precedence over a vocab entry of the same id (AddedVocabulary::
 * simple_id_to_token). */
static roe_status roe__place_added(roe_tokenizer *t, const char *path) {
    int32_t need = t->n_tokens;
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].id + 1 > need) need = t->added[i].id + 1;
    if (need > t->n_tokens) {
        struct roe__token *v = roe_realloc(t->tokens, (size_t)need * sizeof *v);
        if (!v) return roe_fail(ROE_ERR_NOMEM, "%s: added_tokens: table of %d ids", path, need);
        memset(v + t->n_tokens, 0, (size_t)(need - t->n_tokens) * sizeof *v);
        t->tokens = v;
        t->n_tokens = need;
    }
    for (int32_t i = 0; i < t->n_added; i++) {
        struct roe__added *a = &t->added[i];
        struct roe__token *tok = &t->tokens[a->id];
        tok->text = a->normalized ? a->match : a->content;
        tok->n_text = (uint32_t)(a->normalized ? a->n_match : a->n_content);
        tok->kind = ROE__TOK_ADDED;
        roe__strmap_put(&t->by_text, a->content, a->n_content, a->id, NULL);
    }
    for (int32_t id = 0; id < t->n_tokens && t->n_added; id++) {
        struct roe__token *tok = &t->tokens[id];
        if (tok->kind != ROE__TOK_HOLE) tok->special = (uint8_t)roe__special_text(t, tok->text, tok->n_text);
    }
    ROE_TRY(roe__trie_build(&t->trie_raw, t, 0));
    return roe__trie_build(&t->trie_norm, t, 1);
}

/* byte_fallback: the "<0xXX>" tokens, for the UTF-8 of each byte's mapped char (byte level)
 * or for each byte (chars). */
static void roe__init_fallback(roe_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char u[4], name[8];
        size_t n = roe__utf8_encode(t->byte_to_cp[b], u);
        t->fallback_n[b] = (uint8_t)n;
        for (size_t k = 0; k < n; k++) {
            snprintf(name, sizeof name, "<0x%02X>", (uint8_t)u[k]);
            t->fallback[b][k] = roe__strmap_get(&t->by_text, name, strlen(name));
            if (t->fallback[b][k] < 0) t->fallback_n[b] = 0;
        }
        snprintf(name, sizeof name, "<0x%02X>", (unsigned)b);
        t->byte_tok[b] = roe__strmap_get(&t->by_text, name, strlen(name));
    }
}

/* truncation and padding shape batches (training, batched encode); inference ignores them. */
static roe_status roe__note_ignored(const cJSON *root, const char *path) {
    static const char *keys[] = {"truncation", "padding"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[k]);
        if (!v || cJSON_IsNull(v)) continue;
        if (!cJSON_IsObject(v))
            return roe_fail(ROE_ERR_FORMAT, "%s: %s: expected an object or null", path, keys[k]);
        ROE_LOG_WARN("tokenizer", "%s: \"%s\" is set; ignored (it shapes batches, not the ids of a text)",
                     path, keys[k]);
    }
    return ROE_OK;
}

roe_status roe__tokenizer_parse(roe_tokenizer *t, const char *path, const char *json, size_t len) {
    const char *end = NULL;
    int oom = 0;
    cJSON *root = roe_json_parse(json, len, &end, &oom);
    if (!root && oom) return roe_fail(ROE_ERR_NOMEM, "%s: out of memory parsing its %zu bytes of JSON", path, len);
    if (!root) {
        size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        return roe_fail(ROE_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", path, at);
    }
    roe_status st = ROE_OK;
    if (!cJSON_IsObject(root)) {
        st = roe_fail(ROE_ERR_FORMAT, "%s: expected a JSON object at the top level", path);
        goto fail;
    }
    ROE_CHECK(roe__note_ignored(root, path));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!model || cJSON_IsNull(model)) {
        st = roe_fail(ROE_ERR_FORMAT, "%s: model: missing", path);
        goto fail;
    }
    if (!cJSON_IsObject(model)) {
        st = roe_fail(ROE_ERR_FORMAT, "%s: model: expected an object", path);
        goto fail;
    }
    ROE_CHECK(roe__load_bpe_options(t, path, model));
    ROE_CHECK(roe__load_normalizer(t, path, cJSON_GetObjectItemCaseSensitive(root, "normalizer"),
                                   "normalizer", 0));
    ROE_CHECK(
        roe__load_pretokenizer(t, path, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")));
    ROE_CHECK(roe__load_decoder(t, path, cJSON_GetObjectItemCaseSensitive(root, "decoder")));

    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int n_added = cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
    int32_t max_id = -1;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    ROE_CHECK(roe__load_vocab(t, path, vocab, n_added, &max_id));
    ROE_CHECK(roe__load_merges(t, path, cJSON_GetObjectItemCaseSensitive(model, "merges")));

    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    t->unk_id = -1;
    if (unk && !cJSON_IsNull(unk)) {
        if (!cJSON_IsString(unk)) {
            st = roe_fail(ROE_ERR_FORMAT, "%s: model.unk_token: expected a string or null", path);
            goto fail;
        }
        t->unk_id = roe__strmap_get(&t->by_text, unk->valuestring, strlen(unk->valuestring));
        if (t->unk_id < 0)
            ROE_LOG_WARN("tokenizer",
                         "%s: model.unk_token \"%s\" is not in model.vocab; unknown "
                         "bytes will be dropped",
                         path, unk->valuestring);
    }
    if (t->byte_fallback) roe__init_fallback(t);

    ROE_CHECK(roe__load_added(t, path, added, (int32_t)t->by_text.count));
    ROE_CHECK(roe__place_added(t, path));
    ROE_CHECK(roe__tokens_pieces(t));
fail:
    cJSON_Delete(root);
    return st;
}
