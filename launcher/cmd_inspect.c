/* cmd_inspect.c — `roe inspect`: the model's config, tensor sizes and memory plan. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "commands.h"
#include "base/env.h"
#include "session.h"

static const char *SYNOPSIS = "[--model DIR] [--ranks N] [--json]";

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

int roe_cmd_inspect(int argc, char **argv) {
    const char *cmd = "inspect";
    const char *model_dir = NULL;
    int json = 0, n_ranks = 0;
    const struct roe_arg_spec specs[] = {
        {"--model", ROE_ARG_STRING, &model_dir, "model directory (default: the bundled model)", 0, 0},
        {"--ranks", ROE_ARG_INT, &n_ranks, "show the placement for N ranks (default: this job's)", 1, 1 << 16},
        {"--json", ROE_ARG_FLAG, &json, "print JSON", 0, 0},
    };
    int rc = roe_args_parse(cmd, SYNOPSIS, specs, 3, argc, argv, 2);
    if (rc) return rc == 1 ? 0 : rc;
    struct roe_session s;
    if (roe_session_open_model(&s, cmd, model_dir)) {
        roe_session_close(&s);
        return 1;
    }
    const struct roe_model_config *c = &s.model->cfg;
    const struct roe_model *m = s.model;
    const int n_moe = roe_config_n_moe_layers(c);
    const double expert_total = (double)m->expert_bytes * c->n_experts * n_moe;
    const double active = (double)m->dense_bytes + (double)m->expert_bytes * c->top_k * n_moe;
    size_t n_params = 0;
    for (size_t i = 0; i < roe_store_count(m->store); i++) {
        const struct roe_tensor *t = roe_store_at(m->store, i);
        size_t e = 1;
        for (int d = 0; d < t->ndim; d++) e *= (size_t)t->shape[d];
        n_params += e;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", s.model_dir);
    cJSON_AddStringToObject(root, "model_type", c->model_type);
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(root, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(root, "layers", c->n_layers);
    cJSON_AddNumberToObject(root, "moe_layers", n_moe);
    cJSON_AddNumberToObject(root, "heads", c->n_heads);
    cJSON_AddNumberToObject(root, "kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(root, "experts", c->n_experts);
    cJSON_AddNumberToObject(root, "top_k", c->top_k);
    cJSON_AddNumberToObject(root, "expert_intermediate", c->moe_intermediate);
    cJSON_AddBoolToObject(root, "norm_topk_prob", c->norm_topk_prob);
    cJSON_AddNumberToObject(root, "max_position", c->max_position);
    cJSON_AddNumberToObject(root, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(root, "tensors", (double)roe_store_count(m->store));
    cJSON_AddNumberToObject(root, "files", (double)roe_store_n_files(m->store));
    cJSON_AddNumberToObject(root, "parameters", (double)n_params);
    cJSON_AddNumberToObject(root, "dense_bytes", (double)m->dense_bytes);
    cJSON_AddNumberToObject(root, "expert_bytes_total", expert_total);
    cJSON_AddNumberToObject(root, "active_bytes_per_token", active);
    cJSON_AddBoolToObject(root, "has_tokenizer", s.tok != NULL);
    /* placement: this job's (the session's), or the one N ranks would get */
    struct roe_placement *own = NULL;
    const struct roe_placement *pl = s.placement;
    if (c->n_experts > 0 && (!pl || (n_ranks && n_ranks != pl->n_ranks))) {
        const int N = n_ranks ? n_ranks : roe_session_world_size();
        const char *pfile = roe_env_placement();
        roe_status st = pfile ? roe_placement_load(pfile, c, N, &own) : roe_placement_contiguous(c, N, &own);
        if (st != ROE_OK) {
            cJSON_Delete(root);
            roe_session_close(&s);
            return roe_report(cmd, st);
        }
        pl = own;
    }
    if (pl) placement_json(root, m, pl);
    if (json) {
        char *out = cJSON_Print(root);
        if (out) printf("%s\n", out);
        free(out);
    } else {
        printf("model        %s\n", s.model_dir);
        printf("type         %s\n", c->model_type);
        printf("layers       %d (%d MoE), hidden %d, heads %d (kv %d), head_dim %d\n", c->n_layers,
               n_moe, c->hidden, c->n_heads, c->n_kv_heads, c->head_dim);
        printf("experts      %d of width %d, top-%d, %s\n", c->n_experts, c->moe_intermediate,
               c->top_k, c->norm_topk_prob ? "renormalised" : "not renormalised");
        printf("vocab        %d, context %d, rope theta %g\n", c->vocab_size, c->max_position, c->rope_theta);
        printf("parameters   %.2f M in %zu tensors, %zu file(s)\n", n_params / 1e6,
               roe_store_count(m->store), roe_store_n_files(m->store));
        printf("bytes        dense %.1f MB, experts %.1f MB, read per token %.1f MB\n",
               m->dense_bytes / 1e6, expert_total / 1e6, active / 1e6);
        printf("tokenizer    %s\n", s.tok ? "tokenizer.json" : "(none)");
        if (pl) placement_text(m, pl);
    }
    roe_placement_free(own);
    cJSON_Delete(root);
    roe_session_close(&s);
    return 0;
}
