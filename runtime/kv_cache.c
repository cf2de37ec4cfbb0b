/* kv_cache.c — allocation of the clean KV cache; see kv_cache.h. */
#include "kv_cache.h"

#include <string.h>

#include "base/alloc.h"

size_t roe_kv_cache_bytes(const struct roe_kv_cache *c) {
    return (size_t)c->n_vecs * sizeof(float) * (size_t)c->max_seqs * c->n_layers * c->max_ctx * c->kv_dim;
}

roe_status roe_kv_cache_init(struct roe_kv_cache *c, roe_backend *be, int max_seqs, int n_layers,
                             int max_ctx, int kv_dim, int n_vecs) {
    memset(c, 0, sizeof *c);
    size_t elems = 1;
    if (max_seqs <= 0 || max_ctx <= 0 || !roe_size_mul(elems, (size_t)max_seqs, &elems) ||
        !roe_size_mul(elems, (size_t)n_layers, &elems) ||
        !roe_size_mul(elems, (size_t)max_ctx, &elems) ||
        !roe_size_mul(elems, (size_t)kv_dim, &elems) || elems > ((size_t)1 << 40) / sizeof(float))
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "kv cache: %d sequences x %d layers x %d positions x %d is too large",
                        max_seqs, n_layers, max_ctx, kv_dim);
    c->max_seqs = max_seqs;
    c->n_layers = n_layers;
    c->max_ctx = max_ctx;
    c->kv_dim = kv_dim;
    c->n_vecs = n_vecs;
    c->be = be;
    c->k = be->ops->alloc(be, elems * sizeof(float));
    if (n_vecs == 2) c->v = be->ops->alloc(be, elems * sizeof(float));
    c->len = roe_calloc((size_t)max_seqs, sizeof(int));
    if (!c->k || (n_vecs == 2 && !c->v) || !c->len) {
        roe_kv_cache_free(c);
        return roe_fail(ROE_ERR_NOMEM, "kv cache: out of memory for %zu bytes",
                        (size_t)n_vecs * elems * sizeof(float));
    }
    return ROE_OK;
}

void roe_kv_cache_copy(struct roe_kv_cache *c, int dst, int src, int len) {
    const size_t bytes = (size_t)len * c->kv_dim * sizeof(float);
    for (int l = 0; l < c->n_layers && bytes; l++) {
        c->be->ops->copy(c->be, roe_kv_k(c, dst, l), roe_kv_k(c, src, l), bytes);
        c->be->ops->copy(c->be, roe_kv_v(c, dst, l), roe_kv_v(c, src, l), bytes);
    }
    c->len[dst] = len;
}

void roe_kv_cache_free(struct roe_kv_cache *c) {
    if (c->be) {
        if (c->k) c->be->ops->free(c->be, c->k);
        if (c->v) c->be->ops->free(c->be, c->v);
    }
    roe_free(c->len);
    memset(c, 0, sizeof *c);
}
