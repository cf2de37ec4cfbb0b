/*
 * kv_cache.h — the clean KV cache as a pool of fixed-size blocks (docs/KV.md): one K and one V
 * vector per (sequence, layer, position), fp32, whatever the RoE K is (ROE.md: only sample 0
 * appends), fp32 or bf16.
 *
 * Layout. A block holds block_size consecutive positions of one sequence for EVERY layer:
 * k[block][layer][offset][kv_dim] (v the same), so a sequence needs one block table for all its
 * layers, and a block is the unit of allocation, sharing and (later) prefix reuse. Position p of
 * sequence s is row roe_kv_row(c, s, layer, p) of k seen as [n_blocks * n_layers * block_size,
 * kv_dim]: block table[s][p / block_size], offset p % block_size. Elements are fp32 or bf16
 * (dtype; bf16 rounded to nearest even when stored, widened exactly when read). With multi-head latent
 * attention (DeepSeek-V3) there is one vector per position, no V (n_vecs = 1, v NULL): k holds
 * [latent | roped key] of width kv_lora_rank + qk_rope_head_dim, in the same pool.
 *
 * Sequences are slots in [0, max_seqs) (the engine's rows name them); a slot costs only its
 * block table, the pool's size is its own (bytes at init, default max_seqs full contexts).
 * Blocks are reference-counted: a fork (roe_kv_cache_copy) shares the source's full blocks and
 * copies its partial last block, so a block that more than one table holds is always full and
 * never written again. Blocks come from a free stack (scrambled at init on request: tests make
 * every sequence's blocks non-contiguous that way).
 *
 * k and v are backend memory (kernels/backend.h "Buffers": device memory on a GPU); the
 * tables, counts and lengths are host memory, since host-side logic plans the steps.
 */
#ifndef ROE_KV_CACHE_H
#define ROE_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/backend.h"
#include "base/status.h"

enum { ROE_KV_BLOCK_DEFAULT = 16 };

struct roe_kv_cache {
    int max_seqs;
    int n_layers;
    int max_ctx;
    int kv_dim;
    int n_vecs;      /* 2: K and V; 1: k only (MLA's latent) */
    int block_size;  /* positions per block */
    int max_blocks;  /* blocks of one full context: ceil(max_ctx / block_size) */
    int n_blocks;    /* blocks in the pool */
    roe_dtype dtype; /* of k and v: F32 or BF16 */
    size_t elem;     /* bytes per element */
    roe_backend *be; /* borrowed: where k and v live */
    void *k;   /* [n_blocks, n_layers, block_size, kv_dim] backend memory */
    void *v;   /* same; NULL when n_vecs is 1 */
    int *len;  /* [max_seqs] positions written (the clean history length), host */
    int32_t *table; /* [max_seqs, max_blocks] each sequence's blocks; -1: none */
    int *nref;      /* [n_blocks] tables holding each block (0: free) */
    int32_t *free_ids; /* [n_blocks] the free stack: n_free ids, the next at the top */
    int n_free;
};

struct roe_kv_cache_opts {
    int max_seqs, n_layers, max_ctx, kv_dim, n_vecs;
    int block_size;     /* 0: ROE_KV_BLOCK_DEFAULT */
    roe_dtype dtype;    /* F32 (0) or BF16 */
    size_t bytes;       /* the pool (rounded down to whole blocks); 0: max_seqs full contexts */
    uint64_t scramble;  /* != 0: the free stack in an order drawn from this seed (tests) */
};

/* k (and v when n_vecs is 2) are allocated with be->ops->alloc (be must outlive the cache).
 * Fails (ROE_ERR_INVALID_ARG) when the bytes do not hold one full context. */
roe_status roe_kv_cache_init(struct roe_kv_cache *c, roe_backend *be, const struct roe_kv_cache_opts *o);
void roe_kv_cache_free(struct roe_kv_cache *c);
/* Bytes of the pool. */
size_t roe_kv_cache_bytes(const struct roe_kv_cache *c);
/* Bytes of one block (every layer, K and V) of elements of `elem` bytes. */
size_t roe_kv_block_bytes(int n_layers, int block_size, int kv_dim, int n_vecs, size_t elem);

/* Makes sequence seq hold blocks for positions [0, n): allocates the missing ones. Fails
 * with ROE_ERR_OVERLOADED, holding what it held, when the pool has too few free blocks. */
roe_status roe_kv_cache_reserve(struct roe_kv_cache *c, int seq, int n);
/* Blocks sequence seq still needs to hold positions [0, n). */
int roe_kv_cache_blocks_needed(const struct roe_kv_cache *c, int seq, int n);

/* Forgets sequence seq: its length becomes 0 and its blocks go back (shared ones lose a
 * reference). */
void roe_kv_cache_reset(struct roe_kv_cache *c, int seq);

/* Sequence dst starts as the first len positions of src (every layer, K and V): dst's old
 * blocks go back, src's full blocks below len are shared, a partial last block is copied into a
 * new one. len <= src's length; dst != src. ROE_ERR_OVERLOADED when no block is free for the
 * copy (dst is then empty). */
roe_status roe_kv_cache_copy(struct roe_kv_cache *c, int dst, int src, int len);

/* Row index of (seq, layer, pos) in k (or v) seen as [rows, kv_dim]; pos's block must be held. */
static inline int64_t roe_kv_row(const struct roe_kv_cache *c, int seq, int layer, int pos) {
    const int32_t b = c->table[(size_t)seq * c->max_blocks + pos / c->block_size];
    return ((int64_t)b * c->n_layers + layer) * c->block_size + pos % c->block_size;
}
/* Elements from one block to the next, and from a block's start to `layer`'s first row. */
static inline int64_t roe_kv_block_elems(const struct roe_kv_cache *c) {
    return (int64_t)c->n_layers * c->block_size * c->kv_dim;
}
static inline int64_t roe_kv_layer_elems(const struct roe_kv_cache *c, int layer) {
    return (int64_t)layer * c->block_size * c->kv_dim;
}
/* k or v (base) moved to `layer`'s first row. */
static inline void *roe_kv_layer_ptr(const struct roe_kv_cache *c, void *base, int layer) {
    return base ? (char *)base + (size_t)roe_kv_layer_elems(c, layer) * c->elem : NULL;
}

#endif
