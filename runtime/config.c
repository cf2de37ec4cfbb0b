/* config.c — config.json -> struct roe_model_config, validated in one place. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/json.h"

const char *roe_family_name(roe_family f) {
    switch (f) {
    case ROE_FAMILY_OLMOE: return "olmoe";
    case ROE_FAMILY_MIXTRAL: return "mixtral";
    case ROE_FAMILY_QWEN3_MOE: return "qwen3_moe";
    }
    return "?";
}

int roe_config_n_moe_layers(const struct roe_model_config *c) {
    int n = 0;
    for (int i = 0; i < c->n_layers; i++) n += c->layer_is_moe[i];
    return n;
}

/* Reads an integer field in [lo, hi]. `required` = 0 leaves *out untouched if absent or null. */
static roe_status get_int(const cJSON *root, const char *origin, const char *key, int required,
                          long lo, long hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (!required) return ROE_OK;
        return roe_fail(ROE_ERR_FORMAT, "%s: missing required field '%s'", origin, key);
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return roe_fail(ROE_ERR_FORMAT, "%s: field '%s' must be an integer", origin, key);
    double d = v->valuedouble;
    if (d < (double)lo || d > (double)hi)
        return roe_fail(ROE_ERR_FORMAT, "%s: field '%s' = %.0f is out of range [%ld, %ld]", origin,
                        key, d, lo, hi);
    *out = (int)d;
    return ROE_OK;
}

static roe_status get_float(const cJSON *root, const char *origin, const char *key, int required,
                            double lo, double hi, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (!required) return ROE_OK;
        return roe_fail(ROE_ERR_FORMAT, "%s: missing required field '%s'", origin, key);
    }
    if (!cJSON_IsNumber(v))
        return roe_fail(ROE_ERR_FORMAT, "%s: field '%s' must be a number", origin, key);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return roe_fail(ROE_ERR_FORMAT, "%s: field '%s' = %g is out of range [%g, %g]", origin, key,
                        v->valuedouble, lo, hi);
    *out = (float)v->valuedouble;
    return ROE_OK;
}

static roe_status get_bool(const cJSON *root, const char *origin, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return ROE_OK;
    if (!cJSON_IsBool(v))
        return roe_fail(ROE_ERR_FORMAT, "%s: field '%s' must be true or false", origin, key);
    *out = cJSON_IsTrue(v);
    return ROE_OK;
}

/* RoPE: transformers >= 5 writes "rope_parameters": {"rope_type", "rope_theta"}; older files
 * write "rope_theta" and "rope_scaling". Only the default (unscaled) RoPE is implemented. */
static roe_status parse_rope(const cJSON *root, const char *origin, struct roe_model_config *c) {
    c->rope_theta = c->family == ROE_FAMILY_MIXTRAL ? 1e6f : 10000.0f; /* the class defaults */
    ROE_TRY(get_float(root, origin, "rope_theta", 0, 1.0, 1e12, &c->rope_theta));
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const cJSON *groups[2] = {scaling, params};
    for (int g = 0; g < 2; g++) {
        const cJSON *p = groups[g];
        if (!p || cJSON_IsNull(p)) continue;
        const char *what = g == 0 ? "rope_scaling" : "rope_parameters";
        if (!cJSON_IsObject(p))
            return roe_fail(ROE_ERR_FORMAT, "%s: field '%s' must be an object", origin, what);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "rope_type");
        if (!type) type = cJSON_GetObjectItemCaseSensitive(p, "type");
        if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "default") == 0))
            return roe_fail(ROE_ERR_UNSUPPORTED,
                            "%s: %s.rope_type '%s' is not supported (only 'default' RoPE)", origin,
                            what, cJSON_IsString(type) ? type->valuestring : "(not a string)");
        ROE_TRY(get_float(p, origin, "rope_theta", 0, 1.0, 1e12, &c->rope_theta));
    }
    return ROE_OK;
}

/* The expert count is "num_experts" (OLMoE, Qwen) or "num_local_experts" (Mixtral); each
 * transformers config aliases the other name, and transformers 5 writes either. */
static roe_status get_n_experts(const cJSON *root, const char *origin, int min, int *out) {
    const char *key = cJSON_GetObjectItemCaseSensitive(root, "num_experts") ? "num_experts"
                                                                           : "num_local_experts";
    return get_int(root, origin, key, 1, min, 1 << 16, out);
}

static roe_status parse_family(const cJSON *root, const char *origin, struct roe_model_config *c) {
    int dense_every = 1;
    switch (c->family) {
    case ROE_FAMILY_OLMOE:
        ROE_TRY(get_n_experts(root, origin, 1, &c->n_experts));
        ROE_TRY(get_int(root, origin, "intermediate_size", 1, 1, 1 << 20, &c->moe_intermediate));
        ROE_TRY(get_float(root, origin, "clip_qkv", 0, 0.0, 1e30, &c->clip_qkv));
        c->qk_norm = ROE_QK_NORM_FULL;
        c->norm_topk_prob = 0;
        ROE_TRY(get_bool(root, origin, "norm_topk_prob", &c->norm_topk_prob));
        for (int i = 0; i < c->n_layers; i++) c->layer_is_moe[i] = 1;
        break;
    case ROE_FAMILY_MIXTRAL:
        ROE_TRY(get_n_experts(root, origin, 1, &c->n_experts));
        ROE_TRY(get_int(root, origin, "intermediate_size", 1, 1, 1 << 20, &c->moe_intermediate));
        ROE_TRY(get_int(root, origin, "sliding_window", 0, 0, 1 << 30, &c->sliding_window));
        c->qk_norm = ROE_QK_NORM_NONE;
        c->norm_topk_prob = 1; /* Mixtral always renormalises over the k chosen experts */
        for (int i = 0; i < c->n_layers; i++) c->layer_is_moe[i] = 1;
        break;
    case ROE_FAMILY_QWEN3_MOE: {
        ROE_TRY(get_n_experts(root, origin, 0, &c->n_experts));
        ROE_TRY(get_int(root, origin, "moe_intermediate_size", 1, 1, 1 << 20, &c->moe_intermediate));
        ROE_TRY(get_int(root, origin, "intermediate_size", 0, 1, 1 << 20, &c->dense_intermediate));
        ROE_TRY(get_int(root, origin, "decoder_sparse_step", 0, 1, 1 << 16, &dense_every));
        int use_sw = 0;
        ROE_TRY(get_bool(root, origin, "use_sliding_window", &use_sw));
        if (use_sw) ROE_TRY(get_int(root, origin, "sliding_window", 0, 0, 1 << 30, &c->sliding_window));
        c->qk_norm = ROE_QK_NORM_PER_HEAD;
        c->norm_topk_prob = 0;
        ROE_TRY(get_bool(root, origin, "norm_topk_prob", &c->norm_topk_prob));
        for (int i = 0; i < c->n_layers; i++)
            c->layer_is_moe[i] = c->n_experts > 0 && (i + 1) % dense_every == 0;
        const cJSON *only = cJSON_GetObjectItemCaseSensitive(root, "mlp_only_layers");
        if (only && !cJSON_IsNull(only)) {
            if (!cJSON_IsArray(only))
                return roe_fail(ROE_ERR_FORMAT, "%s: field 'mlp_only_layers' must be an array", origin);
            const cJSON *e;
            cJSON_ArrayForEach(e, only) {
                if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= c->n_layers ||
                    e->valuedouble != floor(e->valuedouble))
                    return roe_fail(ROE_ERR_FORMAT,
                                    "%s: mlp_only_layers entry must be a layer index in [0, %d)",
                                    origin, c->n_layers);
                c->layer_is_moe[(int)e->valuedouble] = 0;
            }
        }
        for (int i = 0; i < c->n_layers; i++)
            if (!c->layer_is_moe[i] && c->dense_intermediate == 0)
                return roe_fail(ROE_ERR_FORMAT,
                                "%s: layer %d is a dense MLP layer but 'intermediate_size' is missing",
                                origin, i);
        break;
    }
    }
    ROE_TRY(get_int(root, origin, "num_experts_per_tok", 1, 1, c->n_experts > 0 ? c->n_experts : 1,
                    &c->top_k));
    return ROE_OK;
}

/* A token id field: an integer, or (eos_token_id) a list of them. Every id goes into ids[*n]
 * (no repeats, at most ROE_MAX_EOS); *first is the first (-1: none). */
static roe_status parse_token_ids(const cJSON *root, const char *origin, const char *key, int vocab, int *first,
                                  int *ids, int *n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key), *it;
    *first = -1;
    if (!v || cJSON_IsNull(v)) return ROE_OK;
    const cJSON *one = cJSON_IsArray(v) ? NULL : v;
    for (it = one ? one : v->child; it; it = one ? NULL : it->next) {
        if (!cJSON_IsNumber(it) || it->valuedouble != (double)(int)it->valuedouble || it->valuedouble < 0 ||
            it->valuedouble >= vocab)
            return roe_fail(ROE_ERR_FORMAT, "%s: field '%s' must be a token id in [0, %d)%s", origin, key, vocab,
                            one ? "" : ", or a list of them");
        const int id = (int)it->valuedouble;
        if (*first < 0) *first = id;
        int seen = 0;
        for (int j = 0; ids && j < *n; j++) seen |= ids[j] == id;
        if (!ids || seen) continue;
        if (*n == ROE_MAX_EOS)
            return roe_fail(ROE_ERR_UNSUPPORTED, "%s: '%s' has more than %d ids", origin, key, ROE_MAX_EOS);
        ids[(*n)++] = id;
    }
    return ROE_OK;
}

static roe_status parse_token_id(const cJSON *root, const char *origin, const char *key, int vocab, int *out) {
    return parse_token_ids(root, origin, key, vocab, out, NULL, NULL);
}

static roe_status parse_model_type(const cJSON *root, const char *origin, struct roe_model_config *c) {
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt)) return roe_fail(ROE_ERR_FORMAT, "%s: missing string field 'model_type'", origin);
    if (strcmp(mt->valuestring, "olmoe") == 0) c->family = ROE_FAMILY_OLMOE;
    else if (strcmp(mt->valuestring, "mixtral") == 0) c->family = ROE_FAMILY_MIXTRAL;
    else if (strcmp(mt->valuestring, "qwen3_moe") == 0) c->family = ROE_FAMILY_QWEN3_MOE;
    else
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "%s: model_type '%.64s' is not supported (supported: olmoe, mixtral, qwen3_moe)",
                        origin, mt->valuestring);
    snprintf(c->model_type, sizeof c->model_type, "%s", mt->valuestring);
    return ROE_OK;
}

/* Vocabulary, widths, layers and attention heads. */
static roe_status parse_shapes(const cJSON *root, const char *origin, struct roe_model_config *c) {
    ROE_TRY(get_int(root, origin, "vocab_size", 1, 1, 1 << 24, &c->vocab_size));
    ROE_TRY(get_int(root, origin, "hidden_size", 1, 1, 1 << 18, &c->hidden));
    ROE_TRY(get_int(root, origin, "num_hidden_layers", 1, 1, ROE_MAX_LAYERS, &c->n_layers));
    ROE_TRY(get_int(root, origin, "num_attention_heads", 1, 1, 1 << 12, &c->n_heads));
    c->n_kv_heads = c->n_heads;
    ROE_TRY(get_int(root, origin, "num_key_value_heads", 0, 1, c->n_heads, &c->n_kv_heads));
    if (c->n_heads % c->n_kv_heads != 0)
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        origin, c->n_heads, c->n_kv_heads);
    c->head_dim = 0;
    ROE_TRY(get_int(root, origin, "head_dim", 0, 2, 1 << 12, &c->head_dim));
    if (c->head_dim == 0) {
        if (c->hidden % c->n_heads != 0)
            return roe_fail(ROE_ERR_FORMAT,
                            "%s: hidden_size %d is not a multiple of num_attention_heads %d and no "
                            "head_dim is given",
                            origin, c->hidden, c->n_heads);
        c->head_dim = c->hidden / c->n_heads;
    }
    if (c->head_dim % 2 != 0)
        return roe_fail(ROE_ERR_FORMAT, "%s: head_dim %d must be even for RoPE", origin, c->head_dim);
    return ROE_OK;
}

/* Positions, norm, RoPE, embeddings, and the attention and activation we support. */
static roe_status parse_layer_opts(const cJSON *root, const char *origin, struct roe_model_config *c) {
    c->max_position = 4096;
    ROE_TRY(get_int(root, origin, "max_position_embeddings", 0, 1, 1 << 24, &c->max_position));
    c->rms_eps = 1e-6f;
    ROE_TRY(get_float(root, origin, "rms_norm_eps", 0, 0.0, 1.0, &c->rms_eps));
    ROE_TRY(parse_rope(root, origin, c));
    ROE_TRY(get_bool(root, origin, "tie_word_embeddings", &c->tie_word_embeddings));
    int bias = 0;
    ROE_TRY(get_bool(root, origin, "attention_bias", &bias));
    if (bias) return roe_fail(ROE_ERR_UNSUPPORTED, "%s: attention_bias = true is not supported", origin);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (only silu)", origin,
                        cJSON_IsString(act) ? act->valuestring : "(not a string)");
    return ROE_OK;
}

static roe_status parse_root(const cJSON *root, const char *origin, struct roe_model_config *c) {
    ROE_TRY(parse_model_type(root, origin, c));
    ROE_TRY(parse_shapes(root, origin, c));
    ROE_TRY(parse_layer_opts(root, origin, c));
    ROE_TRY(parse_family(root, origin, c));
    ROE_TRY(parse_token_id(root, origin, "bos_token_id", c->vocab_size, &c->bos_token_id));
    return parse_token_ids(root, origin, "eos_token_id", c->vocab_size, &c->eos_token_id, c->eos_ids, &c->n_eos);
}

/* generation_config.json's eos_token_id joins the config's (absent file: nothing). */
static roe_status load_generation_config(const char *dir, struct roe_model_config *c) {
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (!roe_is_file(path)) return ROE_OK;
    char *text = NULL;
    size_t len = 0;
    ROE_TRY(roe_file_read_all(path, 1 << 20, &text, &len));
    int oom = 0, first;
    cJSON *root = roe_json_parse(text, len, NULL, &oom);
    roe_status st = ROE_OK;
    if (!root || !cJSON_IsObject(root))
        st = oom ? roe_fail(ROE_ERR_NOMEM, "%s: out of memory parsing it", path)
                 : roe_fail(ROE_ERR_FORMAT, "%s: not a JSON object", path);
    else
        st = parse_token_ids(root, path, "eos_token_id", c->vocab_size, &first, c->eos_ids, &c->n_eos);
    if (st == ROE_OK && c->eos_token_id < 0 && c->n_eos > 0) c->eos_token_id = c->eos_ids[0];
    cJSON_Delete(root);
    roe_free(text);
    return st;
}

roe_status roe_config_parse(const char *json, const char *origin, struct roe_model_config *c) {
    memset(c, 0, sizeof *c);
    int oom = 0;
    cJSON *root = roe_json_parse(json, strlen(json), NULL, &oom);
    roe_status st;
    if (!root || !cJSON_IsObject(root))
        st = oom ? roe_fail(ROE_ERR_NOMEM, "%s: out of memory parsing it", origin)
                 : roe_fail(ROE_ERR_FORMAT, "%s: not a JSON object", origin);
    else
        st = parse_root(root, origin, c);
    cJSON_Delete(root);
    return st;
}

roe_status roe_config_load(const char *dir, struct roe_model_config *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = NULL;
    size_t len = 0;
    ROE_TRY(roe_file_read_all(path, 1 << 24, &text, &len));
    roe_status st = roe_config_parse(text, path, out);
    roe_free(text);
    return st == ROE_OK ? load_generation_config(dir, out) : st;
}
