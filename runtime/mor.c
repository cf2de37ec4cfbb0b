/*
 * mor.c — Mixture-of-Recursions in the engine: depth routing, recursion-wise KV in a block pool,
 * the plain step and continuous depth-wise batching (mor.h says what and why).
 *
 * A token's state while it runs (struct mor_tok) lives in the in-flight arrays: its row, the
 * recursion it runs next, its depth bound and its gate; its residual is a row of fh (and, token
 * choice, H^1 a row of fh1). The plain step puts its rows there, runs them a recursion at a time
 * and empties them; a tick admits queued rows, passes the block once over every token in flight
 * and finishes those that left. Both go through the same three functions: layer_forward (one
 * Llama decoder layer over rows, against a pool), block_pass (the B shared layers over tokens at
 * their own recursions) and advance (the gate update and the next depth decision).
 *
 * The host decides depths, so MoR runs where backend memory is host memory (the CPU backend).
 */
#include "mor.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine_impl.h"

struct mor_tok {
    struct roe_row row;
    int r;      /* the recursion it runs next (1-based) */
    int depth;  /* the most recursions it may run: token choice, its choice; expert choice, N_r */
    float g;    /* gate of recursion r (expert choice), of its last recursion (token choice) */
    int done;   /* left the block: runs the last layer next */
};

struct roe_mor {
    struct roe_kv_cache block; /* the shared block's layers: pool sequence seq P + r - 1 (P = per_seq) */
    int per_seq;               /* pool sequences per sequence: N_r (recursion-wise) or 1 (sharing) */
    int full_depth;            /* engine opt mor_full_depth */
    float *router;             /* [N_r, H] the routers in fp32 (expert choice: router r at row r - 1) */
    uint8_t *depth;            /* [S, max_ctx] recursions each position ran (0: unknown) */
    struct mor_tok *tok;       /* [2R] the tokens in flight (at most R), then a plain step's rows */
    float *fh;                 /* [2R, H] their residuals */
    float *fh1;                /* [2R, H] token choice: their H^1 (layer 0's output) */
    float *w;                  /* [R, H] a block pass's rows */
    int n_flight;
    struct roe_row *queue;     /* [S] the FIFO of submitted rows, q_n from q_head (a ring) */
    int q_head, q_n;
    uint8_t *busy;             /* [S] a sequence has a token queued or in flight */
    /* one layer's plan, per row of the call: the pool sequence and position it writes/reads */
    int *pseq, *ppos, *pos, *hbeg, *hend;
    uint8_t *store;            /* [R] writes its K/V at (pseq, ppos) */
    uint8_t *own;              /* [R] recursive sharing r > 1: its own K/V are the cached step-1 ones */
    int64_t *kv_dst, *kv_src, *idx;
    int32_t *btab;             /* [R, MB] each row's block table */
    int stride;
    int *sel;                  /* [R] tokens of a pass */
    int *cnt;                  /* [S] rows per sequence in a plain step */
    long recursions;
};

/* ---- creation ---- */

static roe_status mor_fail_nomem(void) { return roe_fail(ROE_ERR_NOMEM, "engine: out of memory for MoR state"); }

/* --kv-memory split between the pools in proportion to what a token is expected to hold: 2 layers
 * in the main pool, B layers x (sum of the capacities) in the block pool (recursive sharing: B). */
static void split_bytes(const struct roe_model_config *c, size_t bytes, size_t *main_b, size_t *block_b) {
    const struct roe_mor_config *mc = &c->mor;
    double expect = 0.0;
    for (int r = 0; r < mc->n_recursion; r++) expect += mc->kv == ROE_MOR_KV_RECURSIVE_SHARING ? (r == 0) : mc->capacity[r];
    const double main_frac = 2.0 / (2.0 + (double)mc->block * expect);
    *main_b = bytes ? (size_t)((double)bytes * main_frac) : 0;
    *block_b = bytes ? bytes - *main_b : 0;
}

static roe_status open_pools(roe_engine *e, struct roe_mor *M) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_engine_opts *o = &e->opts;
    size_t main_b, block_b;
    split_bytes(c, o->kv_bytes, &main_b, &block_b);
    const int kd = c->n_kv_heads * c->head_dim;
    struct roe_kv_cache_opts ko = {.max_seqs = o->max_seqs, .n_layers = 2, .max_ctx = o->max_ctx, .kv_dim = kd,
                                   .n_vecs = 2, .block_size = o->kv_block_size, .dtype = o->kv_dtype, .bytes = main_b,
                                   .scramble = o->kv_scramble, .no_prefix = 1};
    ROE_TRY(roe_kv_cache_init(&e->kv, e->be, &ko));
    ko.max_seqs = o->max_seqs * M->per_seq;
    ko.n_layers = c->mor.block;
    ko.bytes = block_b;
    ko.scramble = o->kv_scramble ? o->kv_scramble + 1 : 0;
    return roe_kv_cache_init(&M->block, e->be, &ko);
}

static void widen_routers(const struct roe_model *m, float *out) {
    const struct roe_mor_config *mc = &m->cfg.mor;
    const int H = m->cfg.hidden;
    for (int r = 0; r < mc->n_recursion; r++) {
        const struct roe_mat *w = mc->router == ROE_MOR_TOKEN_CHOICE ? &m->mor_router[0] : &m->mor_router[r];
        const int row = mc->router == ROE_MOR_TOKEN_CHOICE ? r : 0;
        for (int i = 0; i < H; i++) {
            const size_t k = (size_t)row * H + i;
            out[(size_t)r * H + i] = w->dtype == ROE_DTYPE_BF16  ? roe_bf16_to_f32(((const uint16_t *)w->data)[k])
                                     : w->dtype == ROE_DTYPE_F16 ? roe_f16_to_f32(((const uint16_t *)w->data)[k])
                                                                 : ((const float *)w->data)[k];
        }
    }
}

roe_status roe__mor_create(roe_engine *e) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_engine_opts *o = &e->opts;
    if (!e->host_mem)
        return roe_fail(ROE_ERR_UNSUPPORTED, "engine: %s models run on the CPU backend only (the host decides each "
                        "token's depth; a device backend is not implemented for MoR)", c->model_type);
    if (e->model->shapes_only)
        return roe_fail(ROE_ERR_UNSUPPORTED, "engine: a MoR model needs its weights (routers)");
    struct roe_mor *M = roe_calloc(1, sizeof *M);
    if (!M) return mor_fail_nomem();
    e->mor = M;
    M->per_seq = c->mor.kv == ROE_MOR_KV_RECURSION_WISE ? c->mor.n_recursion : 1;
    M->full_depth = o->mor_full_depth;
    ROE_TRY(open_pools(e, M));
    const size_t R = (size_t)o->max_rows, S = (size_t)o->max_seqs, H = (size_t)c->hidden;
    M->router = roe_malloc((size_t)c->mor.n_recursion * H * sizeof(float));
    M->depth = roe_calloc(S * (size_t)o->max_ctx, 1);
    M->tok = roe_calloc(2 * R, sizeof *M->tok); /* in flight (<= R) and a plain step's rows (<= R) */
    M->fh = roe_malloc_aligned(2 * R * H * sizeof(float));
    M->fh1 = roe_malloc_aligned(2 * R * H * sizeof(float));
    M->w = roe_malloc_aligned(R * H * sizeof(float));
    M->queue = roe_calloc(S, sizeof *M->queue);
    M->busy = roe_calloc(S, 1);
    M->pseq = roe_calloc(R, sizeof(int));
    M->ppos = roe_calloc(R, sizeof(int));
    M->pos = roe_calloc(R, sizeof(int));
    M->hbeg = roe_calloc(R, sizeof(int));
    M->hend = roe_calloc(R, sizeof(int));
    M->store = roe_calloc(R, 1);
    M->own = roe_calloc(R, 1);
    M->kv_dst = roe_calloc(R, sizeof(int64_t));
    M->kv_src = roe_calloc(R, sizeof(int64_t));
    M->idx = roe_calloc(R, sizeof(int64_t));
    M->btab = roe_calloc(R * (size_t)e->kv.max_blocks, sizeof(int32_t));
    M->sel = roe_calloc(R, sizeof(int));
    M->cnt = roe_calloc(S, sizeof(int));
    if (!M->router || !M->depth || !M->tok || !M->fh || !M->fh1 || !M->w || !M->queue || !M->busy || !M->pseq ||
        !M->ppos || !M->pos || !M->hbeg || !M->hend || !M->store || !M->own || !M->kv_dst || !M->kv_src || !M->idx ||
        !M->btab || !M->sel || !M->cnt)
        return mor_fail_nomem();
    widen_routers(e->model, M->router);
    return ROE_OK;
}

void roe__mor_free(roe_engine *e) {
    struct roe_mor *M = e->mor;
    if (!M) return;
    roe_kv_cache_free(&M->block);
    void *p[] = {M->router, M->depth, M->tok, M->queue, M->busy, M->pseq, M->ppos, M->pos, M->hbeg, M->hend,
                 M->store, M->own, M->kv_dst, M->kv_src, M->idx, M->btab, M->sel, M->cnt};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) roe_free(p[i]);
    roe_free_aligned(M->fh);
    roe_free_aligned(M->fh1);
    roe_free_aligned(M->w);
    roe_free(M);
    e->mor = NULL;
}

/* ---- one decoder layer over rows ---- */

/* Recursive sharing, a row at recursion r > 1: its own K and V are recursion 1's, read back from the
 * pool (the reference drops the fresh ones: tools/mor/mor_ref.py run_block). */
static void load_own_kv(roe_engine *e, const struct roe_kv_cache *kv, int layer, int m) {
    const struct roe_mor *M = e->mor;
    const int kd = kv->kv_dim;
    for (int i = 0; i < m; i++) {
        if (!M->own[i]) continue;
        const size_t at = (size_t)roe_kv_row(kv, M->pseq[i], layer, M->pos[i]) * (size_t)kd;
        for (int d = 0; d < kd; d++) { /* every KV element type, fp8 included */
            e->k[(size_t)i * kd + d] = roe_kv_elem_f32(kv->k, kv->dtype, at + d);
            e->v[(size_t)i * kd + d] = roe_kv_elem_f32(kv->v, kv->dtype, at + d);
        }
    }
}

/* Each row's block table as far as its history reaches (M->pseq, M->hend). */
static void plan_tables(roe_engine *e, const struct roe_kv_cache *kv, int m) {
    struct roe_mor *M = e->mor;
    const int bs = kv->block_size;
    int stride = 1;
    for (int i = 0; i < m; i++) stride = (M->hend[i] + bs - 1) / bs > stride ? (M->hend[i] + bs - 1) / bs : stride;
    M->stride = stride;
    for (int i = 0; i < m; i++)
        memcpy(M->btab + (size_t)i * stride, kv->table + (size_t)M->pseq[i] * kv->max_blocks,
               (size_t)stride * sizeof(int32_t));
}

/* h[m, H] <- a Llama decoder layer (pre-norm attention + SwiGLU MLP, residuals included) against
 * `layer` of pool kv: row i at absolute position pos[i] writes its K/V at (pseq[i], ppos[i]) when
 * store[i], and attends the pool sequence's positions [0, hend[i]) and then itself. */
static void layer_forward(roe_engine *e, const struct roe_layer_weights *L, float *h, int m,
                          const struct roe_kv_cache *kv, int layer) {
    const struct roe_model_config *c = &e->model->cfg;
    struct roe_mor *M = e->mor;
    roe_backend *be = e->be;
    const int H = c->hidden, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads, kd = nkv * hd;
    be->ops->rmsnorm(be, h, m, &L->attn_norm, c->rms_eps, e->x);
    be->ops->matmul(be, e->x, m, &L->wq, e->q);
    be->ops->matmul(be, e->x, m, &L->wk, e->k);
    be->ops->matmul(be, e->x, m, &L->wv, e->v);
    be->ops->rope(be, e->q, m, nh, hd, M->pos, &e->rope);
    be->ops->rope(be, e->k, m, nkv, hd, M->pos, &e->rope);
    int n_store = 0, n_own = 0;
    for (int i = 0; i < m; i++) {
        n_own += M->own[i];
        if (!M->store[i]) continue;
        M->kv_dst[n_store] = roe_kv_row(kv, M->pseq[i], layer, M->ppos[i]);
        M->kv_src[n_store++] = i;
    }
    if (n_store) {
        be->ops->kv_store(be, kv->k, kv->dtype, M->kv_dst, e->k, M->kv_src, n_store, kd);
        be->ops->kv_store(be, kv->v, kv->dtype, M->kv_dst, e->v, M->kv_src, n_store, kd);
    }
    if (n_own) load_own_kv(e, kv, layer, m);
    plan_tables(e, kv, m);
    struct roe_attn_args a = {
        .n_rows = m, .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd, .scale = 1.0f / sqrtf((float)hd),
        .q = e->q, .k_self = e->k, .v_self = e->v, .k_cache = roe_kv_layer_ptr(kv, kv->k, layer),
        .v_cache = roe_kv_layer_ptr(kv, kv->v, layer),
        .pages = {.dtype = kv->dtype, .table = M->btab, .stride = M->stride, .block_size = kv->block_size,
                  .block_elems = roe_kv_block_elems(kv)},
        .hist_begin = M->hbeg, .hist_end = M->hend, .out = e->att};
    be->ops->attention(be, &a);
    be->ops->matmul(be, e->att, m, &L->wo, e->tmp);
    be->ops->add(be, h, e->tmp, (size_t)m * H);
    be->ops->rmsnorm(be, h, m, &L->ffn_norm, c->rms_eps, e->x);
    roe__engine_ffn(e, &L->dense, e->x, m, e->tmp);
    be->ops->add(be, h, e->tmp, (size_t)m * H);
}

/* Layer 0 or the last layer (`which` 0 or 1 of the main pool) over tokens sel[0, m), whose
 * residuals are h[0, m): every token writes and attends its sequence's positions. */
static void edge_layer(roe_engine *e, int which, const int *sel, float *h, int m) {
    struct roe_mor *M = e->mor;
    const int unique = which == 0 ? 0 : 1 + e->model->cfg.mor.block;
    for (int i = 0; i < m; i++) {
        const struct roe_row *r = &M->tok[sel[i]].row;
        M->pseq[i] = r->seq;
        M->ppos[i] = M->pos[i] = M->hend[i] = r->pos;
        M->store[i] = 1;
        M->own[i] = 0;
    }
    layer_forward(e, &e->w->layers[unique], h, m, &e->kv, which);
}

/* ---- routing ---- */

static float dot(const float *a, const float *b, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return (float)s;
}

/* A token fresh out of layer 0 (residual fh[t]): its depth bound and its first gate. */
static void start_token(roe_engine *e, int t) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_mor_config *mc = &c->mor;
    struct roe_mor *M = e->mor;
    const int H = c->hidden, N = mc->n_recursion;
    struct mor_tok *k = &M->tok[t];
    const float *h = M->fh + (size_t)t * H;
    k->r = 1;
    k->done = 0;
    k->depth = N;
    if (mc->router == ROE_MOR_EXPERT_CHOICE) { /* recursion 1 always runs */
        k->g = mc->alpha * (1.0f / (1.0f + expf(-dot(M->router, h, H))));
        return;
    }
    /* token choice: p = alpha softmax(W H^1), the token runs recursions 1..argmax + 1, gate p[argmax] */
    float s[ROE_MOR_MAX_RECURSION] = {0}, mx = -INFINITY, z = 0.0f;
    for (int r = 0; r < N; r++) {
        s[r] = dot(M->router + (size_t)r * H, h, H);
        mx = s[r] > mx ? s[r] : mx;
    }
    for (int r = 0; r < N; r++) z += expf(s[r] - mx);
    int best = 0;
    for (int r = 1; r < N; r++) best = s[r] > s[best] ? r : best; /* the first of equals, as torch's argmax */
    k->depth = M->full_depth ? N : best + 1;
    k->g = mc->alpha * (expf(s[M->full_depth ? N - 1 : best] - mx) / z);
    memcpy(M->fh1 + (size_t)t * H, h, (size_t)H * sizeof(float));
}

/* Token t ran recursion r; its block output is w[i]: its residual updated, then whether it runs
 * recursion r + 1 (expert choice: sigmoid(router_{r+1} . h) >= threshold). */
static void advance(roe_engine *e, int t, const float *w) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_mor_config *mc = &c->mor;
    struct roe_mor *M = e->mor;
    const int H = c->hidden;
    struct mor_tok *k = &M->tok[t];
    float *h = M->fh + (size_t)t * H;
    if (mc->router == ROE_MOR_EXPERT_CHOICE)
        for (int i = 0; i < H; i++) h[i] = h[i] + k->g * w[i];
    else if (k->r < k->depth)
        memcpy(h, w, (size_t)H * sizeof(float)); /* middle recursions pass the raw block output */
    else {
        const float *h1 = M->fh1 + (size_t)t * H;
        for (int i = 0; i < H; i++) h[i] = h1[i] + k->g * w[i];
    }
    if (k->r >= k->depth) {
        k->done = 1;
        return;
    }
    if (mc->router == ROE_MOR_EXPERT_CHOICE) {
        const float p = 1.0f / (1.0f + expf(-dot(M->router + (size_t)k->r * H, h, H)));
        if (p < mc->threshold && !M->full_depth) {
            k->depth = k->r;
            k->done = 1;
            return;
        }
        k->g = mc->alpha * p;
    }
    k->r++;
}

/* ---- the shared block ---- */

static int pool_seq(const struct roe_mor *M, int seq, int r) { return seq * M->per_seq + (M->per_seq > 1 ? r - 1 : 0); }

/* The block pass of tokens sel[0, m), each at its own recursion tok.r: gathered into w, through
 * the B shared layers (row i's K/V at recursion r: recursion-wise, (seq, r) at its compacted index;
 * sharing, recursion 1's at its position), then each token advanced. Blocks were reserved. */
static void block_pass(roe_engine *e, const int *sel, int m) {
    const struct roe_model_config *c = &e->model->cfg;
    struct roe_mor *M = e->mor;
    roe_backend *be = e->be;
    const int H = c->hidden, rw = c->mor.kv == ROE_MOR_KV_RECURSION_WISE;
    for (int i = 0; i < m; i++) {
        const struct mor_tok *k = &M->tok[sel[i]];
        M->idx[i] = sel[i];
        M->pseq[i] = pool_seq(M, k->row.seq, k->r);
        M->pos[i] = k->row.pos;
        M->store[i] = rw || k->r == 1;
        M->own[i] = !rw && k->r > 1;
        int before = 0; /* earlier rows of this pass at the same pool sequence (a prefill) */
        for (int j = 0; rw && j < i; j++) before += M->pseq[j] == M->pseq[i];
        M->ppos[i] = rw ? M->block.len[M->pseq[i]] + before : k->row.pos;
        M->hend[i] = M->ppos[i];
    }
    be->ops->copy_rows(be, M->w, NULL, M->fh, M->idx, m, H);
    for (int j = 0; j < c->mor.block; j++) layer_forward(e, &e->w->layers[1 + j], M->w, m, &M->block, j);
    for (int i = 0; i < m; i++) /* what each pool sequence now holds */
        if (M->store[i] && M->ppos[i] + 1 > M->block.len[M->pseq[i]]) M->block.len[M->pseq[i]] = M->ppos[i] + 1;
    for (int i = 0; i < m; i++) advance(e, sel[i], M->w + (size_t)i * H);
    M->recursions += m;
}

/* Blocks for `extra` more positions at every pool sequence of seq (a step's rows, a tick's token). */
static roe_status reserve_block(roe_engine *e, int seq, int extra) {
    struct roe_mor *M = e->mor;
    for (int p = 0; p < M->per_seq; p++) {
        const int ps = seq * M->per_seq + p;
        const int n = M->block.len[ps] + extra;
        ROE_TRY(roe_kv_cache_reserve(&M->block, ps, n < M->block.max_ctx ? n : M->block.max_ctx));
    }
    return ROE_OK;
}

/* The blocks of seq's pool sequences past what they hold, back to the pool. */
static void trim_block(roe_engine *e, int seq) {
    struct roe_mor *M = e->mor;
    for (int p = 0; p < M->per_seq; p++) {
        const int ps = seq * M->per_seq + p;
        roe_kv_cache_trim(&M->block, ps, M->block.len[ps]);
    }
}

/* ---- finishing tokens ---- */

/* Tokens sel[0, m) have left the block (their rows, in that order: rows[0, m)): their residuals
 * through the last layer (in e->h), their positions recorded, then the final norm and LM head for
 * the rows that want logits. */
static roe_status finish(roe_engine *e, const int *sel, int m, const struct roe_row *rows, float *logits) {
    const struct roe_model_config *c = &e->model->cfg;
    struct roe_mor *M = e->mor;
    for (int i = 0; i < m; i++) M->idx[i] = sel[i];
    e->be->ops->copy_rows(e->be, e->h, NULL, M->fh, M->idx, m, c->hidden);
    edge_layer(e, 1, sel, e->h, m);
    for (int i = 0; i < m; i++) {
        M->depth[(size_t)rows[i].seq * e->opts.max_ctx + rows[i].pos] = (uint8_t)M->tok[sel[i]].depth;
        roe_kv_cache_note(&e->kv, rows[i].seq, rows[i].pos, rows[i].token);
        e->kv.len[rows[i].seq]++;
        e->slot_row[i] = e->row_slot[i] = i;
    }
    e->n_act = m;
    return roe__engine_lm_head(e, rows, m, logits);
}

/* Tokens [t0, t0 + m) of the in-flight arrays, their rows set: embedded, through layer 0, started. */
static void enter(roe_engine *e, int t0, int m) {
    struct roe_mor *M = e->mor;
    const int H = e->model->cfg.hidden;
    for (int i = 0; i < m; i++) {
        e->tokens[i] = M->tok[t0 + i].row.token;
        M->sel[i] = t0 + i;
    }
    e->be->ops->embed(e->be, &e->w->embed, e->tokens, m, M->fh + (size_t)t0 * H);
    edge_layer(e, 0, M->sel, M->fh + (size_t)t0 * H, m);
    for (int i = 0; i < m; i++) start_token(e, t0 + i);
}

/* ---- the plain step ---- */

/* Blocks of both pools for the step's rows (nothing runs when one is short). */
static roe_status reserve_step(roe_engine *e, const struct roe_row *rows, int n) {
    struct roe_mor *M = e->mor;
    for (int i = 0; i < n; i++) M->cnt[rows[i].seq] = 0;
    for (int i = 0; i < n; i++) M->cnt[rows[i].seq]++;
    for (int i = 0; i < n; i++) {
        ROE_TRY(roe_kv_cache_reserve(&e->kv, rows[i].seq, e->seq_next[rows[i].seq]));
        if (M->cnt[rows[i].seq] > 0) ROE_TRY(reserve_block(e, rows[i].seq, M->cnt[rows[i].seq]));
        M->cnt[rows[i].seq] = -M->cnt[rows[i].seq]; /* once per sequence */
    }
    return ROE_OK;
}

roe_status roe__mor_step(roe_engine *e, const struct roe_row *rows, int n, float *logits) {
    struct roe_mor *M = e->mor;
    e->stats = (struct roe_step_stats){.rows = n};
    for (int i = 0; i < n; i++)
        if (rows[i].sample > 0)
            return roe_fail(ROE_ERR_UNSUPPORTED, "row %d: a RoE sample row, but %s has no MoE router to route it", i,
                            e->model->cfg.model_type);
    for (int i = 0; i < n; i++) /* a step may run beside the ticks, on other sequences */
        if (M->busy[rows[i].seq])
            return roe_fail(ROE_ERR_INVALID_ARG, "row %d: sequence %d has a token queued or in flight (depth-wise "
                            "batching)", i, rows[i].seq);
    if (n == 0) return ROE_OK;
    roe_status st = reserve_step(e, rows, n);
    if (st != ROE_OK) {
        for (int i = 0; i < n; i++) trim_block(e, rows[i].seq);
        return st;
    }
    const long before = M->recursions;
    const int t0 = M->n_flight; /* the step's tokens follow those in flight, and leave with the step */
    for (int i = 0; i < n; i++) M->tok[t0 + i].row = rows[i];
    enter(e, t0, n);
    for (int r = 1; r <= e->model->cfg.mor.n_recursion; r++) {
        int m = 0;
        for (int t = t0; t < t0 + n; t++)
            if (!M->tok[t].done) M->sel[m++] = t;
        if (m == 0) break;
        block_pass(e, M->sel, m);
    }
    for (int t = 0; t < n; t++) M->sel[t] = t0 + t;
    st = finish(e, M->sel, n, rows, logits);
    for (int i = 0; i < n; i++) trim_block(e, rows[i].seq);
    e->stats.rows_computed = M->recursions - before;
    return st;
}

/* ---- continuous depth-wise batching ---- */

roe_status roe_engine_mor_submit(roe_engine *e, const struct roe_row *row) {
    struct roe_mor *M = e->mor;
    if (!M) return roe_fail(ROE_ERR_UNSUPPORTED, "engine: depth-wise batching needs a MoR model");
    const struct roe_engine_opts *o = &e->opts;
    if (row->seq < 0 || row->seq >= o->max_seqs || row->token < 0 || row->token >= e->model->cfg.vocab_size ||
        row->sample != 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "mor submit: row of sequence %d, token %d, sample %d is invalid",
                        row->seq, row->token, row->sample);
    if (M->busy[row->seq])
        return roe_fail(ROE_ERR_INVALID_ARG, "mor submit: sequence %d already has a token queued or in flight", row->seq);
    if (row->pos != e->kv.len[row->seq] || row->pos >= o->max_ctx)
        return roe_fail(ROE_ERR_INVALID_ARG, "mor submit: sequence %d at position %d, but it holds %d (context %d)",
                        row->seq, row->pos, e->kv.len[row->seq], o->max_ctx);
    M->queue[(M->q_head + M->q_n++) % o->max_seqs] = *row;
    M->busy[row->seq] = 1;
    return ROE_OK;
}

int roe_engine_mor_pending(const roe_engine *e) { return e->mor ? e->mor->n_flight + e->mor->q_n : 0; }

/* Blocks for a tick: each admitted row's position (main pool) and every token's next recursion. */
static roe_status reserve_tick(roe_engine *e, int admit) {
    struct roe_mor *M = e->mor;
    for (int i = 0; i < admit; i++) {
        const struct roe_row *r = &M->queue[(M->q_head + i) % e->opts.max_seqs];
        ROE_TRY(roe_kv_cache_reserve(&e->kv, r->seq, r->pos + 1));
        ROE_TRY(reserve_block(e, r->seq, 1));
    }
    for (int t = 0; t < M->n_flight; t++) ROE_TRY(reserve_block(e, M->tok[t].row.seq, 1));
    return ROE_OK;
}

roe_status roe_engine_mor_tick(roe_engine *e, int width, struct roe_row *done, int *depth, int *n_done,
                               float *logits) {
    struct roe_mor *M = e->mor;
    *n_done = 0;
    if (!M) return roe_fail(ROE_ERR_UNSUPPORTED, "engine: depth-wise batching needs a MoR model");
    if (width < 1 || width > e->opts.max_rows)
        return roe_fail(ROE_ERR_INVALID_ARG, "mor tick: width %d is outside [1, %d] (max_rows)", width, e->opts.max_rows);
    int admit = width - M->n_flight < M->q_n ? width - M->n_flight : M->q_n;
    admit = admit > 0 ? admit : 0;
    roe_status st = reserve_tick(e, admit);
    if (st != ROE_OK) return st;
    const int t0 = M->n_flight; /* admit: FIFO into the free slots */
    for (int i = 0; i < admit; i++) M->tok[t0 + i].row = M->queue[(M->q_head + i) % e->opts.max_seqs];
    M->q_head = (M->q_head + admit) % e->opts.max_seqs;
    M->q_n -= admit;
    M->n_flight += admit;
    if (admit) enter(e, t0, admit);
    const long before = M->recursions;
    if (M->n_flight) { /* one pass of the shared block over every token in flight, each at its depth */
        for (int t = 0; t < M->n_flight; t++) M->sel[t] = t;
        block_pass(e, M->sel, M->n_flight);
    }
    int m = 0;
    for (int t = 0; t < M->n_flight; t++)
        if (M->tok[t].done) {
            M->sel[m] = t;
            done[m] = M->tok[t].row;
            done[m].want_logits = 1;
            if (depth) depth[m] = M->tok[t].depth;
            m++;
        }
    if (m) st = finish(e, M->sel, m, done, logits);
    for (int i = 0; i < m; i++) {
        M->busy[done[i].seq] = 0;
        trim_block(e, done[i].seq);
    }
    int k = 0; /* the tokens still in flight, compacted in order */
    const size_t H = (size_t)e->model->cfg.hidden;
    for (int t = 0; t < M->n_flight; t++) {
        if (M->tok[t].done) continue;
        if (k != t) {
            M->tok[k] = M->tok[t];
            memcpy(M->fh + k * H, M->fh + t * H, H * sizeof(float));
            memcpy(M->fh1 + k * H, M->fh1 + t * H, H * sizeof(float));
        }
        k++;
    }
    M->n_flight = k;
    e->stats = (struct roe_step_stats){.rows = m, .rows_computed = M->recursions - before};
    *n_done = m;
    return st;
}

/* ---- sequences, statistics ---- */

void roe__mor_reset_seq(roe_engine *e, int seq) {
    struct roe_mor *M = e->mor;
    for (int p = 0; p < M->per_seq; p++) roe_kv_cache_reset(&M->block, seq * M->per_seq + p);
    memset(M->depth + (size_t)seq * e->opts.max_ctx, 0, (size_t)e->opts.max_ctx);
}

roe_status roe__mor_copy_seq(roe_engine *e, int dst, int src, int len) {
    struct roe_mor *M = e->mor;
    const uint8_t *d = M->depth + (size_t)src * e->opts.max_ctx;
    ROE_TRY(roe_kv_cache_copy(&e->kv, dst, src, len));
    for (int p = 0; p < M->per_seq; p++) {
        int n = 0; /* the compacted entries of src's first len positions at recursion p + 1 */
        for (int i = 0; i < len; i++) n += M->per_seq == 1 || d[i] > p;
        roe_status st = roe_kv_cache_copy(&M->block, dst * M->per_seq + p, src * M->per_seq + p, n);
        if (st != ROE_OK) {
            roe_engine_reset_seq(e, dst);
            return st;
        }
    }
    memcpy(M->depth + (size_t)dst * e->opts.max_ctx, d, (size_t)len);
    return ROE_OK;
}

int roe_engine_is_mor(const roe_engine *e) { return e->mor != NULL; }

int roe_engine_mor_depth(const roe_engine *e, int seq, int pos) {
    if (!e->mor || seq < 0 || seq >= e->opts.max_seqs || pos < 0 || pos >= e->opts.max_ctx) return 0;
    return e->mor->depth[(size_t)seq * e->opts.max_ctx + pos];
}

long roe_engine_mor_recursions(const roe_engine *e) { return e->mor ? e->mor->recursions : 0; }

struct roe_mor_kv_stats roe_engine_mor_kv_stats(const roe_engine *e) {
    struct roe_mor_kv_stats s = {0};
    const struct roe_mor *M = e->mor;
    if (!M) return s;
    const struct roe_kv_cache *a = &e->kv, *b = &M->block;
    s.main_bytes = (double)(a->n_blocks - a->n_free) * (double)roe_kv_block_bytes(2, a->block_size, a->kv_dim, 2, a->elem);
    s.block_bytes = (double)(b->n_blocks - b->n_free) *
                    (double)roe_kv_block_bytes(b->n_layers, b->block_size, b->kv_dim, 2, b->elem);
    s.entry_bytes = 2.0 * (double)a->kv_dim * (double)a->elem;
    for (int i = 0; i < a->max_seqs; i++) s.tokens += a->len[i];
    for (int i = 0; i < b->max_seqs; i++) s.block_entries += b->len[i];
    return s;
}
