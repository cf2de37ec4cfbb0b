/*
 * tokenizer_load.c — tokenizer.json (Hugging Face `tokenizers` serialization 1.0) to a
 * struct roe_tokenizer. Every field we read is checked; every field that would change
 * encode(s, add_special_tokens=False) and that we do not implement is rejected by name,
 * so a tokenizer either loads and matches Hugging Face or fails with a message such as
 *   "models/x/tokenizer.json: model.merges[12]: expected "a b" or ["a", "b"]".
 * Ignored on purpose: "version", "post_processor" (encode applies none), and the
 * ByteLevel "trim_offsets" flag (offsets only).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/json.h"
#include "base/log.h"
#include "tokenizer_impl.h"

/* Hugging Face's GPT-2 pattern, used by ByteLevel with use_regex. */
static const char ROE__GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- small JSON helpers -------------------------------------------------------------------- */

/* Reads an optional boolean: absent or null gives `def`. */
static roe_status roe__json_bool(const cJSON *obj, const char *key, int def, const char *path,
                                 const char *where, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return ROE_OK;
    }
    if (!cJSON_IsBool(v))
        return roe_fail(ROE_ERR_FORMAT, "%s: %s.%s: expected true or false", path, where, key);
    *out = cJSON_IsTrue(v);
    return ROE_OK;
}

/* The "type" string of a component object. */
static roe_status roe__json_type(const cJSON *obj, const char *path, const char *where,
                                 const char **type) {
    if (!cJSON_IsObject(obj))
        return roe_fail(ROE_ERR_FORMAT, "%s: %s: expected an object or null", path, where);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (!cJSON_IsString(v))
        return roe_fail(ROE_ERR_FORMAT, "%s: %s.type: expected a string", path, where);
    *type = v->valuestring;
    return ROE_OK;
}

static roe_status roe__json_utf8(const char *s, const char *path, const char *where) {
    size_t bad;
    if (!roe__utf8_valid(s, strlen(s), &bad))
        return roe_fail(ROE_ERR_FORMAT, "%s: %s: invalid UTF-8 at byte %zu of \"%s\"", path, where,
                        bad, s);
    return ROE_OK;
}

/* ---- normalizer, pre-tokenizer, decoder ---------------------------------------------------- */

static roe_status roe__load_normalizer(roe_tokenizer *t, const char *path, const cJSON *n,
                                       const char *where, int depth) {
    if (!n || cJSON_IsNull(n)) return ROE_OK;
    const char *type;
    ROE_TRY(roe__json_type(n, path, where, &type));
    if (strcmp(type, "Sequence") == 0 && depth == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list))
            return roe_fail(ROE_ERR_FORMAT, "%s: %s.normalizers: expected an array", path, where);
        int i = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, list) {
            char sub[64];
            snprintf(sub, sizeof sub, "%s.normalizers[%d]", where, i++);
            ROE_TRY(roe__load_normalizer(t, path, item, sub, depth + 1));
        }
        return ROE_OK;
    }
    int opts = roe__norm_options(type);
    if (opts < 0)
        return roe_fail(
            ROE_ERR_UNSUPPORTED,
            "%s: %s.type: \"%s\" is unsupported (supported: null, NFC, NFD, NFKC, NFKD, "
            "Sequence of those)",
            path, where, type);
    if (t->n_norms == ROE__TOK_MAX_NORMS)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: %s: more than %d normalizers", path, where,
                        ROE__TOK_MAX_NORMS);
    t->norms[t->n_norms++] = opts;
    return ROE_OK;
}

static roe_status roe__load_split(roe_tokenizer *t, const char *path, const cJSON *o,
                                  const char *where, struct roe__pretok_step *st) {
    static const char *behaviors[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                      "Contiguous"};
    char field[96];
    st->kind = ROE__STEP_SPLIT;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "behavior");
    if (!cJSON_IsString(b))
        return roe_fail(ROE_ERR_FORMAT, "%s: %s.behavior: expected a string", path, where);
    st->behavior = -1;
    for (int k = 0; k < 5; k++)
        if (strcmp(b->valuestring, behaviors[k]) == 0) st->behavior = k;
    if (st->behavior < 0)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: %s.behavior: \"%s\" is unknown", path, where,
                        b->valuestring);
    ROE_TRY(roe__json_bool(o, "invert", 0, path, where, &st->invert));
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
    if (!cJSON_IsObject(pat) || (!cJSON_IsString(re) && !cJSON_IsString(lit)))
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: %s.pattern: expected {\"Regex\": ...} or {\"String\": ...}", path,
                        where);
    const cJSON *p = cJSON_IsString(re) ? re : lit;
    snprintf(field, sizeof field, "%s.pattern.%s", where, p == re ? "Regex" : "String");
    ROE_TRY(roe__json_utf8(p->valuestring, path, field));
    return roe__regex_compile(t, path, field, p->valuestring, p == lit, &st->re);
}

static roe_status roe__load_bytelevel(roe_tokenizer *t, const char *path, const cJSON *o,
                                      const char *where, struct roe__pretok_step *st) {
    char field[96];
    int use_regex;
    st->kind = ROE__STEP_BYTELEVEL;
    st->behavior = ROE__SPLIT_ISOLATED;
    ROE_TRY(roe__json_bool(o, "add_prefix_space", 1, path, where, &st->add_prefix_space));
    ROE_TRY(roe__json_bool(o, "use_regex", 1, path, where, &use_regex));
    if (!use_regex) return ROE_OK;
    snprintf(field, sizeof field, "%s (GPT-2 pattern)", where);
    return roe__regex_compile(t, path, field, ROE__GPT2_PATTERN, 0, &st->re);
}

static roe_status roe__load_pretokenizer(roe_tokenizer *t, const char *path, const cJSON *p) {
    if (!p || cJSON_IsNull(p))
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "%s: pre_tokenizer: null is unsupported (a byte-level "
                        "BPE needs ByteLevel)",
                        path);
    const char *type;
    ROE_TRY(roe__json_type(p, path, "pre_tokenizer", &type));
    const cJSON *items = NULL;
    int single = strcmp(type, "Sequence") != 0;
    if (!single) {
        items = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(items))
            return roe_fail(ROE_ERR_FORMAT, "%s: pre_tokenizer.pretokenizers: expected an array",
                            path);
    }
    int n = single ? 1 : cJSON_GetArraySize(items);
    for (int i = 0; i < n; i++) {
        const cJSON *o = single ? p : cJSON_GetArrayItem(items, i);
        char where[64];
        if (single)
            snprintf(where, sizeof where, "pre_tokenizer");
        else
            snprintf(where, sizeof where, "pre_tokenizer.pretokenizers[%d]", i);
        ROE_TRY(roe__json_type(o, path, where, &type));
        if (t->n_steps == ROE__TOK_MAX_STEPS)
            return roe_fail(ROE_ERR_UNSUPPORTED, "%s: %s: more than %d pre-tokenizers", path, where,
                            ROE__TOK_MAX_STEPS);
        if (t->n_steps > 0 && t->steps[t->n_steps - 1].kind == ROE__STEP_BYTELEVEL)
            return roe_fail(ROE_ERR_UNSUPPORTED, "%s: %s: nothing may follow ByteLevel", path,
                            where);
        struct roe__pretok_step *st = &t->steps[t->n_steps++];
        if (strcmp(type, "Split") == 0)
            ROE_TRY(roe__load_split(t, path, o, where, st));
        else if (strcmp(type, "ByteLevel") == 0)
            ROE_TRY(roe__load_bytelevel(t, path, o, where, st));
        else
            return roe_fail(ROE_ERR_UNSUPPORTED,
                            "%s: %s.type: \"%s\" is unsupported (supported: ByteLevel, Split, "
                            "Sequence of those ending with ByteLevel)",
                            path, where, type);
    }
    if (t->n_steps == 0 || t->steps[t->n_steps - 1].kind != ROE__STEP_BYTELEVEL)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: pre_tokenizer: must end with ByteLevel", path);
    return ROE_OK;
}

static roe_status roe__load_decoder(const char *path, const cJSON *d) {
    if (!d || cJSON_IsNull(d))
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "%s: decoder: null is unsupported (expected ByteLevel)", path);
    const char *type;
    ROE_TRY(roe__json_type(d, path, "decoder", &type));
    if (strcmp(type, "ByteLevel") == 0) return ROE_OK;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        if (!cJSON_IsArray(list))
            return roe_fail(ROE_ERR_FORMAT, "%s: decoder.decoders: expected an array", path);
        int i = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, list) {
            char where[48];
            snprintf(where, sizeof where, "decoder.decoders[%d]", i++);
            ROE_TRY(roe__json_type(item, path, where, &type));
            if (strcmp(type, "ByteLevel") != 0)
                return roe_fail(ROE_ERR_UNSUPPORTED,
                                "%s: %s.type: \"%s\" is unsupported "
                                "(expected ByteLevel)",
                                path, where, type);
        }
        if (i == 1) return ROE_OK;
    }
    return roe_fail(ROE_ERR_UNSUPPORTED,
                    "%s: decoder.type: \"%s\" is unsupported (expected ByteLevel)", path, type);
}

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

/* Reads model.vocab: copies each token into the arena twice (as spelled, and as the bytes
 * it decodes to) and fills t->tokens, t->by_text, t->byte_id. `n_added` sizes by_text. */
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
    if (t->ignore_merges) ROE_TRY(roe__strmap_init(&t->vocab_bytes, n, "vocabulary bytes"));
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
        /* Decoded bytes: ByteLevel maps each char back to its byte; a token with a char
         * outside the map decodes to its own UTF-8 (as Hugging Face's decoder does) and can
         * never come out of BPE. */
        char *out = t->arena + t->arena_used;
        size_t k = 0, i = 0;
        int mapped = 1;
        while (i < len) {
            uint32_t cp;
            i += roe__utf8_decode(text, len, i, &cp);
            if (cp >= 324 || t->cp_to_byte[cp] < 0) {
                mapped = 0;
                break;
            }
            out[k++] = (char)t->cp_to_byte[cp];
        }
        if (!mapped) {
            memcpy(out, text, len);
            k = len;
        }
        out[k] = '\0';
        t->arena_used += k + 1;
        tok->bytes = out;
        tok->n_bytes = (uint32_t)k;
        tok->kind = ROE__TOK_VOCAB;
        if (mapped && k == 1) t->byte_id[(uint8_t)out[0]] = id;
        if (mapped && t->ignore_merges) roe__strmap_put(&t->vocab_bytes, out, k, id, NULL);
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

/* Sizes t->tokens for the added ids and records them (they take precedence over the vocab
 * when decoding, as in Hugging Face's id_to_token). */
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
        tok->bytes = a->content;
        tok->n_bytes = (uint32_t)a->n_content;
        tok->kind = ROE__TOK_ADDED;
        tok->special = a->special;
        roe__strmap_put(&t->by_text, a->content, a->n_content, a->id, NULL);
    }
    ROE_TRY(roe__trie_build(&t->trie_raw, t, 0));
    return roe__trie_build(&t->trie_norm, t, 1);
}

/* byte_fallback: the "<0xXX>" tokens for the UTF-8 of each byte's mapped char. */
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
    }
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
    static const char *unsupported_if_set[] = {"truncation", "padding"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, unsupported_if_set[k]);
        if (v && !cJSON_IsNull(v)) {
            st = roe_fail(ROE_ERR_UNSUPPORTED, "%s: %s: only null is supported", path,
                          unsupported_if_set[k]);
            goto fail;
        }
    }
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
    ROE_CHECK(roe__load_decoder(path, cJSON_GetObjectItemCaseSensitive(root, "decoder")));

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
fail:
    cJSON_Delete(root);
    return st;
}
