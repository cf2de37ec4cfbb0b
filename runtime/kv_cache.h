/*
 * kv_cache.h — the clean KV cache: one K and one V vector per (sequence slot, layer,
 * position), fp32, whatever the RoE K is (ROE.md: only sample 0 appends).
 *
 * Layout: k[slot][layer][pos][kv_dim], v the same; allocated once for max_seqs slots of max_ctx
 * positions. Bytes = n_vecs * 4 * max_seqs * n_layers * max_ctx * kv_dim. With multi-head latent
 * attention (DeepSeek-V3) there is one vector per position, no V (n_vecs = 1, v NULL): k holds
 * [latent | roped key] of width kv_lora_rank + qk_rope_head_dim, which the attention reads for
 * keys and values alike (runtime/mla.c). Either way a position of a layer is one or two vectors of
 * a fixed width: the unit a paged pool would hold.
 * k and v are backend memory (kernels/backend.h "Buffers": device memory on a GPU); the
 * lengths are host memory, since host-side logic plans the steps.
 */
#ifndef ROE_KV_CACHE_H
#define ROE_KV_CACHE_H

#include <stddef.h>

#include "kernels/backend.h"
#include "base/status.h"

struct roe_kv_cache {
    int max_seqs;
    int n_layers;
    int max_ctx;
    int kv_dim;
    int n_vecs;      /* 2: K and V; 1: k only (MLA's latent) */
    roe_backend *be; /* borrowed: where k and v live */
    float *k;  /* [max_seqs, n_layers, max_ctx, kv_dim] backend memory */
    float *v;  /* same; NULL when n_vecs is 1 */
    int *len;  /* [max_seqs] positions written (the clean history length), host */
};

/* k (and v when n_vecs is 2) are allocated with be->ops->alloc (be must outlive the cache). */
roe_status roe_kv_cache_init(struct roe_kv_cache *c, roe_backend *be, int max_seqs, int n_layers,
                             int max_ctx, int kv_dim, int n_vecs);
void roe_kv_cache_free(struct roe_kv_cache *c);
size_t roe_kv_cache_bytes(const struct roe_kv_cache *c);

/* Copies the first len positions of slot src (every layer, K and V) into slot dst, whose length
 * becomes len: a sequence that shares another's prompt starts from its cache (n > 1 choices).
 * len <= src's length; dst != src. */
void roe_kv_cache_copy(struct roe_kv_cache *c, int dst, int src, int len);

/* Row index of (seq, layer, pos) in k (or v) seen as [rows, kv_dim]. */
static inline int64_t roe_kv_row(const struct roe_kv_cache *c, int seq, int layer, int pos) {
    return ((int64_t)seq * c->n_layers + layer) * c->max_ctx + pos;
}
static inline float *roe_kv_k(const struct roe_kv_cache *c, int seq, int layer) {
    return c->k + (((size_t)seq * c->n_layers + layer) * c->max_ctx) * c->kv_dim;
}
static inline float *roe_kv_v(const struct roe_kv_cache *c, int seq, int layer) {
    return c->v + (((size_t)seq * c->n_layers + layer) * c->max_ctx) * c->kv_dim;
}

#endif
