/*
 * tokenizer_load_steps.c — the normalizer, pre-tokenizer and decoder of a tokenizer.json.
 *
 * Supported, each with every field checked and anything else refused by name:
 *   normalizer     null, NFC, NFD, NFKC, NFKD, Prepend, Replace (String or Regex pattern),
 *                  Sequence of those
 *   pre_tokenizer  null, ByteLevel, Split (Regex or String, any behaviour, invert),
 *                  Metaspace (replacement, prepend_scheme always/first/never or the legacy
 *                  add_prefix_space, split), Sequence of those (ByteLevel last; not both
 *                  ByteLevel and Metaspace)
 *   decoder        null, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence
 * The SentencePiece-style BPE of Llama 2 and Mixtral is normalizer Sequence[Prepend("▁"),
 * Replace(" ", "▁")], pre_tokenizer null, decoder Sequence[Replace("▁", " "), ByteFallback,
 * Fuse, Strip(" ", 1, 0)]; its newer conversion is pre_tokenizer Metaspace(prepend_scheme
 * "first", split false) with no normalizer.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "tokenizer_impl.h"

/* Hugging Face's GPT-2 pattern, used by ByteLevel with use_regex. */
static const char ROE__GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- small JSON helpers -------------------------------------------------------------------- */

roe_status roe__json_bool(const cJSON *obj, const char *key, int def, const char *path,
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

roe_status roe__json_type(const cJSON *obj, const char *path, const char *where, const char **type) {
    if (!cJSON_IsObject(obj))
        return roe_fail(ROE_ERR_FORMAT, "%s: %s: expected an object or null", path, where);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (!cJSON_IsString(v))
        return roe_fail(ROE_ERR_FORMAT, "%s: %s.type: expected a string", path, where);
    *type = v->valuestring;
    return ROE_OK;
}

roe_status roe__json_utf8(const char *s, const char *path, const char *where) {
    size_t bad;
    if (!roe__utf8_valid(s, strlen(s), &bad))
        return roe_fail(ROE_ERR_FORMAT, "%s: %s: invalid UTF-8 at byte %zu of \"%s\"", path, where,
                        bad, s);
    return ROE_OK;
}

/* A required string field (valid UTF-8). */
static roe_status roe__json_str(const cJSON *o, const char *key, const char *path, const char *where,
                                const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v))
        return roe_fail(ROE_ERR_FORMAT, "%s: %s.%s: expected a string", path, where, key);
    char field[128];
    snprintf(field, sizeof field, "%s.%s", where, key);
    ROE_TRY(roe__json_utf8(v->valuestring, path, field));
    *out = v->valuestring;
    return ROE_OK;
}

/* A field that must hold exactly one character (Rust `char`): its code point. */
static roe_status roe__json_char(const cJSON *o, const char *key, const char *path, const char *where,
                                 uint32_t *cp) {
    const char *s;
    ROE_TRY(roe__json_str(o, key, path, where, &s));
    size_t n = strlen(s);
    if (n == 0 || roe__utf8_decode(s, n, 0, cp) != n)
        return roe_fail(ROE_ERR_FORMAT, "%s: %s.%s: expected one character, got \"%s\"", path, where,
                        key, s);
    return ROE_OK;
}

/* A {"String": s} or {"Regex": r} pattern, compiled (a String is matched literally). */
static roe_status roe__json_pattern(roe_tokenizer *t, const cJSON *o, const char *path, const char *where,
                                    pcre2_code **re) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
    if (!cJSON_IsObject(pat) || (!cJSON_IsString(rx) && !cJSON_IsString(lit)))
        return roe_fail(ROE_ERR_FORMAT, "%s: %s.pattern: expected {\"Regex\": ...} or {\"String\": ...}",
                        path, where);
    const cJSON *p = cJSON_IsString(rx) ? rx : lit;
    char field[128];
    snprintf(field, sizeof field, "%s.pattern.%s", where, p == rx ? "Regex" : "String");
    ROE_TRY(roe__json_utf8(p->valuestring, path, field));
    return roe__regex_compile(t, path, field, p->valuestring, p == lit, re);
}

/* A Replace (normalizer or decoder): its pattern and content. */
static roe_status roe__json_replace(roe_tokenizer *t, const cJSON *o, const char *path, const char *where,
                                    pcre2_code **re, char **text, size_t *n_text) {
    const char *content;
    ROE_TRY(roe__json_str(o, "content", path, where, &content));
    ROE_TRY(roe__json_pattern(t, o, path, where, re));
    *n_text = strlen(content);
    *text = roe_strndup(content, *n_text);
    if (!*text) return roe_fail(ROE_ERR_NOMEM, "%s: %s.content", path, where);
    return ROE_OK;
}

/* Metaspace's prepend_scheme, or the legacy add_prefix_space (false: never). */
static roe_status roe__json_prepend(const cJSON *o, const char *path, const char *where, int *out) {
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(o, "prepend_scheme");
    *out = ROE__PREPEND_ALWAYS;
    if (ps && !cJSON_IsNull(ps)) {
        static const char *names[] = {"always", "first", "never"};
        *out = -1;
        for (int k = 0; k < 3 && cJSON_IsString(ps); k++)
            if (strcmp(ps->valuestring, names[k]) == 0) *out = k;
        if (*out < 0)
            return roe_fail(ROE_ERR_FORMAT, "%s: %s.prepend_scheme: expected \"always\", \"first\" or "
                                            "\"never\"", path, where);
    }
    int aps;
    ROE_TRY(roe__json_bool(o, "add_prefix_space", 1, path, where, &aps));
    if (!aps && *out != ROE__PREPEND_NEVER)
        return roe_fail(ROE_ERR_FORMAT, "%s: %s: add_prefix_space false does not match prepend_scheme",
                        path, where);
    return ROE_OK;
}

/* ---- normalizer ---------------------------------------------------------------------------- */

static roe_status roe__load_norm_one(roe_tokenizer *t, const char *path, const cJSON *n,
                                     const char *where, const char *type) {
    if (t->n_norms == ROE__TOK_MAX_NORMS)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: %s: more than %d normalizers", path, where,
                        ROE__TOK_MAX_NORMS);
    struct roe__norm *nm = &t->norms[t->n_norms];
    memset(nm, 0, sizeof *nm);
    if (strcmp(type, "Prepend") == 0) {
        const char *pre;
        ROE_TRY(roe__json_str(n, "prepend", path, where, &pre));
        nm->kind = ROE__NORM_PREPEND;
        nm->n_text = strlen(pre);
        nm->text = roe_strndup(pre, nm->n_text);
        t->n_norms++; /* counted before any failure below, so that free finds it */
        return nm->text ? ROE_OK : roe_fail(ROE_ERR_NOMEM, "%s: %s.prepend", path, where);
    }
    if (strcmp(type, "Replace") == 0) {
        nm->kind = ROE__NORM_REPLACE;
        t->n_norms++;
        return roe__json_replace(t, n, path, where, &nm->re, &nm->text, &nm->n_text);
    }
    int opts = roe__norm_options(type);
    if (opts < 0)
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "%s: %s.type: \"%s\" is unsupported (supported: null, NFC, NFD, NFKC, NFKD, "
                        "Prepend, Replace, Sequence of those)",
                        path, where, type);
    nm->kind = ROE__NORM_UNICODE;
    nm->opts = opts;
    t->n_norms++;
    return ROE_OK;
}

roe_status roe__load_normalizer(roe_tokenizer *t, const char *path, const cJSON *n, const char *where,
                                int depth) {
    if (!n || cJSON_IsNull(n)) return ROE_OK;
    const char *type;
    ROE_TRY(roe__json_type(n, path, where, &type));
    if (strcmp(type, "Sequence") == 0 && depth < 4) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list))
            return roe_fail(ROE_ERR_FORMAT, "%s: %s.normalizers: expected an array", path, where);
        int i = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, list) {
            char sub[96];
            snprintf(sub, sizeof sub, "%.60s.normalizers[%d]", where, i++);
            ROE_TRY(roe__load_normalizer(t, path, item, sub, depth + 1));
        }
        return ROE_OK;
    }
    return roe__load_norm_one(t, path, n, where, type);
}

/* ---- pre-tokenizer ------------------------------------------------------------------------- */

static roe_status roe__load_split(roe_tokenizer *t, const char *path, const cJSON *o,
                                  const char *where, struct roe__pretok_step *st) {
    static const char *behaviors[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                      "Contiguous"};
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
    return roe__json_pattern(t, o, path, where, &st->re);
}

static roe_status roe__load_bytelevel(roe_tokenizer *t, const char *path, const cJSON *o,
                                      const char *where, struct roe__pretok_step *st) {
    char field[96];
    int use_regex;
    st->kind = ROE__STEP_BYTELEVEL;
    st->behavior = ROE__SPLIT_ISOLATED;
    t->byte_level = 1;
    ROE_TRY(roe__json_bool(o, "add_prefix_space", 1, path, where, &st->add_prefix_space));
    ROE_TRY(roe__json_bool(o, "use_regex", 1, path, where, &use_regex));
    if (!use_regex) return ROE_OK;
    snprintf(field, sizeof field, "%s (GPT-2 pattern)", where);
    return roe__regex_compile(t, path, field, ROE__GPT2_PATTERN, 0, &st->re);
}

static roe_status roe__load_metaspace(roe_tokenizer *t, const char *path, const cJSON *o,
                                      const char *where, struct roe__pretok_step *st) {
    uint32_t cp;
    int split;
    st->kind = ROE__STEP_METASPACE;
    st->behavior = ROE__SPLIT_MERGED_WITH_NEXT;
    ROE_TRY(roe__json_char(o, "replacement", path, where, &cp));
    st->n_rep = (uint8_t)roe__utf8_encode(cp, st->rep);
    ROE_TRY(roe__json_prepend(o, path, where, &st->prepend));
    ROE_TRY(roe__json_bool(o, "split", 1, path, where, &split));
    if (!split) return ROE_OK;
    char lit[5] = {0};
    memcpy(lit, st->rep, st->n_rep);
    return roe__regex_compile(t, path, where, lit, 1, &st->re);
}

static roe_status roe__load_pretok_one(roe_tokenizer *t, const char *path, const cJSON *o,
                                       const char *where) {
    const char *type;
    ROE_TRY(roe__json_type(o, path, where, &type));
    if (t->n_steps == ROE__TOK_MAX_STEPS)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: %s: more than %d pre-tokenizers", path, where,
                        ROE__TOK_MAX_STEPS);
    if (t->n_steps > 0 && t->steps[t->n_steps - 1].kind == ROE__STEP_BYTELEVEL)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: %s: nothing may follow ByteLevel", path, where);
    struct roe__pretok_step *st = &t->steps[t->n_steps++];
    if (strcmp(type, "Split") == 0) return roe__load_split(t, path, o, where, st);
    if (strcmp(type, "ByteLevel") == 0) return roe__load_bytelevel(t, path, o, where, st);
    if (strcmp(type, "Metaspace") == 0) return roe__load_metaspace(t, path, o, where, st);
    return roe_fail(ROE_ERR_UNSUPPORTED,
                    "%s: %s.type: \"%s\" is unsupported (supported: ByteLevel, Split, Metaspace, "
                    "Sequence of those)",
                    path, where, type);
}

roe_status roe__load_pretokenizer(roe_tokenizer *t, const char *path, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return ROE_OK; /* the whole text is one word */
    const char *type;
    ROE_TRY(roe__json_type(p, path, "pre_tokenizer", &type));
    if (strcmp(type, "Sequence") != 0) return roe__load_pretok_one(t, path, p, "pre_tokenizer");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    if (!cJSON_IsArray(items))
        return roe_fail(ROE_ERR_FORMAT, "%s: pre_tokenizer.pretokenizers: expected an array", path);
    int n = cJSON_GetArraySize(items), metaspace = 0;
    for (int i = 0; i < n; i++) {
        char where[64];
        snprintf(where, sizeof where, "pre_tokenizer.pretokenizers[%d]", i);
        ROE_TRY(roe__load_pretok_one(t, path, cJSON_GetArrayItem(items, i), where));
        if (t->steps[t->n_steps - 1].kind == ROE__STEP_METASPACE) metaspace = 1;
    }
    if (metaspace && t->byte_level)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: pre_tokenizer: both Metaspace and ByteLevel", path);
    return ROE_OK;
}

/* ---- decoder ------------------------------------------------------------------------------- */

static roe_status roe__load_strip(const cJSON *o, const char *path, const char *where,
                                  struct roe__decoder *d) {
    ROE_TRY(roe__json_char(o, "content", path, where, &d->cp));
    static const char *ends[] = {"start", "stop"};
    size_t *dst[] = {&d->start, &d->stop};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, ends[k]);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble) ||
            v->valuedouble > 1e9)
            return roe_fail(ROE_ERR_FORMAT, "%s: %s.%s: expected a count", path, where, ends[k]);
        *dst[k] = (size_t)v->valuedouble;
    }
    return ROE_OK;
}

static roe_status roe__load_dec_one(roe_tokenizer *t, const char *path, const cJSON *o,
                                    const char *where) {
    const char *type;
    ROE_TRY(roe__json_type(o, path, where, &type));
    if (t->n_decoders == ROE__TOK_MAX_DECODERS)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: %s: more than %d decoders", path, where,
                        ROE__TOK_MAX_DECODERS);
    struct roe__decoder *d = &t->decoders[t->n_decoders++];
    memset(d, 0, sizeof *d);
    if (strcmp(type, "ByteLevel") == 0) {
        d->kind = ROE__DEC_BYTELEVEL;
    } else if (strcmp(type, "ByteFallback") == 0) {
        d->kind = ROE__DEC_BYTEFALLBACK;
    } else if (strcmp(type, "Fuse") == 0) {
        d->kind = ROE__DEC_FUSE;
    } else if (strcmp(type, "Replace") == 0) {
        d->kind = ROE__DEC_REPLACE;
        return roe__json_replace(t, o, path, where, &d->re, &d->text, &d->n_text);
    } else if (strcmp(type, "Strip") == 0) {
        d->kind = ROE__DEC_STRIP;
        return roe__load_strip(o, path, where, d);
    } else if (strcmp(type, "Metaspace") == 0) {
        d->kind = ROE__DEC_METASPACE;
        ROE_TRY(roe__json_char(o, "replacement", path, where, &d->cp));
        return roe__json_prepend(o, path, where, &d->prepend);
    } else {
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "%s: %s.type: \"%s\" is unsupported (supported: ByteLevel, Replace, "
                        "ByteFallback, Fuse, Strip, Metaspace, Sequence of those)",
                        path, where, type);
    }
    return ROE_OK;
}

roe_status roe__load_decoder(roe_tokenizer *t, const char *path, const cJSON *d) {
    if (!d || cJSON_IsNull(d)) return ROE_OK; /* tokens joined with " " */
    t->has_decoder = 1;
    const char *type;
    ROE_TRY(roe__json_type(d, path, "decoder", &type));
    if (strcmp(type, "Sequence") != 0) return roe__load_dec_one(t, path, d, "decoder");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
    if (!cJSON_IsArray(list))
        return roe_fail(ROE_ERR_FORMAT, "%s: decoder.decoders: expected an array", path);
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, list) {
        char where[48];
        snprintf(where, sizeof where, "decoder.decoders[%d]", i++);
        ROE_TRY(roe__load_dec_one(t, path, item, where));
    }
    return ROE_OK;
}
