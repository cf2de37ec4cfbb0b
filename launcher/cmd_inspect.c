/* cmd_inspect.c — `roe inspect`: the model's config, tensor sizes and memory plan. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "base/env.h"
#include "json_out.h"
#include "runtime/engine.h"
#include "runtime/finite.h"
#include "runtime/rope.h"
#include "session.h"

static const char *CMD = "inspect";
static const char *SYNOPSIS = "[--model DIR] [--ranks N] [--check-weights] [--json]";

/* Per-rank expert lists and resident bytes under a placement for n_ranks. */
static void placement_json(cJSON *root, const struct roe_model *m, const struct roe_placement *pl) {
    const struct roe_model_config *c = &m->cfg;
    const int uniform = roe_placement_uniform(pl, c);
    int first_moe = 0;
    while (first_moe < c->n_layers && !c->layer_is_moe[first_moe]) first_moe++;
    cJSON_AddStringToObject(root, "placement", pl->source);
    cJSON *ranks = cJSON_AddArrayToObject(root, "ranks");
    char span[4096];
    for (int r = 0; r < pl->n_ranks; r++) {
        cJSON *o = cJSON_CreateObject();
        const long held = roe_placement_count(pl, r);
        cJSON_AddNumberToObject(o, "rank", r);
        if (uniform) {
            roe_placement_describe(pl, first_moe, r, span, sizeof span);
            cJSON_AddStringToObject(o, "experts", span);
        } else {
            cJSON *per = cJSON_AddObjectToObject(o, "experts");
            for (int l = 0; l < c->n_layers; l++) {
                if (!c->layer_is_moe[l]) continue;
                char key[16];
                snprintf(key, sizeof key, "%d", l);
                roe_placement_describe(pl, l, r, span, sizeof span);
                cJSON_AddStringToObject(per, key, span);
            }
        }
        cJSON_AddNumberToObject(o, "layer_experts_held", (double)held);
        cJSON_AddNumberToObject(o, "resident_bytes", (double)m->dense_bytes + (double)held * m->expert_bytes);
        cJSON_AddItemToArray(ranks, o);
    }
}

static void placement_text(const struct roe_model *m, const struct roe_placement *pl) {
    const struct roe_model_config *c = &m->cfg;
    const int uniform = roe_placement_uniform(pl, c);
    char span[4096];
    printf("placement    %s, %d rank(s)%s\n", pl->source, pl->n_ranks, uniform ? "" : ", per layer");
    for (int r = 0; r < pl->n_ranks; r++) {
        const long held = roe_placement_count(pl, r);
        const double bytes = (double)m->dense_bytes + (double)held * m->expert_bytes;
        for (int l = 0; l < c->n_layers; l++) {
            if (!c->layer_is_moe[l]) continue;
            roe_placement_describe(pl, l, r, span, sizeof span);
            if (uniform) {
                printf("rank %-7d experts %s, resident %.1f MB\n", r, span, bytes / 1e6);
                break;
            }
            printf("rank %-7d layer %d: experts %s\n", r, l, span);
        }
        if (!uniform) printf("rank %-7d resident %.1f MB\n", r, bytes / 1e6);
    }
}

/* What inspect derives from the model beyond its config. */
struct model_sizes {
    int n_moe;           /* MoE layers */
    size_t n_params;     /* elements of every weight the forward reads */
    size_t n_active;     /* of those, what one token uses (top_k routed experts per MoE layer) */
    size_t file_params;  /* elements of every tensor in the checkpoint (MTP layers and the like too) */
    double expert_total; /* bytes of every expert of every MoE layer */
    double active;       /* bytes one token reads: dense + top_k experts per MoE layer */
    double step_bytes;   /* weight bytes one decode step of one sequence reads */
    size_t kv_token;     /* bytes of the KV cache per token: the layers that keep every position */
    size_t kv_window;    /* bytes a sequence's sliding-window layers hold at most (docs/KV.md) */
    size_t kv_token_full; /* what full K and V would cost per token (MLA's decompressed heads) */
    double kv_step;      /* KV bytes a decode step reads at the model's longest context */
};

/* The routed experts' dtype as held (the first MoE layer's first expert held; MXFP4 as stored). */
static roe_dtype expert_dtype(const struct roe_model *m) {
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int e = 0; m->layers[l].experts && e < m->cfg.n_experts; e++)
            if (m->layers[l].experts[e].gate.data || m->shapes_only) return m->layers[l].experts[e].gate.dtype;
    return m->layers && m->cfg.n_layers > 0 ? m->layers[0].wq.dtype : ROE_DTYPE_BF16;
}

static struct model_sizes model_sizes(const struct roe_model *m) {
    const struct roe_model_config *c = &m->cfg;
    struct model_sizes z = {.n_moe = roe_config_n_moe_layers(c), .n_params = m->n_params,
                            .n_active = roe_model_active_params(m), .step_bytes = roe_model_step_weight_bytes(m),
                            .kv_token = roe_model_kv_bytes_per_token(c),
                            .kv_token_full = roe_model_kv_bytes_per_token_full(c)};
    z.expert_total = (double)m->expert_bytes * c->n_experts * z.n_moe;
    z.active = (double)m->dense_bytes + (double)m->expert_bytes * c->top_k * z.n_moe;
    const size_t kv_elem = roe_dtype_size(roe_engine_kv_dtype(m, ROE_KV_DTYPE_AUTO)); /* what roe serve holds */
    z.kv_token = z.kv_token / sizeof(float) * kv_elem;
    z.kv_token_full = z.kv_token_full / sizeof(float) * kv_elem;
    z.kv_step = (double)z.kv_token / c->n_layers * (double)roe_config_kv_rows_read(c, c->max_position - 1);
    /* the engine's pools (docs/KV.md "Sliding windows"): a sliding-window layer holds its window
     * whatever the context, so it costs nothing per further token */
    const size_t row = z.kv_token / c->n_layers, row_full = z.kv_token_full / c->n_layers;
    for (int l = 0; l < c->n_layers && !c->mla; l++)
        if (c->layer_window[l] > 0) {
            z.kv_token -= row;
            z.kv_token_full -= row_full;
            z.kv_window += row * (size_t)c->layer_window[l];
        }
    for (size_t i = 0; i < roe_store_count(m->store); i++) {
        const struct roe_tensor *t = roe_store_at(m->store, i);
        size_t e = 1;
        for (int d = 0; d < t->ndim; d++) e *= (size_t)t->shape[d];
        const size_t l = strlen(t->name);
        if (c->mxfp4 && t->dtype == ROE_DTYPE_U8 && l > 7) /* MXFP4: 2 values a byte; scales are no parameters */
            e = !strcmp(t->name + l - 7, "_blocks") ? 2 * e : !strcmp(t->name + l - 7, "_scales") ? 0 : e;
        z.file_params += e;
    }
    return z;
}

static void print_json_extra(cJSON *root, cJSON *extra) {
    if (!extra) return;
    cJSON *it = extra->child;
    while (it) {
        cJSON *next = it->next;
        cJSON_AddItemToObject(root, it->string, cJSON_DetachItemViaPointer(extra, it));
        it = next;
    }
    cJSON_Delete(extra);
}

/* Layers attending a window, and the largest window. */
static int windowed_layers(const struct roe_model_config *c, int *widest) {
    int n = 0;
    *widest = 0;
    for (int l = 0; l < c->n_layers; l++)
        if (c->layer_window[l] > 0) {
            n++;
            if (c->layer_window[l] > *widest) *widest = c->layer_window[l];
        }
    return n;
}

static const char *router_name(roe_router_kind k) {
    switch (k) {
    case ROE_ROUTER_SOFTMAX: return "softmax";
    case ROE_ROUTER_TOPK_SOFTMAX: return "topk_softmax";
    case ROE_ROUTER_SIGMOID_GROUP: return "sigmoid_group";
    }
    return "?";
}

/* Multi-head latent attention's widths and softmax scale. */
static void mla_json(cJSON *root, const struct roe_model_config *c) {
    const struct roe_mla_config *a = &c->mla_cfg;
    cJSON *o = cJSON_AddObjectToObject(root, "mla");
    if (a->q_lora_rank) cJSON_AddNumberToObject(o, "q_lora_rank", a->q_lora_rank);
    else cJSON_AddNullToObject(o, "q_lora_rank");
    cJSON_AddNumberToObject(o, "kv_lora_rank", a->kv_lora_rank);
    cJSON_AddNumberToObject(o, "qk_nope_head_dim", a->nope_dim);
    cJSON_AddNumberToObject(o, "qk_rope_head_dim", a->rope_dim);
    cJSON_AddNumberToObject(o, "v_head_dim", a->v_dim);
    cJSON_AddNumberToObject(o, "softmax_scale", roe_rope_mla_softmax_scale(c));
    cJSON_AddBoolToObject(o, "rope_interleave", c->rope.interleave);
}

static const char *mor_router_name(roe_mor_router r) { return r == ROE_MOR_TOKEN_CHOICE ? "token_choice" : "expert_choice"; }
static const char *mor_kv_name(roe_mor_kv k) { return k == ROE_MOR_KV_RECURSIVE_SHARING ? "recursive_sharing" : "recursion_wise"; }

/* Mixture-of-Recursions: the recursion structure, and KV bytes per token for each KV mode against a
 * vanilla model of the same unrolled depth (runtime/config.h roe_config_mor_kv_layers). */
static void mor_json(cJSON *root, const struct roe_model_config *c, double layer_bytes) {
    const struct roe_mor_config *m = &c->mor;
    cJSON *o = cJSON_AddObjectToObject(root, "mor");
    cJSON_AddNumberToObject(o, "num_recursion", m->n_recursion);
    cJSON_AddNumberToObject(o, "block_layers", m->block);
    cJSON_AddNumberToObject(o, "unrolled_layers", m->n_unrolled);
    cJSON_AddNumberToObject(o, "unique_layers", c->n_layers);
    cJSON_AddStringToObject(o, "sharing", "middle_cycle");
    cJSON_AddStringToObject(o, "router_type", mor_router_name(m->router));
    cJSON_AddNumberToObject(o, "alpha", m->alpha);
    if (m->router == ROE_MOR_EXPERT_CHOICE) cJSON_AddNumberToObject(o, "threshold", m->threshold);
    cJSON_AddStringToObject(o, "kv_mode", mor_kv_name(m->kv));
    cJSON *kv = cJSON_AddObjectToObject(o, "kv_bytes_per_token");
    cJSON_AddNumberToObject(kv, "vanilla", layer_bytes * m->n_unrolled);
    cJSON_AddNumberToObject(kv, "recursion_wise_at_capacity",
                            layer_bytes * roe_config_mor_kv_layers(c, ROE_MOR_KV_RECURSION_WISE, 0));
    cJSON_AddNumberToObject(kv, "recursion_wise_full_depth",
                            layer_bytes * roe_config_mor_kv_layers(c, ROE_MOR_KV_RECURSION_WISE, 1));
    cJSON_AddNumberToObject(kv, "recursive_sharing",
                            layer_bytes * roe_config_mor_kv_layers(c, ROE_MOR_KV_RECURSIVE_SHARING, 0));
}

static void mor_text(const struct roe_model_config *c, double layer_bytes) {
    const struct roe_mor_config *m = &c->mor;
    const double v = layer_bytes * m->n_unrolled, rw = layer_bytes * roe_config_mor_kv_layers(c, ROE_MOR_KV_RECURSION_WISE, 0),
                 sh = layer_bytes * roe_config_mor_kv_layers(c, ROE_MOR_KV_RECURSIVE_SHARING, 0);
    printf("recursions   %d over a shared block of %d layers (middle_cycle: %d unrolled layers, %d held), %s "
           "router, alpha %g", m->n_recursion, m->block, m->n_unrolled, c->n_layers, mor_router_name(m->router), m->alpha);
    if (m->router == ROE_MOR_EXPERT_CHOICE) printf(", threshold %g", m->threshold);
    printf("\nmor kv       %s; per token: vanilla (%d layers) %.1f KB, recursion-wise %.1f KB at the capacities "
           "(%.2fx; up to %.1f KB at full depth), recursive sharing %.1f KB (%.2fx)\n", mor_kv_name(m->kv), m->n_unrolled,
           v / 1e3, rw / 1e3, rw / v, v / 1e3, sh / 1e3, sh / v);
}

static void print_json(const struct roe_session *s, const struct model_sizes *z,
                       const struct roe_placement *pl, cJSON *extra) {
    const struct roe_model *m = s->model;
    const struct roe_model_config *c = &m->cfg;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", s->model_dir);
    cJSON_AddStringToObject(root, "model_type", c->model_type);
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(root, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(root, "layers", c->n_layers);
    cJSON_AddNumberToObject(root, "moe_layers", z->n_moe);
    cJSON_AddNumberToObject(root, "heads", c->n_heads);
    cJSON_AddNumberToObject(root, "kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(root, "experts", c->n_experts);
    cJSON_AddNumberToObject(root, "top_k", c->top_k);
    cJSON_AddNumberToObject(root, "expert_intermediate", c->moe_intermediate);
    cJSON_AddBoolToObject(root, "norm_topk_prob", c->norm_topk_prob);
    cJSON_AddStringToObject(root, "router", router_name(c->router));
    if (c->router == ROE_ROUTER_SIGMOID_GROUP) {
        cJSON_AddNumberToObject(root, "n_group", c->n_group);
        cJSON_AddNumberToObject(root, "topk_group", c->topk_group);
        cJSON_AddNumberToObject(root, "routed_scaling_factor", c->routed_scaling);
    }
    cJSON_AddNumberToObject(root, "max_position", c->max_position);
    cJSON_AddNumberToObject(root, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(root, "tensors", (double)roe_store_count(m->store));
    cJSON_AddNumberToObject(root, "files", (double)roe_store_n_files(m->store));
    cJSON_AddNumberToObject(root, "parameters", (double)z->n_params);
    cJSON_AddNumberToObject(root, "active_parameters", (double)z->n_active);
    cJSON_AddNumberToObject(root, "checkpoint_parameters", (double)z->file_params);
    cJSON_AddNumberToObject(root, "shared_expert_intermediate", c->shared_intermediate);
    cJSON_AddStringToObject(root, "expert_dtype", roe_dtype_name(expert_dtype(m)));
    cJSON_AddNumberToObject(root, "dense_bytes", (double)m->dense_bytes);
    cJSON_AddNumberToObject(root, "expert_bytes_total", z->expert_total);
    cJSON_AddNumberToObject(root, "active_bytes_per_token", z->active);
    cJSON_AddNumberToObject(root, "bytes_per_decode_step", z->step_bytes);
    cJSON_AddNumberToObject(root, "kv_bytes_per_token", (double)z->kv_token);
    cJSON_AddNumberToObject(root, "kv_bytes_per_token_full_kv", (double)z->kv_token_full);
    cJSON_AddNumberToObject(root, "kv_bytes_per_sequence_windowed", (double)z->kv_window);
    cJSON_AddStringToObject(root, "kv_dtype", roe_engine_kv_dtype(m, ROE_KV_DTYPE_AUTO) == ROE_DTYPE_F32 ? "f32" : "bf16");
    cJSON_AddStringToObject(root, "kv_layout", c->mla ? "mla_latent" : "k_v");
    if (c->mla) mla_json(root, c);
    if (c->mor.n_recursion) mor_json(root, c, (double)z->kv_token / c->n_layers);
    cJSON_AddNumberToObject(root, "kv_bytes_per_step_at_max_context", z->kv_step);
    cJSON_AddBoolToObject(root, "has_tokenizer", s->tok != NULL);
    if (pl) placement_json(root, m, pl);
    print_json_extra(root, extra);
    roe_json_print(root);
    cJSON_Delete(root);
}

static void print_text(const struct roe_session *s, const struct model_sizes *z,
                       const struct roe_placement *pl) {
    const struct roe_model *m = s->model;
    const struct roe_model_config *c = &m->cfg;
    const char *kvt = roe_engine_kv_dtype(m, ROE_KV_DTYPE_AUTO) == ROE_DTYPE_F32 ? "f32" : "bf16";
    printf("model        %s\n", s->model_dir);
    printf("type         %s\n", c->model_type);
    if (c->mla) /* head_dim is the RoPE width there: the widths are on the attention line */
        printf("layers       %d (%d MoE), hidden %d, heads %d (multi-head latent attention)\n", c->n_layers, z->n_moe,
               c->hidden, c->n_heads);
    else
        printf("layers       %d (%d MoE), hidden %d, heads %d (kv %d), head_dim %d\n", c->n_layers, z->n_moe,
               c->hidden, c->n_heads, c->n_kv_heads, c->head_dim);
    if (c->n_experts) {
        printf("experts      %d of width %d, top-%d, %s router, %s", c->n_experts, c->moe_intermediate, c->top_k,
               router_name(c->router), c->norm_topk_prob ? "renormalised" : "not renormalised");
        if (c->router == ROE_ROUTER_SIGMOID_GROUP)
            printf(", %d of %d groups, x %g", c->topk_group, c->n_group, c->routed_scaling);
        if (c->shared_intermediate) printf(", shared expert of width %d", c->shared_intermediate);
        printf("\n");
    } else
        printf("mlp          dense SwiGLU of width %d in every layer\n", c->dense_intermediate);
    printf("vocab        %d, context %d, rope theta %g\n", c->vocab_size, c->max_position, c->rope_theta);
    printf("parameters   %.2f M (%.2f M active per token) in %zu tensors, %zu file(s)\n", z->n_params / 1e6,
           z->n_active / 1e6, roe_store_count(m->store), roe_store_n_files(m->store));
    printf("bytes        dense %.1f MB, experts %.1f MB (%s), read per decode step %.1f MB (one sequence)\n",
           m->dense_bytes / 1e6, z->expert_total / 1e6, roe_dtype_name(expert_dtype(m)), z->step_bytes / 1e6);
    int widest, nw = windowed_layers(c, &widest);
    if (c->mla) {
        const struct roe_mla_config *a = &c->mla_cfg;
        char ql[16] = "null";
        if (a->q_lora_rank) snprintf(ql, sizeof ql, "%d", a->q_lora_rank);
        printf("attention    MLA: q_lora_rank %s, kv_lora_rank %d, qk_nope %d + qk_rope %d, v %d, softmax scale %g%s\n",
               ql, a->kv_lora_rank, a->nope_dim, a->rope_dim, a->v_dim, roe_rope_mla_softmax_scale(c),
               c->rope.interleave ? ", interleaved RoPE" : "");
        printf("kv cache     %.1f KB per token (%s latent %d + rope key %d, %d layers; full K and V would be "
               "%.1f KB, %.1fx)", z->kv_token / 1e3, kvt, a->kv_lora_rank, a->rope_dim, c->n_layers,
               z->kv_token_full / 1e3, (double)z->kv_token_full / (double)z->kv_token);
    } else
        printf("kv cache     %.1f KB per token (%s K and V, %d layers", z->kv_token / 1e3, kvt, c->n_layers - nw);
    if (nw)
        printf("; %d attend a window of at most %d and hold %.1f KB a sequence", nw, widest, z->kv_window / 1e3);
    printf("%s, %.1f MB read per step at context %d\n", c->mla ? "" : ")", z->kv_step / 1e6, c->max_position);
    if (c->mor.n_recursion) mor_text(c, (double)z->kv_token / c->n_layers);
    printf("tokenizer    %s\n", s->tok ? "tokenizer.json" : "(none)");
    if (pl) placement_text(m, pl);
}

/* The placement to show: this job's (the session's), or the one n_ranks ranks would get
 * (*own, to free). NULL for a dense model in one process. */
static roe_status placement_for(const struct roe_session *s, int n_ranks,
                                const struct roe_placement **pl, struct roe_placement **own) {
    const struct roe_model_config *c = &s->model->cfg;
    *own = NULL;
    *pl = s->placement;
    if (c->n_experts > 0 && (!*pl || (n_ranks && n_ranks != (*pl)->n_ranks))) {
        const int N = n_ranks ? n_ranks : roe_session_world_size();
        const char *pfile = roe_env_placement();
        roe_status st = pfile ? roe_placement_load(pfile, c, N, own) : roe_placement_contiguous(c, N, own);
        if (st != ROE_OK) return st;
        *pl = *own;
    }
    return ROE_OK;
}

/* --check-weights: every tensor of the checkpoint scanned for NaN and infinities, each bad one
 * named with where its first is. Returns 1 if any holds one. */
static int check_weights(const struct roe_model *m, cJSON *json) {
    const size_t n = roe_store_count(m->store);
    size_t bad = 0;
    cJSON *list = json ? cJSON_AddArrayToObject(json, "nonfinite_tensors") : NULL;
    for (size_t i = 0; i < n; i++) {
        const struct roe_tensor *t = roe_store_at(m->store, i);
        struct roe_nonfinite nf;
        if (!roe_tensor_nonfinite(t, &nf)) continue;
        bad++;
        if (list) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "tensor", t->name);
            cJSON_AddStringToObject(o, "file", t->file);
            cJSON_AddNumberToObject(o, "nan", (double)nf.nan);
            cJSON_AddNumberToObject(o, "inf", (double)nf.inf);
            cJSON_AddNumberToObject(o, "first_index", (double)nf.first);
            cJSON_AddItemToArray(list, o);
        } else
            printf("NaN/Inf      tensor '%s' (%s, %s): %zu NaN, %zu infinite, the first at flat index %zu\n", t->name,
                   t->file, roe_dtype_name(t->dtype), nf.nan, nf.inf, nf.first);
    }
    if (json) cJSON_AddNumberToObject(json, "tensors_checked", (double)n);
    else if (!bad) printf("weights      %zu tensors checked: every value finite\n", n);
    else printf("weights      %zu of %zu tensors hold NaN or infinite values\n", bad, n);
    return bad > 0;
}

int roe_cmd_inspect(int argc, char **argv) {
    const char *model_dir = NULL;
    int json = 0, n_ranks = 0, check = 0;
    const struct roe_arg_spec specs[] = {
        {"--model", ROE_ARG_STRING, &model_dir, "model directory (default: the bundled model)", 0, 0},
        {"--ranks", ROE_ARG_INT, &n_ranks, "show the placement for N ranks (default: this job's)", 1, 1 << 16},
        {"--check-weights", ROE_ARG_FLAG, &check,
         "scan every tensor for NaN and infinite values, naming each that holds one (exit 1)", 0, 0},
        {"--json", ROE_ARG_FLAG, &json, "print JSON", 0, 0},
    };
    int rc = roe_args_parse(CMD, SYNOPSIS, specs, 4, argc, argv, 2);
    if (rc) return rc == 1 ? 0 : rc;
    struct roe_session s;
    const struct roe_placement *pl = NULL;
    struct roe_placement *own = NULL;
    roe_status st = ROE_OK;
    rc = roe_session_open_model(&s, CMD, model_dir);
    if (!rc) st = placement_for(&s, n_ranks, &pl, &own);
    if (!rc && st == ROE_OK) {
        const struct model_sizes z = model_sizes(s.model);
        cJSON *extra = check && json ? cJSON_CreateObject() : NULL;
        if (check && json) rc = check_weights(s.model, extra);
        if (json) print_json(&s, &z, pl, extra);
        else print_text(&s, &z, pl);
        if (check && !json) rc = check_weights(s.model, NULL);
    }
    roe_placement_free(own);
    roe_session_close(&s);
    return st != ROE_OK ? roe_report(CMD, st) : rc;
}
