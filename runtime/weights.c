/* weights.c — device-resident copies (or random stand-ins) of a model's weights; see weights.h. */
#include "weights.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"

/* One matrix: uploaded, or random for a shapes-only model. `salt` makes each matrix's
 * random values distinct. An empty view (rows 0: no q/k norm) stays empty. */
static roe_status one(roe_backend *be, const struct roe_model *m, const struct roe_mat *src,
                      uint64_t seed, uint64_t salt, struct roe_mat *dst, const char *what, int layer) {
    memset(dst, 0, sizeof *dst);
    if (src->rows <= 0 || src->cols <= 0) return ROE_OK;
    roe_status st;
    if (m->shapes_only)
        st = be->ops->mat_random(be, src->rows, src->cols, 1.0f / sqrtf((float)src->cols),
                                 seed * 0x9E3779B97F4A7C15ull + salt, dst);
    else
        st = be->ops->mat_upload(be, src, dst);
    if (st != ROE_OK)
        return roe_fail_context(st, "%s weights, layer %d, %s [%d, %d]: ", be->name, layer, what,
                                src->rows, src->cols);
    return ROE_OK;
}

roe_status roe_weights_create(roe_backend *be, const struct roe_model *m,
                              const struct roe_placement *pl, int rank, uint64_t seed,
                              struct roe_model **out) {
    *out = NULL;
    const struct roe_model_config *c = &m->cfg;
    roe_status st;
    struct roe_model *w = roe_calloc(1, sizeof *w);
    if (!w) return roe_fail(ROE_ERR_NOMEM, "weights: out of memory");
    w->cfg = *c;
    w->dense_bytes = m->dense_bytes;
    w->expert_bytes = m->expert_bytes;
    w->held_bytes = m->held_bytes;
    w->held_experts = m->held_experts;
    w->layers = roe_calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers) {
        st = roe_fail(ROE_ERR_NOMEM, "weights: out of memory for %d layers", c->n_layers);
        goto fail;
    }
    uint64_t salt = 1;
    ROE_CHECK(one(be, m, &m->embed, seed, salt++, &w->embed, "embed_tokens", -1));
    ROE_CHECK(one(be, m, &m->final_norm, seed, salt++, &w->final_norm, "norm", -1));
    if (m->lm_head.data == m->embed.data && !m->shapes_only) w->lm_head = w->embed; /* tied */
    else ROE_CHECK(one(be, m, &m->lm_head, seed, salt++, &w->lm_head, "lm_head", -1));
    for (int l = 0; l < c->n_layers; l++) {
        struct roe_layer_weights *L = &m->layers[l], *D = &w->layers[l];
        for (int k = 0; k < roe_n_layer_mats; k++)
            ROE_CHECK(one(be, m, roe_layer_mat(L, k), seed, salt++, roe_layer_mat(D, k), roe_layer_mats[k].name, l));
        if (!c->layer_is_moe[l]) continue;
        D->experts = roe_calloc((size_t)c->n_experts, sizeof *D->experts);
        if (!D->experts) {
            st = roe_fail(ROE_ERR_NOMEM, "weights: out of memory for layer %d's experts", l);
            goto fail;
        }
        for (int x = 0; x < c->n_experts; x++) {
            struct roe_expert_weights *X = &L->experts[x];
            salt += (uint64_t)roe_n_expert_mats;
            if (pl && roe_placement_owner(pl, l, x) != rank) continue;
            if (!m->shapes_only && !roe_expert_held(X)) continue; /* the engine checked ownership */
            for (int k = 0; k < roe_n_expert_mats; k++)
                ROE_CHECK(one(be, m, roe_expert_mat(X, k), seed, salt + (uint64_t)k, roe_expert_mat(&D->experts[x], k),
                              roe_expert_mats[k].name, l));
        }
    }
    ROE_CHECK(be->ops->sync(be));
    *out = w;
    return ROE_OK;
fail:
    roe_weights_free(be, w);
    return st;
}

void roe_weights_free(roe_backend *be, struct roe_model *w) {
    if (!w) return;
    const struct roe_model_config *c = &w->cfg;
    if (w->lm_head.data != w->embed.data) be->ops->mat_free(be, &w->lm_head);
    be->ops->mat_free(be, &w->embed);
    be->ops->mat_free(be, &w->final_norm);
    for (int l = 0; w->layers && l < c->n_layers; l++) {
        struct roe_layer_weights *D = &w->layers[l];
        for (int k = 0; k < roe_n_layer_mats; k++)
            if (roe_layer_mat(D, k)->data) be->ops->mat_free(be, roe_layer_mat(D, k));
        for (int x = 0; D->experts && x < c->n_experts; x++)
            for (int k = 0; k < roe_n_expert_mats; k++)
                if (roe_expert_mat(&D->experts[x], k)->data) be->ops->mat_free(be, roe_expert_mat(&D->experts[x], k));
        roe_free(D->experts);
    }
    roe_free(w->layers);
    roe_free(w);
}
