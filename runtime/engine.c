/*
 * engine.c — the forward pass of one step over a batch of rows (see engine.h).
 *
 * Per layer (MODELS.md, "Common structure"):
 *   x = RMSNorm_in(h); q,k,v = x Wq, x Wk, x Wv; q/k norm (family); clip (OLMoE);
 *   RoPE; clean rows append k,v; attention; h += o Wo
 *   x = RMSNorm_post(h); h += MoE(x) or MLP(x)
 * then the final norm and the LM head for the rows that want logits.
 *
 * MoE: router logits -> the family's gate -> (row, slot) pairs handed to the expert
 * exchange (comm/dispatch.h), which groups them by expert on the experts' owners (this
 * rank alone in a world of one); each expert runs its SwiGLU FFN on the gathered rows; the
 * outputs land in a per-(row, slot) buffer and are summed per row in slot order, so a
 * row's result never depends on which other rows were in the batch, or on which rank
 * computed them.
 *
 * Where the data lives (kernels/backend.h "Buffers"): activations, the KV cache and the
 * weights are backend memory. With the CPU backend that is host memory and nothing is
 * copied (be->host_memory). With a device backend (CUDA) the host plans and the device
 * computes: per MoE layer the host downloads the router logits ([rows, n_experts] fp32)
 * and routes them with runtime/router.c — the very code the CPU path runs, so the expert
 * choices (clean and Gumbel) are a function of the logits alone, identical on both
 * backends for identical logits — and RoE dedup/forks stay host logic; it uploads only
 * index lists (tokens, positions, pair rows, gate weights). In a world of one the experts
 * run on the device without leaving it (gather by pair, one FFN per expert over its
 * contiguous rows, weighted sum); with several ranks the rows go through the host and the
 * exchange of comm/dispatch.h (MPI), a correct but slow path (no NCCL in the engine yet:
 * docs/GPU.md). The last step's logits come back to the host.
 */
#include "engine.h"

#include <math.h>
#include <string.h>

#include <stdio.h>

#include "base/alloc.h"
#include "router.h"
#include "weights.h"

struct roe_engine {
    const struct roe_model *model;
    const struct roe_model *w;        /* the weights the kernels read: model, or owned_w */
    struct roe_model *owned_w;        /* device-resident weights (runtime/weights.h) */
    struct roe_engine_opts opts;
    roe_backend *be;
    int host_mem;                     /* be->host_memory: no staging copies */
    struct roe_kv_cache kv;
    struct roe_step_stats stats;
    roe_comm *comm;                   /* borrowed, or owned_comm */
    roe_comm *owned_comm;             /* a self communicator when none was given */
    const struct roe_placement *pl;   /* borrowed, or owned_pl */
    struct roe_placement *owned_pl;   /* every expert on rank 0 when none was given */
    roe_ep *ep;                       /* the expert exchange */
    uint8_t *active;                  /* [max_rows * top_k] pairs computed here (not reused) */
    int driven;                       /* inside a step the cluster drives (cluster.h) */
    /* activations, backend memory, allocated once for max_rows rows */
    float *h;        /* [max_rows, hidden] residual stream */
    float *x;        /* [max_rows, hidden] normed input of a sublayer */
    float *q;        /* [max_rows, n_heads*head_dim] */
    float *k;        /* [max_rows, n_kv_heads*head_dim] */
    float *v;        /* [max_rows, n_kv_heads*head_dim] */
    float *att;      /* [max_rows, n_heads*head_dim] attention output */
    float *tmp;      /* [max_rows, hidden] a sublayer's output */
    float *rlogits;  /* [max_rows, n_experts] router logits */
    float *ein;      /* [max_rows, hidden] rows gathered for one expert (device, one rank:
                        [max_rows * top_k, hidden], every pair's row grouped by expert) */
    float *egate;    /* [max_rows, max_inter] */
    float *eup;      /* [max_rows, max_inter] */
    float *eout;     /* [max_rows * top_k, hidden] expert output per (row, slot) (device, one
                        rank: per gathered pair) */
    float *lrows;    /* [max_rows, hidden] normed rows that want logits */
    float *dlogits;  /* [max_rows, vocab] logits of the distinct slots, before spreading to rows */
    /* host memory */
    float *rlog;     /* [max_rows, n_experts] router logits the host routes (= rlogits on the CPU) */
    float *probs;    /* [n_experts] */
    int32_t *sel;    /* [max_rows, top_k] chosen experts */
    float *gw;       /* [max_rows, top_k] gate weights */
    int *e_count;    /* [n_experts + 1] rows per expert, then offsets */
    int *e_cur;      /* [n_experts] fill cursor per expert */
    int *pairs;      /* [max_rows * top_k] (row * top_k + slot), grouped by expert */
    int64_t *g_src;  /* [max_rows * top_k] slot of each gathered pair row (device, one rank) */
    int *p_row;      /* [max_rows * top_k] gathered row of each active pair */
    int *y_row;      /* [max_rows * top_k] the output row each pair sums */
    int64_t *kv_dst; /* [max_rows] cache rows the clean rows append to */
    int64_t *kv_src; /* [max_rows] their slots */
    int64_t *l_src;  /* [max_rows] slot of each row of lrows */
    float *st_x;     /* device, several ranks: [max_rows, hidden] x on the host */
    float *st_in;    /* [max_rows, hidden] one task's input rows on the host */
    float *st_out;   /* [max_rows * top_k, hidden] pair outputs on the host */
    float *st_y;     /* [max_rows * top_k, hidden] pair outputs in pair order */
    float *hlogits;  /* device: [max_rows, vocab] logits downloaded */
    int *pos;        /* [max_rows] */
    int *hbegin;     /* [max_rows] */
    int *hend;       /* [max_rows] */
    int32_t *tokens; /* [max_rows] */
    const float **khist; /* [max_rows] (pointers into backend memory) */
    const float **vhist; /* [max_rows] */
    /* active slots: the rows actually computed (RoE samples alias their clean row until
     * they fork); every per-row buffer above is indexed by slot */
    int n_act;
    int *slot_row;       /* [max_rows] the row a slot computes */
    int *row_slot;       /* [max_rows] the slot whose state a row currently shares */
    int *fork_parent;    /* [max_rows] slot a slot forked from in this layer, or -1 */
    int *src_pair;       /* [max_rows * top_k] pair whose expert output this pair reuses */
    int *slot_lrow;      /* [max_rows] index of a slot's row in lrows, or -1 */
    int32_t *fsel;       /* [top_k] a candidate fork's routing */
    float *fgw;          /* [top_k] */
    float *rscratch;     /* [2 * n_experts] noisy routing scratch */
};

struct roe_engine_opts roe_engine_opts_default(void) {
    struct roe_engine_opts o = {.max_seqs = 1, .max_ctx = 2048, .max_rows = 64, .n_threads = 0,
                                .isa = ROE_CPU_ISA_AUTO, .ep_early_us = roe_ep_opts_default().early_us,
                                .backend = ROE_BACKEND_CPU, .device = 0};
    return o;
}

static int imax(int a, int b) { return a > b ? a : b; }

void roe_engine_free(roe_engine *e) {
    if (!e) return;
    roe_backend *be = e->be;
    roe_kv_cache_free(&e->kv);
    if (be) {
        float *dev[] = {e->h, e->x, e->q, e->k, e->v, e->att, e->tmp, e->rlogits, e->ein,
                        e->egate, e->eup, e->eout, e->lrows, e->dlogits};
        for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
            if (dev[i]) be->ops->free(be, dev[i]);
        roe_weights_free(be, e->owned_w);
    }
    roe_backend_free(be);
    roe_ep_free(e->ep);
    roe_placement_free(e->owned_pl);
    roe_comm_free(e->owned_comm);
    roe_free(e->active);
    if (!e->host_mem) roe_free_aligned(e->rlog);
    void *bufs[] = {e->probs, e->gw, e->fgw, e->rscratch, e->st_x, e->st_in, e->st_out, e->st_y,
                    e->hlogits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) roe_free_aligned(bufs[i]);
    void *hb[] = {e->sel, e->e_count, e->e_cur, e->pairs, e->g_src, e->p_row, e->y_row,
                  e->kv_dst, e->kv_src, e->l_src, e->pos, e->hbegin, e->hend, e->tokens,
                  (void *)e->khist, (void *)e->vhist, e->slot_row, e->row_slot, e->fork_parent,
                  e->src_pair, e->slot_lrow, e->fsel};
    for (size_t i = 0; i < sizeof hb / sizeof hb[0]; i++) roe_free(hb[i]);
    roe_free(e);
}

static float *falloc(size_t n, int *ok) {
    float *p = roe_malloc_aligned((n ? n : 1) * sizeof(float));
    if (!p) *ok = 0;
    return p;
}

/* Backend memory for n floats. */
static float *balloc(roe_backend *be, size_t n, int *ok) {
    float *p = be->ops->alloc(be, (n ? n : 1) * sizeof(float));
    if (!p) *ok = 0;
    return p;
}

roe_status roe_engine_create(const struct roe_model *model, const struct roe_engine_opts *opts,
                             roe_engine **out) {
    *out = NULL;
    const struct roe_model_config *c = &model->cfg;
    if (opts->max_seqs <= 0 || opts->max_rows <= 0 || opts->max_ctx <= 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "engine: max_seqs %d, max_rows %d, max_ctx %d must be > 0",
                        opts->max_seqs, opts->max_rows, opts->max_ctx);
    if (opts->max_ctx > c->max_position)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "engine: context of %d positions exceeds the model's max_position_embeddings %d",
                        opts->max_ctx, c->max_position);
    roe_engine *e = roe_calloc(1, sizeof *e);
    if (!e) return roe_fail(ROE_ERR_NOMEM, "engine: out of memory");
    e->model = model;
    e->w = model;
    e->opts = *opts;
    roe_status st;
    const size_t R = (size_t)opts->max_rows, H = (size_t)c->hidden;
    const size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    const size_t E = (size_t)(c->n_experts > 0 ? c->n_experts : 1), K = (size_t)(c->top_k > 0 ? c->top_k : 1);
    const size_t inter = (size_t)imax(c->moe_intermediate, c->dense_intermediate);
    struct roe_backend_opts bo = {
        .n_threads = opts->n_threads,
        .max_cols = imax(imax(c->hidden, (int)qd), (int)inter),
        .max_ctx = opts->max_ctx,
        .isa = opts->isa,
        .device = opts->device,
        .max_rows = (int)(R * K),
    };
    ROE_CHECK(roe_backend_create(opts->backend, &bo, &e->be));
    roe_backend *be = e->be;
    e->host_mem = be->host_memory;
    if (model->shapes_only && e->host_mem) {
        st = roe_fail(ROE_ERR_UNSUPPORTED, "engine: a model without weights (random weights) runs on "
                      "a device backend only (--backend cuda)");
        goto fail;
    }
    e->comm = opts->comm;
    if (!e->comm) {
        ROE_CHECK(roe_comm_self_create(NULL, &e->owned_comm));
        e->comm = e->owned_comm;
    }
    e->pl = opts->placement;
    if (c->n_experts > 0 && !e->pl) {
        if (roe_comm_size(e->comm) != 1) {
            st = roe_fail(ROE_ERR_INVALID_ARG, "engine: %d ranks but no expert placement",
                          roe_comm_size(e->comm));
            goto fail;
        }
        ROE_CHECK(roe_placement_contiguous(c, 1, &e->owned_pl));
        e->pl = e->owned_pl;
    }
    if (e->pl && (e->pl->n_ranks != roe_comm_size(e->comm) || e->pl->n_layers != c->n_layers ||
                  e->pl->n_experts != c->n_experts)) {
        st = roe_fail(ROE_ERR_INVALID_ARG,
                      "engine: placement for %d ranks, %d layers, %d experts; the job has %d ranks and "
                      "the model %d layers, %d experts",
                      e->pl->n_ranks, e->pl->n_layers, e->pl->n_experts, roe_comm_size(e->comm),
                      c->n_layers, c->n_experts);
        goto fail;
    }
    if (e->pl && !model->shapes_only) /* every expert this rank owns must be in the model */
        for (int l = 0; l < c->n_layers; l++)
            for (int x = 0; c->layer_is_moe[l] && x < c->n_experts; x++)
                if (roe_placement_owner(e->pl, l, x) == roe_comm_rank(e->comm) &&
                    !model->layers[l].experts[x].gate.data) {
                    st = roe_fail(ROE_ERR_INVALID_ARG,
                                  "engine: rank %d owns expert %d of layer %d, but the model does not hold it",
                                  roe_comm_rank(e->comm), x, l);
                    goto fail;
                }
    if (!e->host_mem) { /* the weights, resident on the device */
        ROE_CHECK(roe_weights_create(be, model, e->pl, roe_comm_rank(e->comm), opts->random_seed,
                                     &e->owned_w));
        e->w = e->owned_w;
    }
    if (c->n_experts > 0) {
        struct roe_ep_opts eo = roe_ep_opts_default();
        eo.hidden = c->hidden;
        eo.top_k = c->top_k;
        eo.n_experts = c->n_experts;
        eo.max_slots = opts->max_rows;
        eo.max_recv_rows = opts->max_rows;
        eo.max_recv_pairs = opts->max_rows * c->top_k;
        eo.wire = opts->wire;
        eo.overlap = !opts->no_overlap;
        eo.early_us = opts->ep_early_us;
        ROE_CHECK(roe_ep_create(e->comm, &eo, &e->ep));
    }
    ROE_CHECK(roe_kv_cache_init(&e->kv, be, opts->max_seqs, c->n_layers, opts->max_ctx, (int)kd));
    int ok = 1;
    e->h = balloc(be, R * H, &ok);
    e->x = balloc(be, R * H, &ok);
    e->q = balloc(be, R * qd, &ok);
    e->k = balloc(be, R * kd, &ok);
    e->v = balloc(be, R * kd, &ok);
    e->att = balloc(be, R * qd, &ok);
    e->tmp = balloc(be, R * H, &ok);
    e->rlogits = balloc(be, R * E, &ok);
    e->ein = balloc(be, (e->host_mem ? R : R * K) * H, &ok);
    e->egate = balloc(be, R * inter, &ok);
    e->eup = balloc(be, R * inter, &ok);
    e->eout = balloc(be, R * K * H, &ok);
    e->lrows = balloc(be, R * H, &ok);
    e->dlogits = balloc(be, R * (size_t)c->vocab_size, &ok);
    if (!ok) {
        st = roe_fail(ROE_ERR_NOMEM, "engine: out of %s memory for %d-row buffers", be->name,
                      opts->max_rows);
        goto fail;
    }
    e->rlog = e->host_mem ? e->rlogits : falloc(R * E, &ok);
    if (!e->host_mem) {
        e->st_x = falloc(R * H, &ok);
        e->st_in = falloc(R * H, &ok);
        e->st_out = falloc(R * K * H, &ok);
        e->st_y = falloc(R * K * H, &ok);
        e->hlogits = falloc(R * (size_t)c->vocab_size, &ok);
    }
    e->probs = falloc(E, &ok);
    e->gw = falloc(R * K, &ok);
    e->sel = roe_calloc(R * K, sizeof *e->sel);
    e->e_count = roe_calloc(E + 1, sizeof *e->e_count);
    e->e_cur = roe_calloc(E, sizeof *e->e_cur);
    e->pairs = roe_calloc(R * K, sizeof *e->pairs);
    e->g_src = roe_calloc(R * K, sizeof *e->g_src);
    e->p_row = roe_calloc(R * K, sizeof *e->p_row);
    e->y_row = roe_calloc(R * K, sizeof *e->y_row);
    e->kv_dst = roe_calloc(R, sizeof *e->kv_dst);
    e->kv_src = roe_calloc(R, sizeof *e->kv_src);
    e->l_src = roe_calloc(R, sizeof *e->l_src);
    e->pos = roe_calloc(R, sizeof *e->pos);
    e->hbegin = roe_calloc(R, sizeof *e->hbegin);
    e->hend = roe_calloc(R, sizeof *e->hend);
    e->tokens = roe_calloc(R, sizeof *e->tokens);
    e->khist = roe_calloc(R, sizeof *e->khist);
    e->vhist = roe_calloc(R, sizeof *e->vhist);
    e->slot_row = roe_calloc(R, sizeof *e->slot_row);
    e->row_slot = roe_calloc(R, sizeof *e->row_slot);
    e->fork_parent = roe_calloc(R, sizeof *e->fork_parent);
    e->src_pair = roe_calloc(R * K, sizeof *e->src_pair);
    e->slot_lrow = roe_calloc(R, sizeof *e->slot_lrow);
    e->active = roe_calloc(R * K, 1);
    e->fsel = roe_calloc(K, sizeof *e->fsel);
    e->fgw = falloc(K, &ok);
    e->rscratch = falloc(2 * E, &ok);
    if (!ok || !e->sel || !e->e_count || !e->e_cur || !e->pairs || !e->g_src || !e->p_row ||
        !e->y_row || !e->kv_dst || !e->kv_src || !e->l_src || !e->pos || !e->hbegin || !e->hend ||
        !e->tokens || !e->khist || !e->vhist || !e->slot_row || !e->row_slot || !e->fork_parent ||
        !e->src_pair || !e->slot_lrow || !e->fsel || !e->active) {
        st = roe_fail(ROE_ERR_NOMEM, "engine: out of memory for %d-row buffers", opts->max_rows);
        goto fail;
    }
    *out = e;
    return ROE_OK;
fail:
    roe_engine_free(e);
    return st;
}

void roe_engine_reset_seq(roe_engine *e, int seq) {
    if (seq >= 0 && seq < e->opts.max_seqs) e->kv.len[seq] = 0;
}
int roe_engine_seq_len(const roe_engine *e, int seq) { return e->kv.len[seq]; }
const struct roe_model *roe_engine_model(const roe_engine *e) { return e->model; }
const struct roe_engine_opts *roe_engine_get_opts(const roe_engine *e) { return &e->opts; }
const char *roe_engine_backend_name(const roe_engine *e) { return e->be->name; }
size_t roe_engine_kv_bytes(const roe_engine *e) { return roe_kv_cache_bytes(&e->kv); }
struct roe_step_stats roe_engine_last_stats(const roe_engine *e) { return e->stats; }
roe_comm *roe_engine_comm(const roe_engine *e) { return e->comm; }
roe_backend *roe_engine_backend(const roe_engine *e) { return e->be; }
void roe__engine_set_driven(roe_engine *e, int on) { e->driven = on; }

/* Checks the rows against the cache contract of engine.h before anything is written. */
static roe_status validate_rows(roe_engine *e, const struct roe_row *rows, int n) {
    const struct roe_model_config *c = &e->model->cfg;
    if (n < 0 || n > e->opts.max_rows)
        return roe_fail(ROE_ERR_INVALID_ARG, "step of %d rows: the engine holds at most %d", n,
                        e->opts.max_rows);
    /* next clean position per sequence as this step extends it: reuse hend as scratch */
    for (int i = 0; i < n; i++) {
        const struct roe_row *r = &rows[i];
        if (r->seq < 0 || r->seq >= e->opts.max_seqs)
            return roe_fail(ROE_ERR_INVALID_ARG, "row %d: sequence slot %d is outside [0, %d)", i,
                            r->seq, e->opts.max_seqs);
        if (r->token < 0 || r->token >= c->vocab_size)
            return roe_fail(ROE_ERR_INVALID_ARG, "row %d: token id %d is outside the vocabulary [0, %d)",
                            i, r->token, c->vocab_size);
        if (r->pos < 0 || r->pos >= e->opts.max_ctx)
            return roe_fail(ROE_ERR_INVALID_ARG,
                            "row %d: position %d is outside the context of %d positions", i, r->pos,
                            e->opts.max_ctx);
        if (r->sample < 0)
            return roe_fail(ROE_ERR_INVALID_ARG, "row %d: negative sample index %d", i, r->sample);
    }
    for (int i = 0; i < n; i++) {
        int len = e->kv.len[rows[i].seq];
        for (int j = 0; j < i; j++) /* clean rows of the same sequence earlier in this step */
            if (rows[j].seq == rows[i].seq && rows[j].sample == 0) len++;
        if (rows[i].sample == 0 && rows[i].pos != len)
            return roe_fail(ROE_ERR_INVALID_ARG,
                            "row %d: clean row of sequence %d at position %d, but its cache holds %d",
                            i, rows[i].seq, rows[i].pos, len);
        if (rows[i].sample > 0 && rows[i].pos > len)
            return roe_fail(ROE_ERR_INVALID_ARG,
                            "row %d: sample row of sequence %d at position %d needs a history of %d",
                            i, rows[i].seq, rows[i].pos, rows[i].pos);
    }
    return ROE_OK;
}

/* Attention sublayer over the active slots. */
static void attention_layer(roe_engine *e, int layer, const struct roe_row *rows) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_layer_weights *L = &e->w->layers[layer];
    roe_backend *be = e->be;
    const int n = e->n_act;
    const int H = c->hidden, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads;
    const int qd = nh * hd, kd = nkv * hd;

    be->ops->rmsnorm(be, e->h, n, &L->attn_norm, c->rms_eps, e->x);
    be->ops->matmul(be, e->x, n, &L->wq, e->q);
    be->ops->matmul(be, e->x, n, &L->wk, e->k);
    be->ops->matmul(be, e->x, n, &L->wv, e->v);
    if (c->qk_norm == ROE_QK_NORM_FULL) {
        be->ops->rmsnorm(be, e->q, n, &L->q_norm, c->rms_eps, e->q);
        be->ops->rmsnorm(be, e->k, n, &L->k_norm, c->rms_eps, e->k);
    } else if (c->qk_norm == ROE_QK_NORM_PER_HEAD) {
        be->ops->rmsnorm(be, e->q, n * nh, &L->q_norm, c->rms_eps, e->q);
        be->ops->rmsnorm(be, e->k, n * nkv, &L->k_norm, c->rms_eps, e->k);
    }
    if (c->clip_qkv > 0.0f) { /* OLMoE clamps after the q/k norm */
        be->ops->clamp(be, e->q, (size_t)n * qd, c->clip_qkv);
        be->ops->clamp(be, e->k, (size_t)n * kd, c->clip_qkv);
        be->ops->clamp(be, e->v, (size_t)n * kd, c->clip_qkv);
    }
    be->ops->rope(be, e->q, n, nh, hd, e->pos, c->rope_theta);
    be->ops->rope(be, e->k, n, nkv, hd, e->pos, c->rope_theta);

    int n_clean = 0;
    for (int j = 0; j < n; j++) {
        const struct roe_row *r = &rows[e->slot_row[j]];
        if (r->sample == 0) { /* the clean cache: only sample 0 appends */
            e->kv_dst[n_clean] = roe_kv_row(&e->kv, r->seq, layer, r->pos);
            e->kv_src[n_clean++] = j;
        }
        e->khist[j] = roe_kv_k(&e->kv, r->seq, layer);
        e->vhist[j] = roe_kv_v(&e->kv, r->seq, layer);
        e->hend[j] = r->pos;
        e->hbegin[j] = c->sliding_window > 0 && r->pos - c->sliding_window + 1 > 0
                           ? r->pos - c->sliding_window + 1 : 0;
    }
    if (n_clean) {
        be->ops->copy_rows(be, e->kv.k, e->kv_dst, e->k, e->kv_src, n_clean, kd);
        be->ops->copy_rows(be, e->kv.v, e->kv_dst, e->v, e->kv_src, n_clean, kd);
    }
    struct roe_attn_args a = {
        .n_rows = n, .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd,
        .scale = 1.0f / sqrtf((float)hd),
        .q = e->q, .k_self = e->k, .v_self = e->v, .k_hist = e->khist, .v_hist = e->vhist,
        .hist_begin = e->hbegin, .hist_end = e->hend, .out = e->att,
    };
    be->ops->attention(be, &a);
    be->ops->matmul(be, e->att, n, &L->wo, e->tmp);
    be->ops->add(be, e->h, e->tmp, (size_t)n * H);
}

/* SwiGLU FFN of m gathered rows: out[m, hidden] = down(silu(gate x) * up x). */
static void ffn(roe_engine *e, const struct roe_expert_weights *w, const float *in, int m, float *out) {
    roe_backend *be = e->be;
    const int I = w->gate.rows;
    be->ops->matmul(be, in, m, &w->gate, e->egate);
    be->ops->matmul(be, in, m, &w->up, e->eup);
    be->ops->swiglu(be, e->egate, e->eup, (size_t)m * I, e->egate);
    be->ops->matmul(be, e->egate, m, &w->down, out);
}

/* The routing of a row at a layer: the clean gate, or Gumbel-Top-K for a noisy sample. */
static void route(roe_engine *e, int layer, const struct roe_row *r, const float *logits,
                  int32_t *idx, float *w) {
    const struct roe_model_config *c = &e->model->cfg;
    const float tau = r->roster && r->sample > 0 ? r->roster->tau[layer] : 0.0f;
    if (tau > 0.0f) {
        struct roe_noise_key key = {.seed = r->seed, .pos = r->pos, .sample = r->sample, .layer = layer};
        roe_route_row_noisy(c, logits, tau, r->roster->gate, key, e->rscratch, idx, w);
    } else
        roe_route_row(c, logits, e->probs, idx, w);
}

/* Makes slot j' for row i, a copy of slot `parent` (its residual, normed input and router
 * logits), with its own routing. */
static void fork_slot(roe_engine *e, int i, int parent, const struct roe_row *r, const int32_t *sel,
                      const float *gw) {
    const struct roe_model_config *c = &e->model->cfg;
    roe_backend *be = e->be;
    const int H = c->hidden, E = c->n_experts, K = c->top_k, j = e->n_act++;
    be->ops->copy(be, e->h + (size_t)j * H, e->h + (size_t)parent * H, (size_t)H * sizeof(float));
    be->ops->copy(be, e->x + (size_t)j * H, e->x + (size_t)parent * H, (size_t)H * sizeof(float));
    memcpy(e->rlog + (size_t)j * E, e->rlog + (size_t)parent * E, (size_t)E * sizeof(float));
    memcpy(e->sel + (size_t)j * K, sel, (size_t)K * sizeof *sel);
    memcpy(e->gw + (size_t)j * K, gw, (size_t)K * sizeof *gw);
    e->slot_row[j] = i;
    e->row_slot[i] = j;
    e->fork_parent[j] = parent;
    e->pos[j] = r->pos;
}

/* Runs one expert task of the exchange: gathers its input rows, the SwiGLU FFN, scatters
 * the outputs. The rows are host memory (the exchange's buffers); on a device backend they
 * go up and come back (the several-ranks device path: slow, correct). */
static roe_status run_task(roe_engine *e, const struct roe_layer_weights *L, const struct roe_ep_task *t) {
    const int H = e->model->cfg.hidden, m = t->n;
    const float *const *in = roe_ep_in(e->ep);
    float *const *out = roe_ep_out(e->ep);
    roe_backend *be = e->be;
    float *hin = e->host_mem ? e->ein : e->st_in, *hout = e->host_mem ? e->tmp : e->st_in;
    for (int j = 0; j < m; j++)
        memcpy(hin + (size_t)j * H, in[t->first + j], (size_t)H * sizeof(float));
    if (!e->host_mem) be->ops->upload(be, e->ein, hin, (size_t)m * H * sizeof(float));
    ffn(e, &L->experts[t->expert], e->ein, m, e->tmp);
    if (!e->host_mem) ROE_TRY(be->ops->download(be, hout, e->tmp, (size_t)m * H * sizeof(float)));
    for (int j = 0; j < m; j++)
        memcpy(out[t->first + j], hout + (size_t)j * H, (size_t)H * sizeof(float));
    if (!t->part) e->stats.distinct_experts++; /* an expert split in two passes counts once */
    return ROE_OK;
}

/* Which pairs run: a pair of a slot that forked in this layer reuses its parent's output
 * for a shared expert (same input, same expert: the same numbers). */
static void mark_pairs(roe_engine *e) {
    const int n = e->n_act, K = e->model->cfg.top_k;
    for (int p = 0; p < n * K; p++) {
        e->src_pair[p] = p;
        const int par = e->fork_parent[p / K];
        if (par >= 0)
            for (int s = 0; s < K; s++)
                if (e->sel[(size_t)par * K + s] == e->sel[p]) e->src_pair[p] = par * K + s;
        e->active[p] = e->src_pair[p] == p;
    }
}

/* Runs the experts for every (slot, slot-in-top-k) pair: FFN_expert(x[slot]) on whichever
 * rank owns the expert; afterwards roe_ep_pair_out(e->ep)[src_pair[p]] is pair p's output
 * (in eout, or in the exchange's receive buffer). */
static roe_status run_experts(roe_engine *e, int layer) {
    const struct roe_layer_weights *L = &e->w->layers[layer];
    const int n = e->n_act, H = e->model->cfg.hidden;
    mark_pairs(e);
    char what[32];
    snprintf(what, sizeof what, "layer %d", layer);
    const float *x = e->x;
    float *out = e->eout;
    if (!e->host_mem) { /* the exchange moves host rows */
        ROE_TRY(e->be->ops->download(e->be, e->st_x, e->x, (size_t)n * H * sizeof(float)));
        x = e->st_x;
        out = e->st_out;
    }
    ROE_TRY(roe_ep_begin(e->ep, &e->pl->maps[layer], x, n, e->sel, e->active, out, what));
    /* what can run before the other ranks' rows are here: this rank's own rows while a late
     * rank's headers are awaited, experts fed only by this rank's rows while the rows travel */
    const struct roe_ep_task *t;
    for (;;) {
        ROE_TRY(roe_ep_next_now(e->ep, &t));
        if (!t) break;
        ROE_TRY(run_task(e, L, t));
    }
    ROE_TRY(roe_ep_wait(e->ep));
    const int n_rest = roe_ep_tasks_rest(e->ep, &t);
    for (int i = 0; i < n_rest; i++) ROE_TRY(run_task(e, L, &t[i]));
    return roe_ep_combine(e->ep);
}

/* The experts of a world of one on a device backend, without leaving the device: the
 * active pairs' rows gathered grouped by expert (ascending; pairs in order within an
 * expert), one FFN per expert over its contiguous rows, then the weighted sum per slot in
 * slot order from the gathered outputs. */
static void run_experts_device(roe_engine *e, int layer) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_layer_weights *L = &e->w->layers[layer];
    roe_backend *be = e->be;
    const int n = e->n_act, K = c->top_k, E = c->n_experts, H = c->hidden;
    mark_pairs(e);
    memset(e->e_count, 0, (size_t)(E + 1) * sizeof *e->e_count);
    for (int p = 0; p < n * K; p++)
        if (e->active[p]) e->e_count[e->sel[p] + 1]++;
    for (int x = 0; x < E; x++) e->e_count[x + 1] += e->e_count[x]; /* offsets */
    memcpy(e->e_cur, e->e_count, (size_t)E * sizeof *e->e_cur);
    for (int p = 0; p < n * K; p++)
        if (e->active[p]) {
            const int g = e->e_cur[e->sel[p]]++;
            e->g_src[g] = p / K;
            e->p_row[p] = g;
        }
    const int n_pairs = e->e_count[E];
    if (n_pairs) be->ops->copy_rows(be, e->ein, NULL, e->x, e->g_src, n_pairs, H);
    for (int x = 0; x < E; x++) {
        const int first = e->e_count[x], m = e->e_count[x + 1] - first;
        if (!m) continue;
        ffn(e, &L->experts[x], e->ein + (size_t)first * H, m, e->eout + (size_t)first * H);
        e->stats.distinct_experts++;
    }
    for (int p = 0; p < n * K; p++) e->y_row[p] = e->p_row[e->src_pair[p]];
    if (n) be->ops->moe_combine(be, e->h, n, H, K, e->eout, e->y_row, e->gw);
}

static roe_status moe_layer(roe_engine *e, int layer, const struct roe_row *rows, int n_rows) {
    const struct roe_model_config *c = &e->model->cfg;
    const struct roe_layer_weights *L = &e->w->layers[layer];
    roe_backend *be = e->be;
    const int H = c->hidden, E = c->n_experts, K = c->top_k;

    if (e->n_act) {
        be->ops->matmul_f32(be, e->x, e->n_act, &L->router, e->rlogits);
        if (!e->host_mem) /* routing is host logic: the same code, the same choices as the CPU */
            ROE_TRY(be->ops->download(be, e->rlog, e->rlogits, (size_t)e->n_act * E * sizeof(float)));
    }
    for (int j = 0; j < e->n_act; j++) {
        route(e, layer, &rows[e->slot_row[j]], e->rlog + (size_t)j * E, e->sel + (size_t)j * K,
              e->gw + (size_t)j * K);
        e->fork_parent[j] = -1;
    }
    /* RoE samples still sharing their clean row's state fork where their routing differs */
    for (int i = 0; i < n_rows; i++) {
        const int j = e->row_slot[i];
        const struct roe_row *r = &rows[i];
        if (e->slot_row[j] == i || !r->roster || r->roster->tau[layer] <= 0.0f) continue;
        route(e, layer, r, e->rlog + (size_t)j * E, e->fsel, e->fgw);
        if (memcmp(e->fsel, e->sel + (size_t)j * K, (size_t)K * sizeof *e->fsel) != 0 ||
            memcmp(e->fgw, e->gw + (size_t)j * K, (size_t)K * sizeof *e->fgw) != 0)
            fork_slot(e, i, j, r, e->fsel, e->fgw);
    }
    if (!e->host_mem && roe_comm_size(e->comm) == 1) {
        run_experts_device(e, layer);
        return ROE_OK;
    }
    ROE_TRY(run_experts(e, layer));
    const float *const *yp = roe_ep_pair_out(e->ep);
    if (!e->host_mem) { /* pair outputs in pair order, up to the device, summed there */
        for (int p = 0; p < e->n_act * K; p++) {
            memcpy(e->st_y + (size_t)p * H, yp[e->src_pair[p]], (size_t)H * sizeof(float));
            e->y_row[p] = p;
        }
        if (e->n_act) {
            be->ops->upload(be, e->eout, e->st_y, (size_t)e->n_act * K * H * sizeof(float));
            be->ops->moe_combine(be, e->h, e->n_act, H, K, e->eout, e->y_row, e->gw);
        }
        return ROE_OK;
    }
    /* weighted sum per slot in fixed slot order (experts ascending) */
    for (int j = 0; j < e->n_act; j++) {
        float *hr = e->h + (size_t)j * H;
        float *acc = e->tmp + (size_t)j * H;
        for (int d = 0; d < H; d++) acc[d] = 0.0f;
        for (int s = 0; s < K; s++) {
            const float w = e->gw[(size_t)j * K + s];
            const float *y = yp[e->src_pair[(size_t)j * K + s]];
            for (int d = 0; d < H; d++) acc[d] += y[d] * w;
        }
        for (int d = 0; d < H; d++) hr[d] += acc[d];
    }
    return ROE_OK;
}

/* Assigns rows to slots: clean and independent rows get their own; a RoE sample whose
 * clean row (same sequence and position, sample 0) is in the step starts as its alias. */
static void assign_slots(roe_engine *e, const struct roe_row *rows, int n) {
    e->n_act = 0;
    for (int i = 0; i < n; i++) e->row_slot[i] = -1;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            const struct roe_row *r = &rows[i];
            if (r->sample > 0 && !e->opts.no_dedup) {
                int parent = -1;
                for (int j = 0; j < n && parent < 0; j++)
                    if (rows[j].sample == 0 && rows[j].seq == r->seq && rows[j].pos == r->pos) parent = j;
                if (parent >= 0) {
                    if (pass == 1) e->row_slot[i] = e->row_slot[parent];
                    continue;
                }
            }
            if (pass == 1) continue;
            const int j = e->n_act++;
            e->slot_row[j] = i;
            e->row_slot[i] = j;
            e->pos[j] = r->pos;
            e->tokens[j] = r->token;
        }
}

roe_status roe_engine_step(roe_engine *e, const struct roe_row *rows, int n, float *logits) {
    if (roe_comm_size(e->comm) > 1 && !e->driven)
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "engine step on rank %d of %d outside a cluster step: with several ranks every step "
                        "must go through runtime/cluster.h (this command does not run under mpirun yet)",
                        roe_comm_rank(e->comm), roe_comm_size(e->comm));
    ROE_TRY(validate_rows(e, rows, n));
    const struct roe_model *m = e->w;
    const struct roe_model_config *c = &e->model->cfg;
    roe_backend *be = e->be;
    const int H = c->hidden, V = c->vocab_size;
    e->stats.rows = n;
    e->stats.distinct_experts = 0;
    e->stats.rows_computed = 0;
    e->stats.rows_naive = (long)n * c->n_layers;
    /* alone, an empty step is nothing; with other ranks it still serves their MoE rows */
    if (n == 0 && roe_comm_size(e->comm) == 1) return ROE_OK;
    assign_slots(e, rows, n);
    if (e->n_act) be->ops->embed(be, &m->embed, e->tokens, e->n_act, e->h);
    for (int l = 0; l < c->n_layers; l++) {
        if (e->n_act) {
            attention_layer(e, l, rows);
            be->ops->rmsnorm(be, e->h, e->n_act, &m->layers[l].ffn_norm, c->rms_eps, e->x);
        }
        if (c->layer_is_moe[l]) ROE_TRY(moe_layer(e, l, rows, n));
        else if (e->n_act) {
            ffn(e, &m->layers[l].dense, e->x, e->n_act, e->tmp);
            be->ops->add(be, e->h, e->tmp, (size_t)e->n_act * H);
        }
        e->stats.rows_computed += e->n_act;
    }
    for (int i = 0; i < n; i++)
        if (rows[i].sample == 0) e->kv.len[rows[i].seq]++;

    /* LM head once per distinct slot that a row wanting logits maps to */
    int nl = 0;
    for (int j = 0; j < e->n_act; j++) e->slot_lrow[j] = -1;
    for (int i = 0; i < n; i++) {
        const int j = e->row_slot[i];
        if (!rows[i].want_logits || e->slot_lrow[j] >= 0) continue;
        e->slot_lrow[j] = nl;
        e->l_src[nl++] = j;
    }
    if (nl == 0) return be->ops->sync(be); /* a device reports its failures here */
    be->ops->copy_rows(be, e->lrows, NULL, e->h, e->l_src, nl, H);
    be->ops->rmsnorm(be, e->lrows, nl, &m->final_norm, c->rms_eps, e->lrows);
    if (e->host_mem && nl == e->n_act && nl == n) { /* every row distinct and wanting logits: write in place */
        be->ops->matmul(be, e->lrows, nl, &m->lm_head, logits);
        return ROE_OK;
    }
    be->ops->matmul(be, e->lrows, nl, &m->lm_head, e->dlogits);
    const float *dl = e->dlogits;
    if (!e->host_mem) {
        ROE_TRY(be->ops->download(be, e->hlogits, e->dlogits, (size_t)nl * V * sizeof(float)));
        dl = e->hlogits;
    }
    for (int i = 0, o = 0; i < n; i++)
        if (rows[i].want_logits)
            memcpy(logits + (size_t)o++ * V, dl + (size_t)e->slot_lrow[e->row_slot[i]] * V,
                   (size_t)V * sizeof(float));
    return ROE_OK;
}
