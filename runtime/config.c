/* config.c — config.json -> struct roe_model_config, validated in one place. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/dtype.h"
#include "base/fileio.h"
#include "base/json.h"

const char *roe_family_name(roe_family f) {
    switch (f) {
    case ROE_FAMILY_OLMOE: return "olmoe";
    case ROE_FAMILY_MIXTRAL: return "mixtral";
    case ROE_FAMILY_QWEN3_MOE: return "qwen3_moe";
    case ROE_FAMILY_QWEN2_MOE: return "qwen2_moe";
    case ROE_FAMILY_GLM4_MOE: return "glm4_moe";
    case ROE_FAMILY_GPT_OSS: return "gpt_oss";
    case ROE_FAMILY_DEEPSEEK_V3: return "deepseek_v3";
    case ROE_FAMILY_LLAMA: return "llama";
    case ROE_FAMILY_MOR_LLAMA: return "mor_llama";
    }
    return "?";
}

int roe_config_n_moe_layers(const struct roe_model_config *c) {
    int n = 0;
    for (int i = 0; i < c->n_layers; i++) n += c->layer_is_moe[i];
    return n;
}

long roe_config_kv_rows_read(const struct roe_model_config *c, int pos) {
    long n = 0;
    for (int l = 0; l < c->n_layers; l++) n += pos - roe_config_history_begin(c, l, pos);
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

/* RoPE: transformers >= 5 writes "rope_parameters": {"rope_type", "rope_theta", ...}; older files
 * write "rope_theta" and "rope_scaling" (rope_type or type) at the top level. Default and YaRN
 * RoPE are implemented (modeling_rope_utils.py: _compute_default_rope_parameters,
 * _compute_yarn_parameters), every other type is refused. */
static roe_status parse_rope_group(const cJSON *p, const char *origin, const char *what,
                                   struct roe_model_config *c, float *partial) {
    struct roe_rope_config *r = &c->rope;
    if (!cJSON_IsObject(p))
        return roe_fail(ROE_ERR_FORMAT, "%s: field '%s' must be an object", origin, what);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(p, "type");
    if (type) {
        const char *t = cJSON_IsString(type) ? type->valuestring : "(not a string)";
        if (strcmp(t, "default") == 0) r->type = ROE_ROPE_DEFAULT;
        else if (strcmp(t, "yarn") == 0) r->type = ROE_ROPE_YARN;
        else
            return roe_fail(ROE_ERR_UNSUPPORTED,
                            "%s: %s.rope_type '%.32s' is not supported (only 'default' and 'yarn' RoPE)",
                            origin, what, t);
    }
    ROE_TRY(get_float(p, origin, "rope_theta", 0, 1.0, 1e12, &r->theta));
    ROE_TRY(get_float(p, origin, "partial_rotary_factor", 0, 0.0, 1.0, partial));
    if (r->type != ROE_ROPE_YARN) return ROE_OK;
    r->factor = 0.0f; /* null: max_position_embeddings / original_max_position_embeddings */
    ROE_TRY(get_float(p, origin, "factor", 0, 1.0, 1e6, &r->factor));
    ROE_TRY(get_float(p, origin, "beta_fast", 0, 1e-6, 1e6, &r->beta_fast));
    ROE_TRY(get_float(p, origin, "beta_slow", 0, 1e-6, 1e6, &r->beta_slow));
    ROE_TRY(get_float(p, origin, "attention_factor", 0, 0.0, 1e6, &r->attention_factor));
    ROE_TRY(get_float(p, origin, "mscale", 0, 0.0, 1e6, &r->mscale));
    ROE_TRY(get_float(p, origin, "mscale_all_dim", 0, 0.0, 1e6, &r->mscale_all_dim));
    ROE_TRY(get_int(p, origin, "original_max_position_embeddings", 0, 1, 1 << 24, &r->original_max_position));
    return get_bool(p, origin, "truncate", &r->truncate);
}

/* The class defaults, then the file's top-level and grouped fields; partial rotary (GLM-4.5's
 * partial_rotary_factor) only where the family's attention applies it. */
static roe_status parse_rope(const cJSON *root, const char *origin, struct roe_model_config *c) {
    struct roe_rope_config *r = &c->rope;
    *r = (struct roe_rope_config){.type = ROE_ROPE_DEFAULT, .theta = 10000.0f, .beta_fast = 32.0f,
                                  .beta_slow = 1.0f, .truncate = 1};
    float partial = c->family == ROE_FAMILY_GLM4_MOE ? 0.5f : 1.0f; /* Glm4MoeConfig's default */
    if (c->family == ROE_FAMILY_MIXTRAL) r->theta = 1e6f;
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (c->family == ROE_FAMILY_GPT_OSS) { /* GptOssConfig: theta 150000, YaRN x32 when no rope fields */
        r->theta = 150000.0f;
        if ((!scaling || cJSON_IsNull(scaling)) && (!params || cJSON_IsNull(params)))
            *r = (struct roe_rope_config){.type = ROE_ROPE_YARN, .theta = 150000.0f, .factor = 32.0f,
                                          .beta_fast = 32.0f, .beta_slow = 1.0f,
                                          .original_max_position = 4096, .truncate = 0};
    }
    ROE_TRY(get_float(root, origin, "rope_theta", 0, 1.0, 1e12, &r->theta));
    ROE_TRY(get_float(root, origin, "partial_rotary_factor", 0, 0.0, 1.0, &partial));
    ROE_TRY(get_int(root, origin, "original_max_position_embeddings", 0, 1, 1 << 24, &r->original_max_position));
    const cJSON *groups[2] = {scaling, params};
    for (int g = 0; g < 2; g++)
        if (groups[g] && !cJSON_IsNull(groups[g]))
            ROE_TRY(parse_rope_group(groups[g], origin, g == 0 ? "rope_scaling" : "rope_parameters", c, &partial));
    if (r->type == ROE_ROPE_YARN) {
        if (!r->original_max_position) r->original_max_position = c->max_position;
        if (r->factor <= 0.0f) r->factor = (float)c->max_position / (float)r->original_max_position;
    }
    if (partial != 1.0f && c->family != ROE_FAMILY_GLM4_MOE)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: partial_rotary_factor %g is not supported for %s", origin,
                        partial, roe_family_name(c->family));
    r->dim = (int)((float)c->head_dim * partial); /* int(head_dim * partial_rotary_factor) */
    if (r->dim < 2 || r->dim % 2 != 0)
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: partial_rotary_factor %g of head_dim %d gives %d rotary dimensions (must be even, >= 2)",
                        origin, partial, c->head_dim, r->dim);
    c->rope_theta = r->theta;
    return ROE_OK;
}

/* The expert count is "num_experts" (OLMoE, Qwen) or "num_local_experts" (Mixtral); each
 * transformers config aliases the other name, and transformers 5 writes either. */
static roe_status get_n_experts(const cJSON *root, const char *origin, int min, int *out) {
    const char *key = cJSON_GetObjectItemCaseSensitive(root, "num_experts") ? "num_experts"
                                                                           : "num_local_experts";
    return get_int(root, origin, key, 1, min, 1 << 16, out);
}

/* Qwen2/Qwen3-MoE: layer i is sparse iff num_experts > 0, i not in mlp_only_layers and
 * (i + 1) % decoder_sparse_step == 0; the dense ones need intermediate_size. */
static roe_status parse_sparse_layers(const cJSON *root, const char *origin, struct roe_model_config *c) {
    int dense_every = 1;
    ROE_TRY(get_int(root, origin, "decoder_sparse_step", 0, 1, 1 << 16, &dense_every));
    for (int i = 0; i < c->n_layers; i++) c->layer_is_moe[i] = c->n_experts > 0 && (i + 1) % dense_every == 0;
    const cJSON *only = cJSON_GetObjectItemCaseSensitive(root, "mlp_only_layers");
    if (only && !cJSON_IsNull(only)) {
        if (!cJSON_IsArray(only))
            return roe_fail(ROE_ERR_FORMAT, "%s: field 'mlp_only_layers' must be an array", origin);
        const cJSON *e;
        cJSON_ArrayForEach(e, only) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= c->n_layers ||
                e->valuedouble != floor(e->valuedouble))
                return roe_fail(ROE_ERR_FORMAT, "%s: mlp_only_layers entry must be a layer index in [0, %d)",
                                origin, c->n_layers);
            c->layer_is_moe[(int)e->valuedouble] = 0;
        }
    }
    for (int i = 0; i < c->n_layers; i++)
        if (!c->layer_is_moe[i] && c->dense_intermediate == 0)
            return roe_fail(ROE_ERR_FORMAT, "%s: layer %d is a dense MLP layer but 'intermediate_size' is missing",
                            origin, i);
    return ROE_OK;
}

/* "layer_types": one of "sliding_attention" / "full_attention" per layer; a sliding layer attends
 * the last sliding_window positions. Absent or null: *present = 0 and nothing set. */
static roe_status parse_layer_types(const cJSON *root, const char *origin, struct roe_model_config *c,
                                    int *present) {
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    *present = lt && !cJSON_IsNull(lt);
    if (!*present) return ROE_OK;
    if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != c->n_layers)
        return roe_fail(ROE_ERR_FORMAT, "%s: field 'layer_types' must be an array of %d strings (one per layer)",
                        origin, c->n_layers);
    for (int i = 0; i < c->n_layers; i++) {
        const cJSON *t = cJSON_GetArrayItem(lt, i);
        const char *v = cJSON_IsString(t) ? t->valuestring : "(not a string)";
        if (strcmp(v, "full_attention") == 0) c->layer_window[i] = 0;
        else if (strcmp(v, "sliding_attention") != 0)
            return roe_fail(ROE_ERR_UNSUPPORTED,
                            "%s: layer_types[%d] '%.32s' is not supported (sliding_attention, full_attention)",
                            origin, i, v);
        else if (c->sliding_window <= 0)
            return roe_fail(ROE_ERR_FORMAT, "%s: layer_types[%d] is sliding_attention but sliding_window is %d",
                            origin, i, c->sliding_window);
        else c->layer_window[i] = c->sliding_window;
    }
    return ROE_OK;
}

static roe_status parse_olmoe_mixtral(const cJSON *root, const char *origin, struct roe_model_config *c) {
    ROE_TRY(get_n_experts(root, origin, 1, &c->n_experts));
    ROE_TRY(get_int(root, origin, "intermediate_size", 1, 1, 1 << 20, &c->moe_intermediate));
    if (c->family == ROE_FAMILY_OLMOE) {
        ROE_TRY(get_float(root, origin, "clip_qkv", 0, 0.0, 1e30, &c->clip_qkv));
        c->qk_norm = ROE_QK_NORM_FULL;
        c->norm_topk_prob = 0;
        ROE_TRY(get_bool(root, origin, "norm_topk_prob", &c->norm_topk_prob));
    } else {
        ROE_TRY(get_int(root, origin, "sliding_window", 0, 0, 1 << 30, &c->sliding_window));
        c->norm_topk_prob = 1; /* Mixtral always renormalises over the k chosen experts */
    }
    for (int i = 0; i < c->n_layers; i++) c->layer_is_moe[i] = 1;
    return ROE_OK;
}

static roe_status parse_qwen(const cJSON *root, const char *origin, struct roe_model_config *c) {
    const int qwen2 = c->family == ROE_FAMILY_QWEN2_MOE;
    ROE_TRY(get_n_experts(root, origin, 0, &c->n_experts));
    ROE_TRY(get_int(root, origin, "moe_intermediate_size", 1, 1, 1 << 20, &c->moe_intermediate));
    if (qwen2) c->dense_intermediate = 5632; /* Qwen2MoeConfig's defaults */
    ROE_TRY(get_int(root, origin, "intermediate_size", 0, 1, 1 << 20, &c->dense_intermediate));
    int use_sw = 0;
    ROE_TRY(get_bool(root, origin, "use_sliding_window", &use_sw));
    if (use_sw) ROE_TRY(get_int(root, origin, "sliding_window", 0, 0, 1 << 30, &c->sliding_window));
    c->norm_topk_prob = 0;
    ROE_TRY(get_bool(root, origin, "norm_topk_prob", &c->norm_topk_prob));
    ROE_TRY(parse_sparse_layers(root, origin, c));
    if (!qwen2) {
        c->qk_norm = ROE_QK_NORM_PER_HEAD;
        return ROE_OK;
    }
    /* Qwen2-MoE: q/k/v biases, a sigmoid-gated shared expert, and sliding windows on the even
     * layers below max_window_layers when layer_types is absent */
    c->qkv_bias = 1;
    ROE_TRY(get_bool(root, origin, "qkv_bias", &c->qkv_bias));
    c->shared_intermediate = 5632;
    ROE_TRY(get_int(root, origin, "shared_expert_intermediate_size", 0, 1, 1 << 20, &c->shared_intermediate));
    c->shared_gate = 1;
    int max_window_layers = 28, have_types = 0;
    ROE_TRY(get_int(root, origin, "max_window_layers", 0, 0, 1 << 20, &max_window_layers));
    ROE_TRY(parse_layer_types(root, origin, c, &have_types));
    if (!have_types)
        for (int i = 0; i < c->n_layers; i++)
            c->layer_window[i] = i % 2 == 0 && i < max_window_layers ? c->sliding_window : 0;
    return ROE_OK;
}

/* The DeepSeek-style MoE of GLM-4.5 and DeepSeek-V3 (defaults: the family's config class):
 * sigmoid routing with the correction bias, checked here (groups divide the experts, at least 2
 * experts a group for the top-2 group score, topk_group <= n_group), shared experts of
 * n_shared_experts x moe_intermediate_size, the first first_k_dense_replace layers dense. */
struct sigmoid_moe_defaults {
    int first_dense, n_group, topk_group;
    float scaling;
};

static roe_status parse_sigmoid_moe(const cJSON *root, const char *origin, const struct sigmoid_moe_defaults *d,
                                    struct roe_model_config *c) {
    const char *ek = cJSON_GetObjectItemCaseSensitive(root, "n_routed_experts") ? "n_routed_experts"
                                                                                : "num_local_experts";
    ROE_TRY(get_int(root, origin, ek, 1, 1, 1 << 16, &c->n_experts));
    ROE_TRY(get_int(root, origin, "moe_intermediate_size", 1, 1, 1 << 20, &c->moe_intermediate));
    ROE_TRY(get_int(root, origin, "intermediate_size", 1, 1, 1 << 20, &c->dense_intermediate));
    int n_shared = 1, first_dense = d->first_dense;
    ROE_TRY(get_int(root, origin, "n_shared_experts", 0, 0, 64, &n_shared));
    c->shared_intermediate = n_shared * c->moe_intermediate;
    ROE_TRY(get_int(root, origin, "first_k_dense_replace", 0, 0, c->n_layers, &first_dense));
    for (int i = 0; i < c->n_layers; i++) c->layer_is_moe[i] = i >= first_dense;
    c->router = ROE_ROUTER_SIGMOID_GROUP;
    c->norm_topk_prob = 1;
    ROE_TRY(get_bool(root, origin, "norm_topk_prob", &c->norm_topk_prob));
    c->n_group = d->n_group;
    c->topk_group = d->topk_group;
    c->routed_scaling = d->scaling;
    ROE_TRY(get_int(root, origin, "n_group", 0, 1, c->n_experts, &c->n_group));
    ROE_TRY(get_int(root, origin, "topk_group", 0, 1, 1 << 16, &c->topk_group));
    ROE_TRY(get_float(root, origin, "routed_scaling_factor", 0, 0.0, 1e6, &c->routed_scaling));
    if (c->n_experts % c->n_group != 0 || c->n_experts / c->n_group < 2)
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: n_group %d must divide the %d experts into groups of at least 2 (a group's "
                        "score is the sum of its top 2)", origin, c->n_group, c->n_experts);
    if (c->topk_group > c->n_group)
        return roe_fail(ROE_ERR_FORMAT, "%s: topk_group %d exceeds n_group %d", origin, c->topk_group,
                        c->n_group);
    return ROE_OK;
}

/* GLM-4.5: the DeepSeek-style MoE (Glm4MoeConfig's defaults), optional per-head q/k norm, q/k/v
 * biases. */
static roe_status parse_glm4(const cJSON *root, const char *origin, struct roe_model_config *c) {
    const struct sigmoid_moe_defaults d = {.first_dense = 1, .n_group = 1, .topk_group = 1, .scaling = 1.0f};
    ROE_TRY(parse_sigmoid_moe(root, origin, &d, c));
    int qk_norm = 0;
    ROE_TRY(get_bool(root, origin, "use_qk_norm", &qk_norm));
    c->qk_norm = qk_norm ? ROE_QK_NORM_PER_HEAD : ROE_QK_NORM_NONE;
    return get_bool(root, origin, "attention_bias", &c->qkv_bias);
}

/* A string field that, when present, must have one value: DeepSeek-V3's config.json names its
 * gate (scoring_func "sigmoid", topk_method "noaux_tc"); transformers implements only that gate
 * and ignores the fields, so a checkpoint trained with another one is refused, not run wrong. */
static roe_status expect_string(const cJSON *root, const char *origin, const char *key, const char *want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return ROE_OK;
    if (cJSON_IsString(v) && strcmp(v->valuestring, want) == 0) return ROE_OK;
    return roe_fail(ROE_ERR_UNSUPPORTED, "%s: %s '%.32s' is not supported for deepseek_v3 (only '%s', the gate "
                    "transformers implements)", origin, key, cJSON_IsString(v) ? v->valuestring : "(not a string)",
                    want);
}

/* DeepSeek-V3 / Kimi K2: the DeepSeek-style MoE (DeepseekV3Config's defaults), biases of MLA's
 * q_a, kv_a and o projections (attention_bias), interleaved RoPE pairs unless rope_interleave is
 * false. The attention's widths: parse_mla. */
static roe_status parse_deepseek_v3(const cJSON *root, const char *origin, struct roe_model_config *c) {
    const struct sigmoid_moe_defaults d = {.first_dense = 3, .n_group = 8, .topk_group = 4, .scaling = 2.5f};
    ROE_TRY(parse_sigmoid_moe(root, origin, &d, c));
    ROE_TRY(expect_string(root, origin, "scoring_func", "sigmoid"));
    ROE_TRY(expect_string(root, origin, "topk_method", "noaux_tc"));
    ROE_TRY(get_bool(root, origin, "attention_bias", &c->qkv_bias));
    c->o_bias = c->qkv_bias;
    c->rope.interleave = 1;
    return get_bool(root, origin, "rope_interleave", &c->rope.interleave);
}

/* gpt-oss: biases on q/k/v/o, sinks, alternating windows, top-k-then-softmax routing with a
 * router bias, the clamped SwiGLU with biases (GptOssConfig's defaults where fields are absent). */
static roe_status parse_gpt_oss(const cJSON *root, const char *origin, struct roe_model_config *c) {
    ROE_TRY(get_n_experts(root, origin, 1, &c->n_experts));
    ROE_TRY(get_int(root, origin, "intermediate_size", 1, 1, 1 << 20, &c->moe_intermediate));
    for (int i = 0; i < c->n_layers; i++) c->layer_is_moe[i] = 1;
    c->qkv_bias = c->o_bias = 1;
    ROE_TRY(get_bool(root, origin, "attention_bias", &c->qkv_bias));
    c->o_bias = c->qkv_bias;
    c->attn_sinks = 1;
    c->router = ROE_ROUTER_TOPK_SOFTMAX;
    c->router_bias = 1;
    c->norm_topk_prob = 1; /* the softmax over the k chosen sums to 1 */
    c->expert_act = ROE_ACT_SWIGLU_OAI;
    c->swiglu_alpha = 1.702f;
    c->swiglu_limit = 7.0f;
    ROE_TRY(get_float(root, origin, "swiglu_alpha", 0, 0.0, 1e6, &c->swiglu_alpha));
    ROE_TRY(get_float(root, origin, "swiglu_limit", 0, 1e-6, 1e30, &c->swiglu_limit));
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    c->sliding_window = sw && cJSON_IsNull(sw) ? 0 : 128;
    ROE_TRY(get_int(root, origin, "sliding_window", 0, 0, 1 << 30, &c->sliding_window));
    int have_types = 0;
    ROE_TRY(parse_layer_types(root, origin, c, &have_types));
    if (have_types) return ROE_OK;
    if (c->sliding_window <= 0) /* the default layer_types has sliding layers */
        return roe_fail(ROE_ERR_FORMAT, "%s: layer 0 is sliding_attention (the default layer_types) but "
                        "sliding_window is %d", origin, c->sliding_window);
    for (int i = 0; i < c->n_layers; i++) c->layer_window[i] = i % 2 == 0 ? c->sliding_window : 0;
    return ROE_OK;
}

/* A string field of the mor object: required, one of `n` values; *out its index. */
static roe_status mor_enum(const cJSON *mor, const char *origin, const char *key, const char *const *vals, int n,
                           int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(mor, key);
    if (!v || cJSON_IsNull(v)) return roe_fail(ROE_ERR_FORMAT, "%s: missing required field '%s'", origin, key);
    for (int i = 0; cJSON_IsString(v) && i < n; i++)
        if (strcmp(v->valuestring, vals[i]) == 0) {
            *out = i;
            return ROE_OK;
        }
    return roe_fail(ROE_ERR_UNSUPPORTED, "%s: field '%s' = '%.32s' is not supported (supported: %s%s%s)", origin, key,
                    cJSON_IsString(v) ? v->valuestring : "(not a string)", vals[0], n > 1 ? ", " : "",
                    n > 1 ? vals[1] : "");
}

/* mor.capacity: one number in (0, 1] per recursion (expert choice's training capacities; the
 * causal inference rule uses the threshold, but the numbers must be sane). */
static roe_status mor_capacity(const cJSON *mor, const char *origin, struct roe_mor_config *m) {
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(mor, "capacity");
    for (int r = 0; r < m->n_recursion; r++) m->capacity[r] = (float)(m->n_recursion - r) / (float)m->n_recursion;
    if (!cap || cJSON_IsNull(cap)) return ROE_OK;
    if (!cJSON_IsArray(cap) || cJSON_GetArraySize(cap) != m->n_recursion)
        return roe_fail(ROE_ERR_FORMAT, "%s: field 'capacity' must be an array of num_recursion = %d numbers",
                        origin, m->n_recursion);
    for (int r = 0; r < m->n_recursion; r++) {
        const cJSON *v = cJSON_GetArrayItem(cap, r);
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0.0 && v->valuedouble <= 1.0))
            return roe_fail(ROE_ERR_FORMAT, "%s: capacity[%d] must be a number in (0, 1]", origin, r);
        m->capacity[r] = (float)v->valuedouble;
    }
    return ROE_OK;
}

/* The "mor" object of a mor_llama config (docs/MODELS.md): every field range-checked, the error
 * naming it. num_hidden_layers (read as n_layers) is the unrolled depth; n_layers becomes the
 * unique layers the model holds. */
static roe_status parse_mor(const cJSON *root, const char *file, struct roe_model_config *c) {
    static const char *const sharing[] = {"middle_cycle"}, *const routers[] = {"expert_choice", "token_choice"},
                              *const kvs[] = {"recursion_wise", "recursive_sharing"};
    static const char *const funcs[] = {"sigmoid", "softmax"};
    struct roe_mor_config *m = &c->mor;
    const cJSON *mor = cJSON_GetObjectItemCaseSensitive(root, "mor");
    if (!cJSON_IsObject(mor))
        return roe_fail(ROE_ERR_FORMAT, "%s: model_type mor_llama needs an object field 'mor'", file);
    char origin[4200];
    snprintf(origin, sizeof origin, "%s: mor", file);
    int v = 0, func = 0;
    ROE_TRY(get_int(mor, origin, "num_recursion", 1, 1, ROE_MOR_MAX_RECURSION, &m->n_recursion));
    ROE_TRY(mor_enum(mor, origin, "sharing", sharing, 1, &v));
    ROE_TRY(mor_enum(mor, origin, "router_type", routers, 2, &v));
    m->router = (roe_mor_router)v;
    ROE_TRY(mor_enum(mor, origin, "router_func", funcs, 2, &func));
    if (func != (int)m->router) /* expert choice: sigmoid; token choice: softmax */
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: router_func '%s' is not supported with router_type '%s' (only '%s')",
                        origin, funcs[func], routers[m->router], funcs[m->router]);
    m->alpha = m->router == ROE_MOR_EXPERT_CHOICE ? 0.1f : 1.0f;
    ROE_TRY(get_float(mor, origin, "alpha", 0, 1e-6, 1e3, &m->alpha));
    m->threshold = 0.5f;
    ROE_TRY(get_float(mor, origin, "threshold", 0, 0.0, 1.0, &m->threshold));
    if (c->n_layers < 2 + m->n_recursion || (c->n_layers - 2) % m->n_recursion != 0)
        return roe_fail(ROE_ERR_FORMAT, "%s: num_hidden_layers %d is not 2 + num_recursion (%d) x a block of >= 1 "
                        "layers (middle_cycle sharing)", file, c->n_layers, m->n_recursion);
    ROE_TRY(mor_capacity(mor, origin, m));
    v = 0;
    if (cJSON_GetObjectItemCaseSensitive(mor, "kv_mode")) ROE_TRY(mor_enum(mor, origin, "kv_mode", kvs, 2, &v));
    m->kv = (roe_mor_kv)v;
    m->n_unrolled = c->n_layers;
    m->block = (c->n_layers - 2) / m->n_recursion;
    c->n_layers = 2 + m->block;
    return ROE_OK;
}

/* Llama (and MoR's Llama layers): every layer a dense SwiGLU MLP of intermediate_size; no biases. */
static roe_status parse_llama(const cJSON *root, const char *origin, struct roe_model_config *c) {
    ROE_TRY(get_int(root, origin, "intermediate_size", 1, 1, 1 << 20, &c->dense_intermediate));
    int bias = 0;
    ROE_TRY(get_bool(root, origin, "mlp_bias", &bias));
    if (bias) return roe_fail(ROE_ERR_UNSUPPORTED, "%s: mlp_bias = true is not supported for %s", origin, c->model_type);
    for (int i = 0; i < c->n_layers; i++) c->layer_is_moe[i] = 0;
    return c->family == ROE_FAMILY_MOR_LLAMA ? parse_mor(root, origin, c) : ROE_OK;
}

static roe_status parse_family(const cJSON *root, const char *origin, struct roe_model_config *c) {
    c->routed_scaling = 1.0f;
    if (c->family == ROE_FAMILY_LLAMA || c->family == ROE_FAMILY_MOR_LLAMA) {
        ROE_TRY(parse_llama(root, origin, c));
        for (int i = 0; i < c->n_layers; i++) c->layer_window[i] = 0;
        return ROE_OK; /* no experts: num_experts_per_tok does not apply */
    }
    switch (c->family) {
    case ROE_FAMILY_OLMOE:
    case ROE_FAMILY_MIXTRAL: ROE_TRY(parse_olmoe_mixtral(root, origin, c)); break;
    case ROE_FAMILY_QWEN3_MOE:
    case ROE_FAMILY_QWEN2_MOE: ROE_TRY(parse_qwen(root, origin, c)); break;
    case ROE_FAMILY_GLM4_MOE: ROE_TRY(parse_glm4(root, origin, c)); break;
    case ROE_FAMILY_GPT_OSS: ROE_TRY(parse_gpt_oss(root, origin, c)); break;
    case ROE_FAMILY_DEEPSEEK_V3: ROE_TRY(parse_deepseek_v3(root, origin, c)); break;
    case ROE_FAMILY_LLAMA:
    case ROE_FAMILY_MOR_LLAMA: break; /* above */
    }
    if (c->family != ROE_FAMILY_GPT_OSS && c->family != ROE_FAMILY_QWEN2_MOE) /* no layer_types: one window */
        for (int i = 0; i < c->n_layers; i++) c->layer_window[i] = c->sliding_window;
    ROE_TRY(get_int(root, origin, "num_experts_per_tok", 1, 1, c->n_experts > 0 ? c->n_experts : 1,
                    &c->top_k));
    if (c->router == ROE_ROUTER_SIGMOID_GROUP && c->top_k > c->topk_group * (c->n_experts / c->n_group))
        return roe_fail(ROE_ERR_FORMAT,
                        "%s: num_experts_per_tok %d exceeds the %d experts of the topk_group %d groups it may use",
                        origin, c->top_k, c->topk_group * (c->n_experts / c->n_group), c->topk_group);
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
        /* range first: casting a double outside int's range is undefined */
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble < vocab) ||
            it->valuedouble != (double)(int)it->valuedouble)
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
    else if (strcmp(mt->valuestring, "qwen2_moe") == 0) c->family = ROE_FAMILY_QWEN2_MOE;
    else if (strcmp(mt->valuestring, "glm4_moe") == 0) c->family = ROE_FAMILY_GLM4_MOE;
    else if (strcmp(mt->valuestring, "gpt_oss") == 0) c->family = ROE_FAMILY_GPT_OSS;
    else if (strcmp(mt->valuestring, "deepseek_v3") == 0) c->family = ROE_FAMILY_DEEPSEEK_V3;
    else if (strcmp(mt->valuestring, "llama") == 0) c->family = ROE_FAMILY_LLAMA;
    else if (strcmp(mt->valuestring, "mor_llama") == 0) c->family = ROE_FAMILY_MOR_LLAMA;
    else
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "%s: model_type '%.64s' is not supported (supported: olmoe, mixtral, qwen3_moe, "
                        "qwen2_moe, glm4_moe, gpt_oss, deepseek_v3, llama, mor_llama)",
                        origin, mt->valuestring);
    snprintf(c->model_type, sizeof c->model_type, "%s", mt->valuestring);
    return ROE_OK;
}

/* MLA's widths (DeepseekV3Config's defaults where absent; q_lora_rank null: no query LoRA). One
 * latent serves every head, so num_key_value_heads must be num_attention_heads (transformers'
 * eager and sdpa attention cannot run other values either). head_dim becomes qk_rope_head_dim,
 * the RoPE width, as DeepseekV3Config sets it whatever the file says. */
static roe_status parse_mla(const cJSON *root, const char *origin, struct roe_model_config *c) {
    struct roe_mla_config *a = &c->mla_cfg;
    *a = (struct roe_mla_config){.q_lora_rank = 1536, .kv_lora_rank = 512, .nope_dim = 128, .rope_dim = 64,
                                 .v_dim = 128};
    c->mla = 1;
    if (c->n_kv_heads != c->n_heads)
        return roe_fail(ROE_ERR_FORMAT, "%s: num_key_value_heads %d must equal num_attention_heads %d for "
                        "deepseek_v3 (multi-head latent attention: one latent serves every head)", origin,
                        c->n_kv_heads, c->n_heads);
    const cJSON *ql = cJSON_GetObjectItemCaseSensitive(root, "q_lora_rank");
    if (ql && cJSON_IsNull(ql)) a->q_lora_rank = 0;
    else ROE_TRY(get_int(root, origin, "q_lora_rank", 0, 1, 1 << 16, &a->q_lora_rank));
    ROE_TRY(get_int(root, origin, "kv_lora_rank", 0, 1, 1 << 16, &a->kv_lora_rank));
    ROE_TRY(get_int(root, origin, "qk_nope_head_dim", 0, 1, 1 << 12, &a->nope_dim));
    ROE_TRY(get_int(root, origin, "qk_rope_head_dim", 0, 2, 1024, &a->rope_dim));
    ROE_TRY(get_int(root, origin, "v_head_dim", 0, 1, 1 << 12, &a->v_dim));
    if (a->rope_dim % 2 != 0)
        return roe_fail(ROE_ERR_FORMAT, "%s: qk_rope_head_dim %d must be even for RoPE", origin, a->rope_dim);
    int qk = a->nope_dim + a->rope_dim; /* transformers writes qk_head_dim too: it must agree */
    ROE_TRY(get_int(root, origin, "qk_head_dim", 0, 1, 1 << 13, &qk));
    if (qk != a->nope_dim + a->rope_dim)
        return roe_fail(ROE_ERR_FORMAT, "%s: qk_head_dim %d is not qk_nope_head_dim %d + qk_rope_head_dim %d",
                        origin, qk, a->nope_dim, a->rope_dim);
    c->head_dim = a->rope_dim;
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
    if (c->family == ROE_FAMILY_DEEPSEEK_V3) return parse_mla(root, origin, c);
    c->head_dim = 0;
    if (c->family == ROE_FAMILY_GPT_OSS && !cJSON_GetObjectItemCaseSensitive(root, "head_dim"))
        c->head_dim = 64; /* GptOssConfig's default; an explicit null means hidden / heads */
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
    if (bias && (c->family <= ROE_FAMILY_QWEN3_MOE || c->family >= ROE_FAMILY_LLAMA)) /* the others read it */
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: attention_bias = true is not supported for %s", origin,
                        roe_family_name(c->family));
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (only silu)", origin,
                        cJSON_IsString(act) ? act->valuestring : "(not a string)");
    return ROE_OK;
}

/* A string field of quantization_config that may be absent or must be `want`. */
static roe_status quant_string(const cJSON *q, const char *origin, const char *key, const char *want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(q, key);
    if (!v || cJSON_IsNull(v) || (cJSON_IsString(v) && strcmp(v->valuestring, want) == 0)) return ROE_OK;
    return roe_fail(ROE_ERR_UNSUPPORTED, "%s: quantization_config.%s '%.32s' is not supported (only '%s')", origin, key,
                    cJSON_IsString(v) ? v->valuestring : "(not a string)", want);
}

/* quant_method "fp8": block-scaled FP8 as DeepSeek-V3 and GLM-4.5-FP8 ship it (transformers'
 * FineGrainedFP8Config): e4m3 values, fp32 weight_scale_inv per 128 x 128 tile, dynamic activations
 * (which the fp32 path does not quantize at all). */
static roe_status parse_fp8(const cJSON *q, const char *origin, struct roe_model_config *c) {
    ROE_TRY(quant_string(q, origin, "fmt", "e4m3"));
    ROE_TRY(quant_string(q, origin, "activation_scheme", "dynamic"));
    ROE_TRY(quant_string(q, origin, "scale_fmt", "float"));
    ROE_TRY(quant_string(q, origin, "expert_dtype", "fp8"));
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(q, "weight_block_size");
    const int ok = cJSON_IsArray(b) && cJSON_GetArraySize(b) == 2 && cJSON_IsNumber(cJSON_GetArrayItem(b, 0)) &&
                   cJSON_IsNumber(cJSON_GetArrayItem(b, 1)) && cJSON_GetArrayItem(b, 0)->valuedouble == ROE_FP8_TILE &&
                   cJSON_GetArrayItem(b, 1)->valuedouble == ROE_FP8_TILE;
    if (!ok)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: quantization_config.weight_block_size must be [128, 128] (the "
                        "block-scaled FP8 that roe reads)", origin);
    c->fp8 = 1;
    return ROE_OK;
}

/* quantization_config: absent or null for a float checkpoint; {"quant_method": "fp8", ...} for
 * block-scaled FP8 linears (parse_fp8); {"quant_method": "mxfp4"} for gpt-oss's MXFP4 experts (the
 * other modules float, as modules_to_not_convert lists them). */
static roe_status parse_quantization(const cJSON *root, const char *origin, struct roe_model_config *c) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (!q || cJSON_IsNull(q)) return ROE_OK;
    const cJSON *qm = cJSON_IsObject(q) ? cJSON_GetObjectItemCaseSensitive(q, "quant_method") : NULL;
    if (!cJSON_IsString(qm))
        return roe_fail(ROE_ERR_FORMAT, "%s: quantization_config must be an object with a string 'quant_method'",
                        origin);
    if (strcmp(qm->valuestring, "fp8") == 0) return parse_fp8(q, origin, c);
    if (strcmp(qm->valuestring, "mxfp4") == 0 && c->family == ROE_FAMILY_GPT_OSS) {
        c->mxfp4 = 1;
        return ROE_OK;
    }
    if (strcmp(qm->valuestring, "mxfp4") == 0)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: quantization_config.quant_method 'mxfp4' is supported for gpt_oss "
                        "only (model_type is %s)", origin, c->model_type);
    return roe_fail(ROE_ERR_UNSUPPORTED, "%s: quantization_config.quant_method '%.64s' is not supported (supported: "
                    "fp8 with 128 x 128 block scales, mxfp4 for gpt_oss)", origin, qm->valuestring);
}

static roe_status parse_root(const cJSON *root, const char *origin, struct roe_model_config *c) {
    ROE_TRY(parse_model_type(root, origin, c));
    ROE_TRY(parse_shapes(root, origin, c));
    ROE_TRY(parse_layer_opts(root, origin, c));
    ROE_TRY(parse_family(root, origin, c));
    ROE_TRY(parse_quantization(root, origin, c));
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
