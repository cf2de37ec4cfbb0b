/*
 * engine_impl.h — the engine's private state, shared by its three files: engine.c (the forward
 * pass: slots, attention, dense FFN, LM head), mla.c (DeepSeek-V3's multi-head latent attention)
 * and moe.c (the MoE sublayer: routing, RoE forks, experts). Nothing outside them includes this
 * header.
 *
 * Rows and slots. A step's rows (engine.h) are computed in *slots*: every clean or independent
 * row has one; a RoE sample row with its clean row in the step shares the clean row's slot
 * until the MoE layer where its routing first differs, and then forks into a slot of its own
 * (a copy of the parent's state). Every per-row activation buffer below is indexed by slot;
 * n_act slots are live. A *pair* is (slot, s), s < top_k: the slot's s-th chosen expert, at
 * index slot * top_k + s of the pair arrays.
 *
 * Buffers. Every buffer is a field below, allocated once by roe_engine_create from one
 * table (engine.c, ENGINE_BUFS) that gives each one's memory (backend, host, or host staging
 * that only a device backend needs) and its size formula in the dimensions R = max_rows,
 * K = top_k, S = max_seqs, H = hidden, QD = heads x head_dim, KD = kv heads x head_dim, E = experts,
 * I = the widest FFN activation, V = vocabulary, HD = head_dim, L = layers, RS = routing scratch, MB = blocks of one context;
 * with multi-head latent attention (runtime/mla.c) QD = heads x max(qk_nope + qk_rope, v),
 * KD = kv_lora_rank + qk_rope, QL = q_lora_rank, HL = heads x kv_lora_rank, MS = the per-head
 * matmuls' scratch (0 or 1 for the other families). The shape comments here repeat the table.
 */
#ifndef ROE_ENGINE_IMPL_H
#define ROE_ENGINE_IMPL_H

#include "engine.h"

struct roe_engine {
    const struct roe_model *model;
    const struct roe_model *w;        /* the weights the kernels read: model, or owned_w */
    struct roe_model *owned_w;        /* device-resident weights (runtime/weights.h) */
    struct roe_engine_opts opts;
    roe_backend *be;
    int host_mem;                     /* be->host_memory: no staging copies */
    struct roe_kv_cache kv;           /* every layer's, or the full-attention layers' beside kv_win */
    struct roe_kv_cache kv_win;       /* the sliding-window layers' when the model mixes both
                                         (docs/KV.md "Sliding windows"); n_layers 0: none */
    int kv_index[ROE_MAX_LAYERS];     /* a layer's index among its pool's layers */
    unsigned char kv_in_win[ROE_MAX_LAYERS]; /* 1: the layer's cache is kv_win */
    struct roe_step_stats stats;
    roe_comm *comm;                   /* borrowed, or owned_comm */
    roe_comm *owned_comm;             /* a self communicator when none was given */
    const struct roe_placement *pl;   /* borrowed, or owned_pl */
    struct roe_placement *owned_pl;   /* every expert on rank 0 when none was given */
    roe_ep *ep;                       /* the expert exchange; NULL in a world of one */
    int driven;                       /* inside a step the cluster drives (cluster.h) */
    int n_act;                        /* live slots of the step */
    int btab_stride;                  /* entries per slot in btab this step */
    int btab_n;                       /* slots whose btab rows are filled */
    struct roe_mor *mor;              /* a MoR model's state (runtime/mor.c), else NULL */

    /* backend memory */
    float *h;        /* [R, H] residual stream */
    float *x;        /* [R, H] normed input of a sublayer */
    float *q;        /* [R, QD] */
    float *k;        /* [R, KD] (MLA: the rows' [latent | rope key], what the cache appends) */
    float *v;        /* [R, KD] (MLA: unused) */
    float *att;      /* [R, QD] attention output */
    float *tmp;      /* [R, H] a sublayer's output */
    float *rlogits;  /* [R, E] router logits */
    float *ein;      /* [R K, H] expert input rows: the active pairs' grouped by expert (local
                        path), or one task's (exchange) */
    float *egate;    /* [R, I] gate projection of one FFN's rows (at most R rows) */
    float *eup;      /* [R, I] up projection */
    float *eout;     /* [R K, H] expert outputs: per gathered pair (local path), per pair
                        (exchange: what this rank's experts computed for its own pairs) */
    float *lrows;    /* [R, H] normed rows that want logits */
    float *qa;       /* [R, QL] MLA: the query's low-rank projection */
    float *qlat;     /* [R, HL] MLA: the absorbed queries W_uk^T q_nope, per head */
    float *olat;     /* [R, HL] MLA: the latent attention's outputs, per head */
    float *mscr;     /* [R, MS] MLA: scratch of the per-head matmuls */
    float *dlogits;  /* [R, V] logits of the distinct slots, before spreading to rows */

    /* host staging: a device backend only (on the CPU, rlog is rlogits and the rest unused) */
    float *rlog;     /* [R, E] router logits the host routes */
    float *st_x;     /* [R, H] x for the exchange */
    float *st_in;    /* [R, H] one task's rows */
    float *st_out;   /* [R K, H] pair outputs the exchange writes */
    float *st_y;     /* [R K, H] pair outputs in pair order, for the device's weighted sum */
    float *hlogits;  /* [R, V] logits downloaded */

    float *inv_freq; /* [HD/2] RoPE inverse frequencies (runtime/rope.h) */

    /* host memory */
    struct roe_rope_args rope; /* the RoPE of every layer: inv_freq, its width and scale */
    float mla_scale;   /* MLA's softmax scale (runtime/rope.h) */
    float *rope_host;  /* [HD/2] inv_freq as computed, before the upload */
    float *score_bias; /* [L, E] each layer's e_score_correction_bias in fp32 (SIGMOID_GROUP) */
    float *rscratch; /* [RS] routing scratch (router.h: roe_route_scratch_floats) */
    float *shared_w; /* [R] each slot's shared-expert weight (Qwen2: sigmoid gate; GLM-4.5: 1) */
    int *shared_row; /* [R] the row of the shared expert's output a slot sums (a fork: its parent's) */
    int32_t *sel;    /* [R K] each pair's expert (a slot's ascending) */
    float *gw;       /* [R K] each pair's gate weight */
    int32_t *fsel;   /* [K] a candidate fork's routing */
    const float **ypair; /* [K] a slot's pair outputs where they landed (exchange) */
    float *fgw;      /* [K] */
    int *fork_parent;/* [R] the slot a slot forked from in this layer, or -1 */
    int *src_pair;   /* [R K] the pair whose expert output a pair reuses (itself, or its
                        parent's pair of the same expert) */
    uint8_t *active; /* [R K] pairs computed (src_pair[p] == p) */
    int *e_count;    /* [E + 1] local path: pairs per expert, then offsets */
    int *e_cur;      /* [E] fill cursor per expert */
    int64_t *g_src;  /* [R K] the slot of each gathered pair row */
    int *p_row;      /* [R K] the gathered row of each active pair */
    int *y_row;      /* [R K] the output row each pair sums */
    int64_t *kv_dst; /* [R] cache rows the clean slots append to */
    int64_t *kv_src; /* [R] their slots */
    int64_t *l_src;  /* [R] the slot of each row of lrows */
    int *pos;        /* [R] each slot's position */
    int *hbegin;     /* [R] first history position each slot attends */
    int *hend;       /* [R] one past its last */
    int32_t *tokens; /* [R] each slot's input token */
    int32_t *btab;   /* [R, MB] each slot's block table (kv_cache.h), btab_stride entries a slot */
    int32_t *btab_w; /* [R, MB] the same in kv_win */
    int *slot_row;   /* [R] the row a slot computes */
    int *row_slot;   /* [R] the slot whose state a row currently shares */
    int *slot_lrow;  /* [R] a slot's row in lrows, or -1 */
    int *seq_next;   /* [S] checking a step: each sequence's clean history as the step extends it */
};

/* engine.c: the SwiGLU FFN of m rows, out[m, H] = down(silu(gate in) * up in). */
void roe__engine_ffn(roe_engine *e, const struct roe_expert_weights *w, const float *in, int m,
                     float *out);

/* engine.c: the cache plan of `layer` for the live slots: the clean slots' cache rows (kv_dst,
 * kv_src: returns how many) and each slot's history (hbegin, hend; its blocks: btab). */
int roe__engine_history(roe_engine *e, int layer, const struct roe_row *rows);

/* mla.c: the multi-head latent attention sublayer at `layer` over the live slots: h += MLA(norm(h)),
 * the clean slots appending their [latent | rope key] to the cache. */
void roe__mla_layer(roe_engine *e, int layer, const struct roe_row *rows);

/* engine.c: the final norm and the LM head of the live slots (e->h, row_slot: each row's slot) for the
 * rows that want logits; logits[i] for the i-th such row. */
roe_status roe__engine_lm_head(roe_engine *e, const struct roe_row *rows, int n, float *logits);

/* engine.c: the live slots' block tables as the attention ops read them (kernels/backend.h). */
struct roe_kv_pages roe__engine_pages(const roe_engine *e);

/* moe.c: the MoE sublayer at `layer` over the live slots: h += MoE(x), forking RoE samples
 * where their routing departs from their clean row. Fails only on a failing peer or device. */
roe_status roe__moe_layer(roe_engine *e, int layer, const struct roe_row *rows, int n_rows);

#endif
