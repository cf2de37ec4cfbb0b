/*
 * model.c — binds the tensors of a checkpoint to struct roe_model, checking each against
 * the config. Tensor names follow the Hugging Face checkpoints on the hub; the fused
 * expert layout that transformers >= 5 uses in memory (experts.gate_up_proj [E, 2I, H],
 * experts.down_proj [E, H, I]) is accepted too.
 */
#include "model.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/log.h"
#include "quant.h"

size_t roe_mat_bytes(const struct roe_mat *m) {
    const size_t tiles = m->tile_scale ? (size_t)((m->tile_row0 + m->rows + ROE_FP8_TILE - 1) / ROE_FP8_TILE) *
                                             (size_t)((m->cols + ROE_FP8_TILE - 1) / ROE_FP8_TILE)
                                       : 0; /* FP8's fp32 scale per tile */
    return (size_t)m->rows * roe_dtype_row_bytes_all(m->dtype, (size_t)m->cols) + tiles * sizeof(float);
}

#define LAYER_MAT(f) {offsetof(struct roe_layer_weights, f), #f, 0}
const struct roe_layer_mat roe_layer_mats[] = {
    LAYER_MAT(attn_norm),   LAYER_MAT(wq),          LAYER_MAT(wk),          LAYER_MAT(wv),
    LAYER_MAT(wo),          LAYER_MAT(q_norm),      LAYER_MAT(k_norm),      LAYER_MAT(ffn_norm),
    LAYER_MAT(bq),          LAYER_MAT(bk),          LAYER_MAT(bv),          LAYER_MAT(bo),
    LAYER_MAT(sinks),       LAYER_MAT(router),      LAYER_MAT(router_bias), LAYER_MAT(score_bias),
    LAYER_MAT(shared.gate), LAYER_MAT(shared.up),   LAYER_MAT(shared.down), LAYER_MAT(shared_gate),
    LAYER_MAT(dense.gate),  LAYER_MAT(dense.up),    LAYER_MAT(dense.down),
    LAYER_MAT(wq_a),        LAYER_MAT(bq_a),        LAYER_MAT(q_a_norm),    LAYER_MAT(wkv_a),
    LAYER_MAT(bkv_a),       LAYER_MAT(kv_a_norm),   LAYER_MAT(wkv_b),
    {offsetof(struct roe_layer_weights, wuk_t), "wuk_t", 1},
};
const int roe_n_layer_mats = sizeof roe_layer_mats / sizeof roe_layer_mats[0];
#undef LAYER_MAT
#define EXPERT_MAT(f) {offsetof(struct roe_expert_weights, f), #f, 0}
const struct roe_layer_mat roe_expert_mats[] = {
    EXPERT_MAT(gate), EXPERT_MAT(up), EXPERT_MAT(down), EXPERT_MAT(gate_bias), EXPERT_MAT(down_bias),
};
const int roe_n_expert_mats = sizeof roe_expert_mats / sizeof roe_expert_mats[0];
#undef EXPERT_MAT

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
    if (!is_float_dtype(t->dtype) && t->dtype != ROE_DTYPE_F8_E4M3) /* FP8: bind_fp8 checks the rest */
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

/* Block-scaled FP8 (config.h fp8; docs/MODELS.md "FP8"): t = X.weight is F8_E4M3 [rows, cols] and
 * X.weight_scale_inv F32 [ceil(rows / 128), ceil(cols / 128)] scales its tiles; the bytes stay in
 * the mapping. A matrix the kernels read whole (not an embedding table, a router or a vector). A
 * float tensor with a weight_scale_inv is refused too: the checkpoint and its scales disagree. */
static roe_status bind_fp8(const struct roe_model *m, const struct roe_tensor *t, int rows, int cols,
                           struct roe_mat *out) {
    char sname[512];
    snprintf(sname, sizeof sname, "%s_scale_inv", t->name);
    const struct roe_tensor *sc = roe_store_find(m->store, sname);
    if (t->dtype != ROE_DTYPE_F8_E4M3) {
        if (sc) return roe_fail(ROE_ERR_FORMAT, "%s: '%s' scales '%s', which is %s, not F8_E4M3", sc->file, sname,
                                t->name, roe_dtype_name(t->dtype));
        return ROE_OK;
    }
    const size_t l = strlen(t->name);
    const int linear = t->ndim == 2 && strstr(t->name, "embed_tokens") == NULL &&
                       !(l >= 12 && strcmp(t->name + l - 12, ".gate.weight") == 0);
    if (!m->cfg.fp8)
        return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%s' is F8_E4M3 but config.json has no quantization_config "
                        "(quant_method 'fp8', weight_block_size [128, 128])", t->file, t->name);
    if (!linear)
        return roe_fail(ROE_ERR_UNSUPPORTED, "%s: tensor '%s' is F8_E4M3: only linear projections may be FP8 (an "
                        "embedding table, router or norm is read as bf16/f32)", t->file, t->name);
    if (!sc)
        return roe_fail(ROE_ERR_FORMAT, "%s: FP8 tensor '%s' has no '%s' (its 128 x 128 block scales)", t->file,
                        t->name, sname);
    const int64_t tr = (rows + ROE_FP8_TILE - 1) / ROE_FP8_TILE, tc = (cols + ROE_FP8_TILE - 1) / ROE_FP8_TILE;
    if (sc->dtype != ROE_DTYPE_F32 || sc->ndim != 2 || sc->shape[0] != tr || sc->shape[1] != tc ||
        (uintptr_t)sc->data % 4 != 0) {
        char got[128];
        shape_str(sc, got, sizeof got);
        return roe_fail(ROE_ERR_FORMAT, "%s: '%s' is %s %s, expected F32 [%lld, %lld] (one scale per 128 x 128 tile of "
                        "'%s' [%d, %d]), 4-byte aligned", sc->file, sname, roe_dtype_name(sc->dtype), got,
                        (long long)tr, (long long)tc, t->name, rows, cols);
    }
    out->tile_scale = sc->data;
    out->tile_row0 = 0;
    return ROE_OK;
}

static roe_status bind(const struct roe_model *m, const char *name, int rows, int cols,
                       struct roe_mat *out) {
    const struct roe_tensor *t = roe_store_find(m->store, name);
    if (!t)
        return roe_fail(ROE_ERR_FORMAT, "%s: missing tensor '%s' (required by %s with %d layers)",
                        m->dir, name, m->cfg.model_type, m->cfg.n_layers);
    ROE_TRY(check_mat(t, rows, cols, out));
    return bind_fp8(m, t, rows, cols, out);
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

/* ---- the newer families' tensors: attention biases and sinks, router extras, shared experts,
 * gpt-oss's input-major experts ---- */

/* dst[cols, rows] = src[rows, cols]^T, in tiles so both sides stay in cache. */
#define ROE_TRANSPOSE(name, type)                                                                  \
    static void name(const type *src, type *dst, int rows, int cols) {                            \
        enum { T = 64 };                                                                           \
        for (int r0 = 0; r0 < rows; r0 += T)                                                       \
            for (int c0 = 0; c0 < cols; c0 += T) {                                                 \
                const int r1 = r0 + T < rows ? r0 + T : rows, c1 = c0 + T < cols ? c0 + T : cols;  \
                for (int c = c0; c < c1; c++)                                                      \
                    for (int r = r0; r < r1; r++) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c]; \
            }                                                                                      \
    }
ROE_TRANSPOSE(transpose16, uint16_t)
ROE_TRANSPOSE(transpose32, uint32_t)
#undef ROE_TRANSPOSE

static void transpose(const struct roe_mat *src, void *dst) {
    if (roe_dtype_size(src->dtype) == 2) transpose16(src->data, dst, src->rows, src->cols);
    else transpose32(src->data, dst, src->rows, src->cols);
}

/* gpt-oss: the memory an expert left input-major is transposed into (one block: gate, then
 * down); transpose_pending fills it. */
static roe_status alloc_expert(struct roe_expert_weights *x, int layer, int e) {
    if (!x->gate_t.data || x->owned) return ROE_OK;
    const size_t gu = roe_mat_bytes(&x->gate), dn = roe_mat_bytes(&x->down);
    x->owned = roe_malloc_aligned(gu + dn);
    if (!x->owned)
        return roe_fail(ROE_ERR_NOMEM, "out of memory transposing layer %d's expert %d (%zu bytes)", layer, e, gu + dn);
    return ROE_OK;
}

/* Transposes every expert with its memory but no data yet, experts over the OpenMP threads (each
 * writes only its own block). */
static void transpose_pending(struct roe_model *m) {
    const int L = m->cfg.n_layers, E = m->cfg.n_experts;
#pragma omp parallel for schedule(dynamic, 1)
    for (long i = 0; i < (long)L * E; i++) {
        struct roe_expert_weights *x = m->layers[i / E].experts ? &m->layers[i / E].experts[i % E] : NULL;
        if (!x || !x->owned || x->gate.data) continue;
        char *g = x->owned, *d = g + roe_mat_bytes(&x->gate);
        transpose(&x->gate_t, g);
        transpose(&x->down_t, d);
        x->gate.data = g;
        x->down.data = d;
    }
}

/* An FP8 kv_b_proj's head h: W_uk^T dequantized to fp32 (e4m3 x its tile's scale, as transformers'
 * dequantized weights are), into wuk_t [kv_lora_rank, nope] of that head. The one FP8 matrix roe
 * widens at load: it is derived (the checkpoint's kv_b_proj stays FP8 for W_uv), 4 x nope x
 * kv_lora_rank bytes per head. */
static void absorb_fp8_head(const struct roe_mat *kvb, const struct roe_mla_config *a, int h, float *wuk) {
    const int R = a->kv_lora_rank, nt = (R + ROE_FP8_TILE - 1) / ROE_FP8_TILE;
    for (int j = 0; j < a->nope_dim; j++) {
        const int row = h * (a->nope_dim + a->v_dim) + j, tr = (kvb->tile_row0 + row) / ROE_FP8_TILE;
        const uint8_t *q = (const uint8_t *)kvb->data + (size_t)row * R;
        for (int i = 0; i < R; i++)
            wuk[((size_t)h * R + i) * a->nope_dim + j] =
                roe_e4m3_to_f32(q[i]) * kvb->tile_scale[(size_t)tr * nt + i / ROE_FP8_TILE];
    }
}

/* MLA: each layer's W_uk (the first nope rows of each head in kv_b_proj, [nope, kv_lora_rank])
 * transposed per head into owned memory [kv_lora_rank, nope], in its dtype, so that the absorbed
 * query W_uk^T q_nope is a matmul over [out, in] rows like every other (runtime/mla.c). Heads of
 * every layer over the OpenMP threads, each writing its own block. */
static roe_status absorb_mla(struct roe_model *m) {
    const struct roe_model_config *c = &m->cfg;
    if (!c->mla || m->shapes_only) return ROE_OK;
    const struct roe_mla_config *a = &c->mla_cfg;
    const int nh = c->n_heads, L = c->n_layers;
    for (int l = 0; l < L; l++) {
        struct roe_layer_weights *W = &m->layers[l];
        if (W->owned) continue;
        W->owned = roe_malloc_aligned(roe_mat_bytes(&W->wuk_t));
        if (!W->owned)
            return roe_fail(ROE_ERR_NOMEM, "out of memory absorbing layer %d's kv_b_proj (%zu bytes)", l,
                            roe_mat_bytes(&W->wuk_t));
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (long i = 0; i < (long)L * nh; i++) {
        struct roe_layer_weights *W = &m->layers[i / nh];
        if (W->wkv_b.dtype == ROE_DTYPE_F8_E4M3) {
            absorb_fp8_head(&W->wkv_b, a, (int)(i % nh), (float *)W->owned);
            continue;
        }
        const size_t es = roe_dtype_size(W->wkv_b.dtype), h = (size_t)(i % nh);
        const struct roe_mat uk = {
            .dtype = W->wkv_b.dtype, .rows = a->nope_dim, .cols = a->kv_lora_rank,
            .data = (const char *)W->wkv_b.data + h * (a->nope_dim + a->v_dim) * a->kv_lora_rank * es};
        transpose(&uk, (char *)W->owned + h * a->kv_lora_rank * a->nope_dim * es);
    }
    for (int l = 0; l < L; l++) m->layers[l].wuk_t.data = m->layers[l].owned;
    return ROE_OK;
}

roe_status roe_model_materialize(struct roe_model *m) {
    const struct roe_model_config *c = &m->cfg;
    for (int l = 0; l < c->n_layers; l++)
        for (int e = 0; m->layers[l].experts && e < c->n_experts; e++)
            ROE_TRY(alloc_expert(&m->layers[l].experts[e], l, e));
    transpose_pending(m);
    return absorb_mla(m);
}

/* gpt-oss MXFP4: NAME_blocks U8 [E, rows, cols / 32, 16] (value 2j of a block the low nibble of
 * byte j) and NAME_scales U8 [E, rows, cols / 32] (e8m0), output-major like every roe_mat: each
 * expert's view points into the mapping (never widened, never transposed). */
static roe_status bind_mx(const struct roe_model *m, int i, const char *proj, int E, int rows, int cols,
                          struct roe_mat *out) {
    char name[256];
    const struct roe_tensor *t[2];
    const char *part[2] = {"blocks", "scales"};
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%s_%s", i, proj, part[k]);
        if (!(t[k] = roe_store_find(m->store, name)))
            return roe_fail(ROE_ERR_FORMAT, "%s: missing tensor '%s' (an MXFP4 gpt_oss checkpoint has %s_blocks and "
                            "%s_scales in each layer)", m->dir, name, proj, proj);
        if (t[k]->dtype != ROE_DTYPE_U8)
            return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%s' has dtype %s (MXFP4 %s are U8)", t[k]->file, t[k]->name,
                            roe_dtype_name(t[k]->dtype), part[k]);
    }
    if (cols % ROE_QBLOCK)
        return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%s': MXFP4 needs its input width %d to be a multiple of 32 "
                        "(hidden_size and intermediate_size)", m->dir, t[0]->name, cols);
    const int nb = cols / ROE_QBLOCK;
    char got[128];
    if (t[0]->ndim == 4 && t[0]->shape[3] != 16) {
        shape_str(t[0], got, sizeof got);
        return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%s' has shape %s: its last dimension must be 16 (32 e2m1 values "
                        "in 16 bytes per block)", t[0]->file, t[0]->name, got);
    }
    const int64_t want[2][4] = {{E, rows, nb, 16}, {E, rows, nb, 0}};
    for (int k = 0; k < 2; k++) {
        int ok = t[k]->ndim == 4 - k;
        for (int d = 0; ok && d < 4 - k; d++) ok = t[k]->shape[d] == want[k][d];
        if (ok) continue;
        shape_str(t[k], got, sizeof got);
        return roe_fail(ROE_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected [%d, %d, %d%s] by the config",
                        t[k]->file, t[k]->name, got, E, rows, nb, k ? "" : ", 16");
    }
    *out = (struct roe_mat){.dtype = ROE_DTYPE_MXFP4, .data = t[0]->data, .rows = rows, .cols = cols,
                            .e8m0 = t[1]->data};
    return ROE_OK;
}

/* gpt-oss with quant_method mxfp4: the experts' MXFP4 matrices and their float biases. */
static roe_status bind_oai_experts_mx(struct roe_model *m, int i, struct roe_layer_weights *L) {
    const struct roe_model_config *c = &m->cfg;
    const int E = c->n_experts, I = c->moe_intermediate, H = c->hidden;
    struct roe_mat gu, dn, gb, db;
    ROE_TRY(bind_mx(m, i, "gate_up_proj", E, 2 * I, H, &gu));
    ROE_TRY(bind_mx(m, i, "down_proj", E, H, I, &dn));
    char name[256];
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj_bias", i);
    ROE_TRY(bind(m, name, E, 2 * I, &gb));
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.down_proj_bias", i);
    ROE_TRY(bind(m, name, E, H, &db));
    if (roe_dtype_is_block(gb.dtype) || roe_dtype_is_block(db.dtype))
        return roe_fail(ROE_ERR_FORMAT, "%s: layer %d's expert biases must be float", m->dir, i);
    L->experts = roe_calloc((size_t)E, sizeof *L->experts);
    if (!L->experts) return roe_fail(ROE_ERR_NOMEM, "layer %d: out of memory for %d experts", i, E);
    for (int e = 0; e < E; e++) {
        struct roe_expert_weights *x = &L->experts[e];
        x->gate = gu, x->down = dn;
        x->gate.data = (const char *)gu.data + (size_t)e * 2 * I * (H / 2);
        x->gate.e8m0 = gu.e8m0 + (size_t)e * 2 * I * (H / ROE_QBLOCK);
        x->down.data = (const char *)dn.data + (size_t)e * H * (I / 2);
        x->down.e8m0 = dn.e8m0 + (size_t)e * H * (I / ROE_QBLOCK);
        x->gate_bias = (struct roe_mat){.dtype = gb.dtype, .rows = 1, .cols = 2 * I,
                                        .data = (const char *)gb.data + (size_t)e * 2 * I * roe_dtype_size(gb.dtype)};
        x->down_bias = (struct roe_mat){.dtype = db.dtype, .rows = 1, .cols = H,
                                        .data = (const char *)db.data + (size_t)e * H * roe_dtype_size(db.dtype)};
    }
    return ROE_OK;
}

/* gpt-oss: experts.gate_up_proj [E, H, 2I] (x @ W, gate/up columns interleaved) with its bias
 * [E, 2I], experts.down_proj [E, I, H] with its bias [E, H]. Each expert held gets its two
 * matrices transposed into one owned block (alloc_expert, transpose_pending): gate = [2I, H] (rows
 * interleaved), down = [H, I]; until then gate_t / down_t view the checkpoint. */
static roe_status bind_oai_experts(struct roe_model *m, int i, struct roe_layer_weights *L) {
    const struct roe_model_config *c = &m->cfg;
    const int E = c->n_experts, I = c->moe_intermediate, H = c->hidden;
    char name[256];
    const struct roe_tensor *t[4];
    const char *suffix[4] = {"gate_up_proj", "gate_up_proj_bias", "down_proj", "down_proj_bias"};
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj", i);
    if (c->mxfp4 && !roe_store_find(m->store, name)) return bind_oai_experts_mx(m, i, L);
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%s", i, suffix[k]);
        t[k] = roe_store_find(m->store, name);
        if (t[k]) continue;
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%s_blocks", i, suffix[k]);
        if (roe_store_find(m->store, name))
            return roe_fail(ROE_ERR_FORMAT, "%s: '%s' is an MXFP4 tensor but config.json has no quantization_config "
                            "with quant_method 'mxfp4'", m->dir, name);
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%s", i, suffix[k]);
        return roe_fail(ROE_ERR_FORMAT, "%s: missing tensor '%s' (required by gpt_oss with %d layers)", m->dir,
                        name, c->n_layers);
    }
    for (int k = 0; k < 4; k++) /* stored input-major and transposed when held: float only */
        if (roe_dtype_is_block(t[k]->dtype))
            return roe_fail(ROE_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s: gpt-oss experts are loaded from a "
                            "float checkpoint (quantize at load with --weights)", m->dir, t[k]->name,
                            roe_dtype_name(t[k]->dtype));
    ROE_TRY(check_3d(t[0], E, H, 2 * I));
    ROE_TRY(check_3d(t[2], E, I, H));
    struct roe_mat gb, db;
    ROE_TRY(check_mat(t[1], E, 2 * I, &gb));
    ROE_TRY(check_mat(t[3], E, H, &db));
    L->experts = roe_calloc((size_t)E, sizeof *L->experts);
    if (!L->experts) return roe_fail(ROE_ERR_NOMEM, "layer %d: out of memory for %d experts", i, E);
    const size_t gu_bytes = (size_t)2 * I * H * roe_dtype_size(t[0]->dtype);
    const size_t dn_bytes = (size_t)H * I * roe_dtype_size(t[2]->dtype);
    for (int e = 0; e < E; e++) { /* transposed when held: alloc_expert, transpose_pending */
        struct roe_expert_weights *x = &L->experts[e];
        x->gate_t = (struct roe_mat){.dtype = t[0]->dtype, .data = (const char *)t[0]->data + (size_t)e * gu_bytes,
                                     .rows = H, .cols = 2 * I};
        x->down_t = (struct roe_mat){.dtype = t[2]->dtype, .data = (const char *)t[2]->data + (size_t)e * dn_bytes,
                                     .rows = I, .cols = H};
        x->gate = (struct roe_mat){.dtype = t[0]->dtype, .rows = 2 * I, .cols = H};
        x->down = (struct roe_mat){.dtype = t[2]->dtype, .rows = H, .cols = I};
        x->gate_bias = (struct roe_mat){.dtype = gb.dtype, .rows = 1, .cols = 2 * I,
                                        .data = (const char *)gb.data + (size_t)e * 2 * I * roe_dtype_size(gb.dtype)};
        x->down_bias = (struct roe_mat){.dtype = db.dtype, .rows = 1, .cols = H,
                                        .data = (const char *)db.data + (size_t)e * H * roe_dtype_size(db.dtype)};
    }
    return ROE_OK;
}

/* The name of layer i's tensor `suffix`: model.layers.i.suffix, or a MoR model's unique layers
 * (config.h struct roe_mor_config): layer 0, the shared block's layer j at model.layers.1.block.j,
 * the last at model.layers.{N_r + 1}. */
static void layer_name(const struct roe_model_config *c, int i, const char *suffix, char *name, size_t n) {
    const int B = c->mor.block;
    if (!c->mor.n_recursion || i == 0) snprintf(name, n, "model.layers.%d.%s", i, suffix);
    else if (i <= B) snprintf(name, n, "model.layers.1.block.%d.%s", i - 1, suffix);
    else snprintf(name, n, "model.layers.%d.%s", c->mor.n_recursion + 1, suffix);
}

#define BIND(suffix, r, cc, dst)                                                                   \
    do {                                                                                           \
        layer_name(&m->cfg, i, suffix, name, sizeof name);                                         \
        ROE_TRY(bind(m, name, r, cc, dst));                                                        \
    } while (0)

/* q/k/v (and o) biases and sinks, where the family has them. */
static roe_status bind_attn_extras(struct roe_model *m, int i, struct roe_layer_weights *L) {
    const struct roe_model_config *c = &m->cfg;
    const int H = c->hidden, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    char name[320];
    if (c->qkv_bias) {
        BIND("self_attn.q_proj.bias", 1, qd, &L->bq);
        BIND("self_attn.k_proj.bias", 1, kd, &L->bk);
        BIND("self_attn.v_proj.bias", 1, kd, &L->bv);
    }
    if (c->o_bias) BIND("self_attn.o_proj.bias", 1, H, &L->bo);
    if (c->attn_sinks) BIND("self_attn.sinks", 1, c->n_heads, &L->sinks);
    return ROE_OK;
}

/* A MoE layer's router (with gpt-oss's bias, GLM-4.5's correction bias), experts and shared expert. */
static roe_status bind_moe(struct roe_model *m, int i, struct roe_layer_weights *L) {
    const struct roe_model_config *c = &m->cfg;
    const int H = c->hidden, E = c->n_experts, S = c->shared_intermediate;
    char name[320];
    if (c->family == ROE_FAMILY_GPT_OSS) {
        BIND("mlp.router.weight", E, H, &L->router);
        BIND("mlp.router.bias", 1, E, &L->router_bias);
        return bind_oai_experts(m, i, L);
    }
    /* Mixtral checkpoints on the hub say block_sparse_moe; transformers >= 5 saves mlp. */
    const char *moe = "mlp";
    snprintf(name, sizeof name, "model.layers.%d.block_sparse_moe.gate.weight", i);
    if (c->family == ROE_FAMILY_MIXTRAL && roe_store_find(m->store, name)) moe = "block_sparse_moe";
    char router[64];
    snprintf(router, sizeof router, "%s.gate.weight", moe);
    BIND(router, E, H, &L->router);
    if (c->router == ROE_ROUTER_SIGMOID_GROUP) BIND("mlp.gate.e_score_correction_bias", 1, E, &L->score_bias);
    ROE_TRY(bind_experts(m, i, moe, L));
    if (S == 0) return ROE_OK;
    const char *sh = c->family == ROE_FAMILY_QWEN2_MOE ? "mlp.shared_expert" : "mlp.shared_experts";
    const char *part[3] = {"gate_proj", "up_proj", "down_proj"};
    struct roe_mat *dst[3] = {&L->shared.gate, &L->shared.up, &L->shared.down};
    for (int k = 0; k < 3; k++) {
        snprintf(router, sizeof router, "%s.%s.weight", sh, part[k]);
        BIND(router, k == 2 ? H : S, k == 2 ? S : H, dst[k]);
    }
    if (c->shared_gate) BIND("mlp.shared_expert_gate.weight", 1, H, &L->shared_gate);
    return ROE_OK;
}

/* q_lora_rank and the checkpoint disagree: a message naming the field, not just a missing tensor. */
static roe_status check_q_lora(const struct roe_model *m, int i) {
    char name[320];
    const int lora = m->cfg.mla_cfg.q_lora_rank != 0;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.%s.weight", i, lora ? "q_a_proj" : "q_proj");
    if (roe_store_find(m->store, name)) return ROE_OK;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.%s.weight", i, lora ? "q_proj" : "q_a_proj");
    if (!roe_store_find(m->store, name)) return ROE_OK; /* neither: bind names the missing one */
    if (lora)
        return roe_fail(ROE_ERR_FORMAT, "%s: q_lora_rank is %d but layer %d has a q_proj and no q_a_proj (a "
                        "checkpoint without query LoRA: q_lora_rank must be null)", m->dir,
                        m->cfg.mla_cfg.q_lora_rank, i);
    return roe_fail(ROE_ERR_FORMAT, "%s: q_lora_rank is null but layer %d has a q_a_proj and no q_proj (set "
                    "q_lora_rank to q_a_proj's rows)", m->dir, i);
}

/* Multi-head latent attention's tensors (DeepseekV3Attention); shapes from struct roe_mla_config. */
static roe_status bind_mla(struct roe_model *m, int i, struct roe_layer_weights *L) {
    const struct roe_model_config *c = &m->cfg;
    const struct roe_mla_config *a = &c->mla_cfg;
    const int H = c->hidden, nh = c->n_heads, qk = a->nope_dim + a->rope_dim, W = a->kv_lora_rank + a->rope_dim;
    char name[320];
    ROE_TRY(check_q_lora(m, i));
    if (a->q_lora_rank) {
        BIND("self_attn.q_a_proj.weight", a->q_lora_rank, H, &L->wq_a);
        if (c->qkv_bias) BIND("self_attn.q_a_proj.bias", 1, a->q_lora_rank, &L->bq_a);
        BIND("self_attn.q_a_layernorm.weight", 1, a->q_lora_rank, &L->q_a_norm);
        BIND("self_attn.q_b_proj.weight", nh * qk, a->q_lora_rank, &L->wq);
    } else
        BIND("self_attn.q_proj.weight", nh * qk, H, &L->wq);
    BIND("self_attn.kv_a_proj_with_mqa.weight", W, H, &L->wkv_a);
    if (c->qkv_bias) BIND("self_attn.kv_a_proj_with_mqa.bias", 1, W, &L->bkv_a);
    BIND("self_attn.kv_a_layernorm.weight", 1, a->kv_lora_rank, &L->kv_a_norm);
    BIND("self_attn.kv_b_proj.weight", nh * (a->nope_dim + a->v_dim), a->kv_lora_rank, &L->wkv_b);
    BIND("self_attn.o_proj.weight", H, nh * a->v_dim, &L->wo);
    if (c->o_bias) BIND("self_attn.o_proj.bias", 1, H, &L->bo);
    const roe_dtype uk = L->wkv_b.dtype == ROE_DTYPE_F8_E4M3 ? ROE_DTYPE_F32 : L->wkv_b.dtype; /* absorb_fp8_head */
    L->wuk_t = (struct roe_mat){.dtype = uk, .rows = nh * a->kv_lora_rank, .cols = a->nope_dim}; /* absorb_mla */
    return ROE_OK;
}

/* The dense MLP of a layer that is not MoE. */
static roe_status bind_dense(struct roe_model *m, int i, struct roe_layer_weights *L) {
    const int H = m->cfg.hidden, I = m->cfg.dense_intermediate;
    char name[320];
    BIND("mlp.gate_proj.weight", I, H, &L->dense.gate);
    BIND("mlp.up_proj.weight", I, H, &L->dense.up);
    BIND("mlp.down_proj.weight", H, I, &L->dense.down);
    return ROE_OK;
}

static roe_status bind_layer(struct roe_model *m, int i) {
    const struct roe_model_config *c = &m->cfg;
    struct roe_layer_weights *L = &m->layers[i];
    const int H = c->hidden, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    char name[320];
    BIND("input_layernorm.weight", 1, H, &L->attn_norm);
    BIND("post_attention_layernorm.weight", 1, H, &L->ffn_norm);
    if (c->mla) {
        ROE_TRY(bind_mla(m, i, L));
        return c->layer_is_moe[i] ? bind_moe(m, i, L) : bind_dense(m, i, L);
    }
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
    ROE_TRY(bind_attn_extras(m, i, L));
    return c->layer_is_moe[i] ? bind_moe(m, i, L) : bind_dense(m, i, L);
}
#undef BIND

/* The sub-names of a Llama decoder layer (a MoR block layer's tensors). */
static const char *const LLAMA_LAYER_TENSORS[] = {
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
    "self_attn.o_proj.weight", "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
    "mlp.down_proj.weight"};

/* A MoR checkpoint may repeat the shared block at model.layers.{r}.block.{j} for r = 2..N_r (the
 * official code's state dict): accepted only byte-identical to r = 1's, since the model holds one copy. */
static roe_status check_mor_copies(const struct roe_model *m) {
    const struct roe_mor_config *mc = &m->cfg.mor;
    char name[320], one[320];
    for (int r = 2; r <= mc->n_recursion; r++)
        for (int j = 0; j < mc->block; j++)
            for (size_t k = 0; k < sizeof LLAMA_LAYER_TENSORS / sizeof LLAMA_LAYER_TENSORS[0]; k++) {
                snprintf(name, sizeof name, "model.layers.%d.block.%d.%s", r, j, LLAMA_LAYER_TENSORS[k]);
                const struct roe_tensor *t = roe_store_find(m->store, name);
                if (!t) continue;
                snprintf(one, sizeof one, "model.layers.1.block.%d.%s", j, LLAMA_LAYER_TENSORS[k]);
                const struct roe_tensor *t1 = roe_store_find(m->store, one);
                if (!t1 || t->dtype != t1->dtype || t->nbytes != t1->nbytes || memcmp(t->data, t1->data, t->nbytes) != 0)
                    return roe_fail(ROE_ERR_UNSUPPORTED,
                                    "%s: tensor '%s' differs from '%s': recursion %d has weights of its own, but "
                                    "mor_llama's middle_cycle sharing applies ONE block every recursion",
                                    m->dir, name, one, r);
            }
    return ROE_OK;
}

/* A MoR model's routers (config.h struct roe_mor_config), and its shared block's copies checked. */
static roe_status bind_mor(struct roe_model *m) {
    const struct roe_mor_config *mc = &m->cfg.mor;
    const int H = m->cfg.hidden;
    if (mc->router == ROE_MOR_TOKEN_CHOICE)
        ROE_TRY(bind(m, "model.layers.1.mor_router.router.weight", mc->n_recursion, H, &m->mor_router[0]));
    else
        for (int r = 1; r <= mc->n_recursion; r++) {
            char name[320];
            snprintf(name, sizeof name, "model.layers.%d.mor_router.router.weight", r);
            ROE_TRY(bind(m, name, 1, H, &m->mor_router[r - 1]));
        }
    for (int r = 0; r < mc->n_recursion; r++)
        if (m->mor_router[r].data && roe_dtype_is_block(m->mor_router[r].dtype))
            return roe_fail(ROE_ERR_UNSUPPORTED, "%s: MoR router %d is block-quantized: routers must be float", m->dir,
                            r + 1);
    return ROE_OK;
}

static size_t mat_elems(const struct roe_mat *x) { return (size_t)x->rows * (size_t)x->cols; }

void roe__model_account(struct roe_model *m) {
    const struct roe_model_config *c = &m->cfg;
    size_t dense = roe_mat_bytes(&m->embed) + roe_mat_bytes(&m->final_norm);
    size_t params = mat_elems(&m->embed) + mat_elems(&m->final_norm);
    if (!c->tie_word_embeddings) {
        dense += roe_mat_bytes(&m->lm_head);
        params += mat_elems(&m->lm_head);
    }
    m->expert_bytes = m->expert_params = 0;
    for (int r = 0; r < ROE_MOR_MAX_RECURSION; r++) {
        dense += roe_mat_bytes(&m->mor_router[r]);
        params += mat_elems(&m->mor_router[r]);
    }
    for (int i = 0; i < c->n_layers; i++) {
        struct roe_layer_weights *L = &m->layers[i];
        for (int k = 0; k < roe_n_layer_mats; k++) {
            const struct roe_mat *x = roe_layer_mat(L, k);
            if (!roe_layer_mats[k].derived && (x->data || m->shapes_only)) {
                dense += roe_mat_bytes(x);
                params += mat_elems(x);
            }
        }
        if (L->experts && !m->expert_bytes) { /* every MoE layer's experts have one shape */
            int e = 0; /* the first one held: quantized where this rank quantized its share */
            while (e < c->n_experts && !L->experts[e].gate.data && !L->experts[e].owned) e++;
            struct roe_expert_weights *x = &L->experts[e < c->n_experts ? e : 0];
            for (int k = 0; k < roe_n_expert_mats; k++) {
                m->expert_params += mat_elems(roe_expert_mat(x, k));
                m->expert_bytes += roe_mat_bytes(roe_expert_mat(x, k));
            }
        }
    }
    m->dense_bytes = dense;
    if (m->held_experts < 0) m->held_experts = (long)roe_config_n_moe_layers(c) * c->n_experts;
    m->held_bytes = dense + (size_t)m->held_experts * m->expert_bytes;
    m->n_params = params + (size_t)m->held_experts * m->expert_params;
}

size_t roe_model_active_params(const struct roe_model *m) {
    const struct roe_model_config *c = &m->cfg;
    const size_t n_moe = (size_t)roe_config_n_moe_layers(c);
    return m->n_params - n_moe * (size_t)c->n_experts * m->expert_params + n_moe * (size_t)c->top_k * m->expert_params;
}

double roe_model_step_weight_bytes(const struct roe_model *m) {
    const struct roe_model_config *c = &m->cfg;
    double dense = (double)m->dense_bytes;
    if (!c->tie_word_embeddings) /* the lookup reads one row; a tied table is the LM head, read whole */
        dense += (double)c->hidden * roe_dtype_size(m->embed.dtype) - (double)roe_mat_bytes(&m->embed);
    return dense + (double)m->expert_bytes * c->top_k * roe_config_n_moe_layers(c);
}

size_t roe_model_kv_bytes_per_token(const struct roe_model_config *c) {
    return sizeof(float) * (size_t)c->n_layers * (size_t)roe_config_kv_width(c);
}

size_t roe_model_kv_bytes_per_token_full(const struct roe_model_config *c) {
    return sizeof(float) * (size_t)c->n_layers * (size_t)roe_config_kv_width_full(c);
}

roe_status roe_model_keep_experts(struct roe_model *m, const struct roe_placement *pl, int rank) {
    const struct roe_model_config *c = &m->cfg;
    m->held_experts = 0;
    for (int l = 0; l < c->n_layers; l++) {
        if (!c->layer_is_moe[l] || !m->layers[l].experts) continue;
        for (int e = 0; e < c->n_experts; e++) {
            struct roe_expert_weights *x = &m->layers[l].experts[e];
            if (roe_placement_owner(pl, l, e) == rank) {
                ROE_TRY(alloc_expert(x, l, e));
                if (x->gate.data || x->owned || m->shapes_only) m->held_experts++;
            } else {
                roe_free_aligned(x->owned); /* gpt-oss: a transposed copy */
                memset(x, 0, sizeof *x);
            }
        }
    }
    m->held_bytes = m->dense_bytes + (size_t)m->held_experts * m->expert_bytes;
    transpose_pending(m);
    return absorb_mla(m);
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

static void touch_range(const void *data, size_t n) {
    volatile unsigned char sink = 0;
    const unsigned char *p = data;
    for (size_t o = 0; o < n; o += 4096) sink ^= p[o];
    if (n) sink ^= p[n - 1];
    (void)sink;
}

/* A block dtype's data and its parameters may lie apart: scales (and Q4's mins) of a checkpoint
 * saved by `roe quantize`, MXFP4's exponents, FP8's tile scales are tensors of their own. */
static double touch(const struct roe_mat *w) {
    if (!w->data) return 0.0;
    const size_t rows = (size_t)w->rows, data = rows * roe_dtype_row_bytes(w->dtype, (size_t)w->cols);
    const size_t nb = rows * roe_dtype_row_blocks(w->dtype, (size_t)w->cols);
    const size_t n = roe_mat_bytes(w), all = rows * roe_dtype_row_bytes_all(w->dtype, (size_t)w->cols);
    touch_range(w->data, data);
    if (w->scales) touch_range(w->scales, nb * 2);
    if (w->mins) touch_range(w->mins, nb * 2);
    if (w->e8m0) touch_range(w->e8m0, nb);
    if (w->tile_scale && n > all) touch_range(w->tile_scale, n - all);
    return (double)n;
}

double roe_model_warm(const struct roe_model *m) {
    const struct roe_model_config *c = &m->cfg;
    double bytes = touch(&m->embed) + touch(&m->final_norm);
    if (m->lm_head.data != m->embed.data) bytes += touch(&m->lm_head);
    for (int r = 0; r < ROE_MOR_MAX_RECURSION; r++) bytes += touch(&m->mor_router[r]);
    for (int i = 0; i < c->n_layers; i++) {
        struct roe_layer_weights *L = &m->layers[i];
        for (int k = 0; k < roe_n_layer_mats; k++) bytes += touch(roe_layer_mat(L, k));
        for (int e = 0; L->experts && e < c->n_experts; e++)
            for (int k = 0; k < roe_n_expert_mats; k++) bytes += touch(roe_expert_mat(&L->experts[e], k));
    }
    return bytes;
}

roe_status roe_model_load(const char *dir, struct roe_model **out) {
    ROE_TRY(roe_model_open(dir, out));
    roe_status st = roe_model_materialize(*out);
    if (st != ROE_OK) {
        roe_model_free(*out);
        *out = NULL;
    }
    return st;
}

roe_status roe_model_open(const char *dir, struct roe_model **out) {
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
    if (c->mor.n_recursion) ROE_CHECK(check_mor_copies(m)); /* before a missing layer hides a misplaced copy */
    for (int i = 0; i < c->n_layers; i++) ROE_CHECK(bind_layer(m, i));
    if (c->mor.n_recursion) ROE_CHECK(bind_mor(m));
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

/* MLA's views of a shapes-only model (bind_mla's shapes). */
static void shape_mla(const struct roe_model_config *c, struct roe_layer_weights *L) {
    const struct roe_mla_config *a = &c->mla_cfg;
    const int H = c->hidden, nh = c->n_heads, qk = a->nope_dim + a->rope_dim, W = a->kv_lora_rank + a->rope_dim;
    if (a->q_lora_rank) {
        L->wq_a = shape(a->q_lora_rank, H);
        L->q_a_norm = shape(1, a->q_lora_rank);
        if (c->qkv_bias) L->bq_a = shape(1, a->q_lora_rank);
    }
    L->wq = shape(nh * qk, a->q_lora_rank ? a->q_lora_rank : H);
    L->wkv_a = shape(W, H);
    if (c->qkv_bias) L->bkv_a = shape(1, W);
    L->kv_a_norm = shape(1, a->kv_lora_rank);
    L->wkv_b = shape(nh * (a->nope_dim + a->v_dim), a->kv_lora_rank);
    L->wuk_t = shape(nh * a->kv_lora_rank, a->nope_dim);
    L->wo = shape(H, nh * a->v_dim);
}

/* The views of layer i of a shapes-only model: what bind_layer would bind, without data. */
static roe_status shape_layer(const struct roe_model_config *c, int i, struct roe_layer_weights *L) {
    const int H = c->hidden, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    const int I = c->moe_intermediate, S = c->shared_intermediate, E = c->n_experts;
    L->attn_norm = L->ffn_norm = shape(1, H);
    if (c->mla) shape_mla(c, L);
    else {
        L->wq = shape(qd, H);
        L->wk = L->wv = shape(kd, H);
        L->wo = shape(H, qd);
    }
    if (c->qk_norm == ROE_QK_NORM_FULL) {
        L->q_norm = shape(1, qd);
        L->k_norm = shape(1, kd);
    } else if (c->qk_norm == ROE_QK_NORM_PER_HEAD)
        L->q_norm = L->k_norm = shape(1, c->head_dim);
    if (c->qkv_bias && !c->mla) {
        L->bq = shape(1, qd);
        L->bk = L->bv = shape(1, kd);
    }
    if (c->o_bias) L->bo = shape(1, H);
    if (c->attn_sinks) L->sinks = shape(1, c->n_heads);
    if (!c->layer_is_moe[i]) {
        L->dense.gate = L->dense.up = shape(c->dense_intermediate, H);
        L->dense.down = shape(H, c->dense_intermediate);
        return ROE_OK;
    }
    L->router = shape(E, H);
    if (c->router_bias) L->router_bias = shape(1, E);
    if (c->router == ROE_ROUTER_SIGMOID_GROUP) L->score_bias = shape(1, E);
    if (S) {
        L->shared.gate = L->shared.up = shape(S, H);
        L->shared.down = shape(H, S);
    }
    if (c->shared_gate) L->shared_gate = shape(1, H);
    L->experts = roe_calloc((size_t)E, sizeof *L->experts);
    if (!L->experts) return roe_fail(ROE_ERR_NOMEM, "layer %d: out of memory for %d experts", i, E);
    for (int e = 0; e < E; e++) {
        struct roe_expert_weights *x = &L->experts[e];
        x->down = shape(H, I);
        if (c->expert_act == ROE_ACT_SWIGLU_OAI) {
            x->gate = shape(2 * I, H);
            x->gate_bias = shape(1, 2 * I);
            x->down_bias = shape(1, H);
        } else
            x->gate = x->up = shape(I, H);
    }
    return ROE_OK;
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
    m->layers = roe_calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->dir || !m->layers) {
        st = roe_fail(ROE_ERR_NOMEM, "out of memory for %d layers", c->n_layers);
        goto fail;
    }
    m->embed = m->lm_head = shape(c->vocab_size, c->hidden);
    m->final_norm = shape(1, c->hidden);
    for (int i = 0; i < c->n_layers; i++) ROE_CHECK(shape_layer(c, i, &m->layers[i]));
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
    for (int i = 0; m->layers && i < m->cfg.n_layers; i++) {
        struct roe_expert_weights *x = m->layers[i].experts;
        for (int e = 0; x && e < m->cfg.n_experts; e++) roe_free_aligned(x[e].owned);
        roe_free(x);
        roe_free_aligned(m->layers[i].owned);
    }
    roe_free(m->layers);
    roe_store_close(m->store);
    roe_free(m->dir);
    roe_free(m);
}
