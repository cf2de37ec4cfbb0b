/*
 * model.c — binds the tensors of a checkpoint to struct roe_model, checking each against
 * the config. Tensor names follow the Hugging Face checkpoints on the hub; the fused
 * expert layout that transformers >= 5 uses in memory (experts.gate_up_proj [E, 2I, H],
 * experts.down_proj [E, H, I]) is accepted too.
 */
#include "model.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/log.h"
#include "quant.h"

size_t roe_mat_bytes(const struct roe_mat *m) {
    return (size_t)m->rows * roe_dtype_row_bytes_all(m->dtype, (size_t)m->cols);
}

/* Block dtypes (a checkpoint saved by `roe quantize`: runtime/quant.h) are float matrices too. */
static int is_float_dtype(roe_dtype t) {
    return t == ROE_DTYPE_F32 || t == ROE_DTYPE_F16 || t == ROE_DTYPE_BF16 || roe_dtype_is_block(t);
}

/* The columns a stored tensor has for `cols` logical ones (block dtypes: whole padded blocks). */
static int64_t stored_cols(roe_dtype t, int cols) {
    return roe_dtype_is_block(t) ? (int64_t)roe_dtype_row_blocks(t, (size_t)cols) * ROE_QBLOCK : cols;
}

static void shape_str(const struct roe_tensor *t, char *buf, size_t n) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < t->ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Checks a tensor is a float matrix of [rows, cols] (or a vector [cols] when rows == 1). */
static roe_status check_mat(const struct roe_tensor *t, int rows, int cols, struct roe_mat *out) {
    if (!is_float_dtype(t->dtype))
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (expected F32, F16 or BF16)",
                        t->file, t->name, roe_dtype_name(t->dtype));
    const int64_t sc = stored_cols(t->dtype, cols);
    int ok = (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == sc) ||
             (rows == 1 && t->ndim == 1 && t->shape[0] == sc && !roe_dtype_is_block(t->dtype));
    if (!ok) {
        char got[128];
        shape_str(t, got, sizeof got);
        if (rows == 1)
            return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected [%d] by the config",
                            t->file, t->name, got, cols);
        return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected [%d, %d] by the config",
                        t->file, t->name, got, rows, cols);
    }
    *out = (struct roe_mat){.dtype = t->dtype, .data = t->data, .rows = rows, .cols = cols,
                            .scales = t->scales, .mins = t->mins};
    return ROE_OK;
}

static roe_status bind(const struct roe_model *m, const char *name, int rows, int cols,
                       struct roe_mat *out) {
    const struct roe_tensor *t = roe_store_find(m->store, name);
    if (!t)
        return roe_fail(ROE_ERR_FORMAT, "%s: missing tensor '%s' (required by %s with %d layers)",
                        m->dir, name, m->cfg.model_type, m->cfg.n_layers);
    return check_mat(t, rows, cols, out);
}

/* A slice of a 3-D fused tensor [E, rows_total, cols]: expert e, rows [r0, r0 + rows). */
static struct roe_mat slice3(const struct roe_tensor *t, int e, int rows_total, int r0, int rows,
                             int cols) {
    const size_t row0 = (size_t)e * (size_t)rows_total + (size_t)r0;
    const size_t nb = roe_dtype_row_blocks(t->dtype, (size_t)cols); /* 0 unless a block dtype */
    struct roe_mat mat = {.dtype = t->dtype, .data = (const char *)t->data + row0 * roe_dtype_row_bytes(t->dtype, (size_t)cols),
                          .rows = rows, .cols = cols, .scales = t->scales ? t->scales + row0 * nb : NULL,
                          .mins = t->mins ? t->mins + row0 * nb : NULL};
    return mat;
}

static roe_status check_3d(const struct roe_tensor *t, int a, int b, int c) {
    if (!is_float_dtype(t->dtype))
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (expected F32, F16 or BF16)",
                        t->file, t->name, roe_dtype_name(t->dtype));
    if (t->ndim != 3 || t->shape[0] != a || t->shape[1] != b || t->shape[2] != stored_cols(t->dtype, c)) {
        char got[128];
        shape_str(t, got, sizeof got);
        return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected [%d, %d, %d] by the config",
                        t->file, t->name, got, a, b, c);
    }
    return ROE_OK;
}

/* Binds the experts of layer i: per-expert tensors (hub layout) or fused 3-D tensors. */
static roe_status bind_experts(struct roe_model *m, int i, const char *moe, struct roe_layer_weights *L) {
    const struct roe_model_config *c = &m->cfg;
    const int E = c->n_experts, I = c->moe_intermediate, H = c->hidden;
    char name[256];
    int mixtral = c->family == ROE_FAMILY_MIXTRAL && strcmp(moe, "block_sparse_moe") == 0;
    L->experts = roe_calloc((size_t)E, sizeof *L->experts);
    if (!L->experts) return roe_fail(ROE_ERR_NOMEM, "layer %d: out of memory for %d experts", i, E);

    snprintf(name, sizeof name, "model.layers.%d.%s.experts.gate_up_proj", i, moe);
    const struct roe_tensor *gu = roe_store_find(m->store, name);
    if (gu) {
        snprintf(name, sizeof name, "model.layers.%d.%s.experts.down_proj", i, moe);
        const struct roe_tensor *dn = roe_store_find(m->store, name);
        if (!dn) return roe_fail(ROE_ERR_FORMAT, "%s: missing tensor '%s'", m->dir, name);
        ROE_TRY(check_3d(gu, E, 2 * I, H));
        ROE_TRY(check_3d(dn, E, H, I));
        for (int e = 0; e < E; e++) {
            L->experts[e].gate = slice3(gu, e, 2 * I, 0, I, H);
            L->experts[e].up = slice3(gu, e, 2 * I, I, I, H);
            L->experts[e].down = slice3(dn, e, H, 0, H, I);
        }
        return ROE_OK;
    }
    for (int e = 0; e < E; e++) {
        const char *gn = mixtral ? "w1" : "gate_proj", *un = mixtral ? "w3" : "up_proj",
                   *dn = mixtral ? "w2" : "down_proj";
        snprintf(name, sizeof name, "model.layers.%d.%s.experts.%d.%s.weight", i, moe, e, gn);
        ROE_TRY(bind(m, name, I, H, &L->experts[e].gate));
        snprintf(name, sizeof name, "model.layers.%d.%s.experts.%d.%s.weight", i, moe, e, un);
        ROE_TRY(bind(m, name, I, H, &L->experts[e].up));
        snprintf(name, sizeof name, "model.layers.%d.%s.experts.%d.%s.weight", i, moe, e, dn);
        ROE_TRY(bind(m, name, H, I, &L->experts[e].down));
    }
    return ROE_OK;
}

static roe_status bind_layer(struct roe_model *m, int i) {
    const struct roe_model_config *c = &m->cfg;
    struct roe_layer_weights *L = &m->layers[i];
    const int H = c->hidden, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    char name[320];
#define BIND(suffix, r, cc, dst)                                                                   \
    do {                                                                                           \
        snprintf(name, sizeof name, "model.layers.%d.%s", i, suffix);                              \
        ROE_TRY(bind(m, name, r, cc, dst));                                                        \
    } while (0)
    BIND("input_layernorm.weight", 1, H, &L->attn_norm);
    BIND("post_attention_layernorm.weight", 1, H, &L->ffn_norm);
    BIND("self_attn.q_proj.weight", qd, H, &L->wq);
    BIND("self_attn.k_proj.weight", kd, H, &L->wk);
    BIND("self_attn.v_proj.weight", kd, H, &L->wv);
    BIND("self_attn.o_proj.weight", H, qd, &L->wo);
    if (c->qk_norm == ROE_QK_NORM_FULL) {
        BIND("self_attn.q_norm.weight", 1, qd, &L->q_norm);
        BIND("self_attn.k_norm.weight", 1, kd, &L->k_norm);
    } else if (c->qk_norm == ROE_QK_NORM_PER_HEAD) {
        BIND("self_attn.q_norm.weight", 1, c->head_dim, &L->q_norm);
        BIND("self_attn.k_norm.weight", 1, c->head_dim, &L->k_norm);
    }
    if (c->layer_is_moe[i]) {
        /* Mixtral checkpoints on the hub say block_sparse_moe; transformers >= 5 saves mlp. */
        const char *moe = "mlp";
        snprintf(name, sizeof name, "model.layers.%d.block_sparse_moe.gate.weight", i);
        if (c->family == ROE_FAMILY_MIXTRAL && roe_store_find(m->store, name)) moe = "block_sparse_moe";
        char router[64];
        snprintf(router, sizeof router, "%s.gate.weight", moe);
        BIND(router, c->n_experts, H, &L->router);
        ROE_TRY(bind_experts(m, i, moe, L));
    } else {
        const int I = c->dense_intermediate;
        BIND("mlp.gate_proj.weight", I, H, &L->dense.gate);
        BIND("mlp.up_proj.weight", I, H, &L->dense.up);
        BIND("mlp.down_proj.weight", H, I, &L->dense.down);
    }
#undef BIND
    return ROE_OK;
}

void roe__model_account(struct roe_model *m) {
    const struct roe_model_config *c = &m->cfg;
    size_t dense = roe_mat_bytes(&m->embed) + roe_mat_bytes(&m->final_norm);
    if (!c->tie_word_embeddings) dense += roe_mat_bytes(&m->lm_head);
    m->expert_bytes = 0;
    for (int i = 0; i < c->n_layers; i++) {
        const struct roe_layer_weights *L = &m->layers[i];
        const struct roe_mat *mats[] = {&L->attn_norm, &L->ffn_norm, &L->wq, &L->wk, &L->wv,
                                        &L->wo, &L->q_norm, &L->k_norm, &L->router, &L->dense.gate,
                                        &L->dense.up, &L->dense.down};
        for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++)
            if (mats[k]->data || m->shapes_only) dense += roe_mat_bytes(mats[k]);
        for (int e = 0; L->experts && !m->expert_bytes && e < c->n_experts; e++) /* the first one held */
            if (L->experts[e].gate.data || m->shapes_only)
                    m->expert_bytes = roe_mat_bytes(&L->experts[e].gate) +
                                  roe_mat_bytes(&L->experts[e].up) + roe_mat_bytes(&L->experts[e].down);
    }
    m->dense_bytes = dense;
    if (m->held_experts < 0) m->held_experts = (long)roe_config_n_moe_layers(c) * c->n_experts;
    m->held_bytes = dense + (size_t)m->held_experts * m->expert_bytes;
}

void roe_model_keep_experts(struct roe_model *m, const struct roe_placement *pl, int rank) {
    const struct roe_model_config *c = &m->cfg;
    m->held_experts = 0;
    for (int l = 0; l < c->n_layers; l++) {
        if (!c->layer_is_moe[l] || !m->layers[l].experts) continue;
        for (int e = 0; e < c->n_experts; e++) {
            struct roe_expert_weights *x = &m->layers[l].experts[e];
            if (roe_placement_owner(pl, l, e) == rank) {
                if (x->gate.data || m->shapes_only) m->held_experts++;
            } else
                memset(x, 0, sizeof *x);
        }
    }
    m->held_bytes = m->dense_bytes + (size_t)m->held_experts * m->expert_bytes;
}

size_t roe_mapped_resident_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssFile: %zu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

static double touch(const struct roe_mat *w) {
    if (!w->data) return 0.0;
    volatile unsigned char sink = 0;
    const unsigned char *p = w->data;
    const size_t n = roe_mat_bytes(w);
    for (size_t o = 0; o < n; o += 4096) sink ^= p[o];
    if (n) sink ^= p[n - 1];
    (void)sink;
    return (double)n;
}

double roe_model_warm(const struct roe_model *m) {
    const struct roe_model_config *c = &m->cfg;
    double bytes = touch(&m->embed) + touch(&m->final_norm);
    if (m->lm_head.data != m->embed.data) bytes += touch(&m->lm_head);
    for (int i = 0; i < c->n_layers; i++) {
        const struct roe_layer_weights *L = &m->layers[i];
        const struct roe_mat *mats[] = {&L->attn_norm, &L->ffn_norm, &L->wq, &L->wk, &L->wv, &L->wo,
                                        &L->q_norm, &L->k_norm, &L->router, &L->dense.gate,
                                        &L->dense.up, &L->dense.down};
        for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++) bytes += touch(mats[k]);
        for (int e = 0; L->experts && e < c->n_experts; e++)
            bytes += touch(&L->experts[e].gate) + touch(&L->experts[e].up) + touch(&L->experts[e].down);
    }
    return bytes;
}

roe_status roe_model_load(const char *dir, struct roe_model **out) {
    *out = NULL;
    if (!roe_is_dir(dir))
        return roe_fail(ROE_ERR_IO, "model directory '%s' does not exist or is not a directory", dir);
    roe_status st;
    struct roe_model *m = roe_calloc(1, sizeof *m);
    if (!m) return roe_fail(ROE_ERR_NOMEM, "out of memory loading '%s'", dir);
    m->dir = roe_strdup(dir);
    if (!m->dir) {
        st = roe_fail(ROE_ERR_NOMEM, "out of memory loading '%s'", dir);
        goto fail;
    }
    ROE_CHECK(roe_config_load(dir, &m->cfg));
    ROE_CHECK(roe_store_open(dir, &m->store));
    const struct roe_model_config *c = &m->cfg;
    ROE_CHECK(bind(m, "model.embed_tokens.weight", c->vocab_size, c->hidden, &m->embed));
    ROE_CHECK(bind(m, "model.norm.weight", 1, c->hidden, &m->final_norm));
    if (c->tie_word_embeddings && !roe_store_find(m->store, "lm_head.weight")) m->lm_head = m->embed;
    else ROE_CHECK(bind(m, "lm_head.weight", c->vocab_size, c->hidden, &m->lm_head));
    m->layers = roe_calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) {
        st = roe_fail(ROE_ERR_NOMEM, "out of memory for %d layers", c->n_layers);
        goto fail;
    }
    for (int i = 0; i < c->n_layers; i++) ROE_CHECK(bind_layer(m, i));
    m->held_experts = -1;
    roe__model_account(m);
    *out = m;
    return ROE_OK;
fail:
    roe_model_free(m);
    return st;
}

static struct roe_mat shape(int rows, int cols) {
    struct roe_mat v = {.dtype = ROE_DTYPE_BF16, .data = NULL, .rows = rows, .cols = cols};
    return v;
}

roe_status roe_model_shapes(const struct roe_model_config *cfg, struct roe_model **out) {
    *out = NULL;
    roe_status st;
    struct roe_model *m = roe_calloc(1, sizeof *m);
    if (!m) return roe_fail(ROE_ERR_NOMEM, "out of memory for a model of %s shapes", cfg->model_type);
    m->cfg = *cfg;
    m->shapes_only = 1;
    m->dir = roe_strdup("(random weights)");
    const struct roe_model_config *c = &m->cfg;
    const int H = c->hidden, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    m->layers = roe_calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->dir || !m->layers) {
        st = roe_fail(ROE_ERR_NOMEM, "out of memory for %d layers", c->n_layers);
        goto fail;
    }
    m->embed = shape(c->vocab_size, H);
    m->final_norm = shape(1, H);
    m->lm_head = shape(c->vocab_size, H);
    for (int i = 0; i < c->n_layers; i++) {
        struct roe_layer_weights *L = &m->layers[i];
        L->attn_norm = shape(1, H);
        L->ffn_norm = shape(1, H);
        L->wq = shape(qd, H);
        L->wk = shape(kd, H);
        L->wv = shape(kd, H);
        L->wo = shape(H, qd);
        if (c->qk_norm == ROE_QK_NORM_FULL) {
            L->q_norm = shape(1, qd);
            L->k_norm = shape(1, kd);
        } else if (c->qk_norm == ROE_QK_NORM_PER_HEAD) {
            L->q_norm = shape(1, c->head_dim);
            L->k_norm = shape(1, c->head_dim);
        }
        if (c->layer_is_moe[i]) {
            L->router = shape(c->n_experts, H);
            L->experts = roe_calloc((size_t)c->n_experts, sizeof *L->experts);
            if (!L->experts) {
                st = roe_fail(ROE_ERR_NOMEM, "layer %d: out of memory for %d experts", i, c->n_experts);
                goto fail;
            }
            for (int e = 0; e < c->n_experts; e++) {
                L->experts[e].gate = shape(c->moe_intermediate, H);
                L->experts[e].up = shape(c->moe_intermediate, H);
                L->experts[e].down = shape(H, c->moe_intermediate);
            }
        } else {
            L->dense.gate = shape(c->dense_intermediate, H);
            L->dense.up = shape(c->dense_intermediate, H);
            L->dense.down = shape(H, c->dense_intermediate);
        }
    }
    m->held_experts = -1;
    roe__model_account(m);
    *out = m;
    return ROE_OK;
fail:
    roe_model_free(m);
    return st;
}

void roe_model_free(struct roe_model *m) {
    if (!m) return;
    roe_quant_free(m->quant);
    if (m->layers)
        for (int i = 0; i < m->cfg.n_layers; i++) roe_free(m->layers[i].experts);
    roe_free(m->layers);
    roe_store_close(m->store);
    roe_free(m->dir);
    roe_free(m);
}
