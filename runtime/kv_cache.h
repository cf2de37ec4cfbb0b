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
 * A cache whose layers all attend a window of at most `window` positions (sliding-window
 * attention; docs/KV.md "Sliding windows") gives back every block that lies wholly before a
 * sequence's last `window` positions as soon as the sequence passes it: blocks below lo[seq] are
 * not held (table -1), so a sequence holds about window / block_size + 2 blocks however long it
 * grows.
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
    int window;      /* > 0: the layers attend at most this many positions; blocks before go back */
    roe_dtype dtype; /* of k and v: F32 or BF16 */
    size_t elem;     /* bytes per element */
    roe_backend *be; /* borrowed: where k and v live */
    void *k;   /* [n_blocks, n_layers, block_size, kv_dim] backend memory */
    void *v;   /* same; NULL when n_vecs is 1 */
    int *len;  /* [max_seqs] positions written (the clean history length), host */
    int *lo;   /* [max_seqs] the first block index a sequence holds (0 without a window) */
    int32_t *table; /* [max_seqs, max_blocks] each sequence's blocks; -1: none */
    int *nref;      /* [n_blocks] tables holding each block (0: free) */
    int32_t *free_ids; /* [n_blocks] the free stack: n_free ids, the next at the top */
    int n_free;
    /* prefix reuse (docs/KV.md "Prefix reuse") */
    int32_t *tok;      /* [max_seqs, max_ctx] each sequence's tokens, host */
    uint64_t *chain;   /* [max_seqs, max_blocks] the hash of each full block and all before it */
    uint64_t *bhash;   /* [n_blocks] a registered block's chain hash */
    int32_t *btok;     /* [n_blocks, block_size] a registered block's tokens (checked on a hit) */
    uint8_t *cached;   /* [n_blocks] registered: findable by its hash */
    int32_t *hnext;    /* [n_blocks] next registered block of the same bucket */
    int32_t *bucket;   /* [n_buckets] first registered block of each bucket, -1: none */
    uint64_t *bparent; /* [n_blocks] a registered block's parent: the chain hash before it (0: block 0) */
    int32_t *pnext;    /* [n_blocks] next registered block whose parent is in the same bucket */
    int32_t *pbucket;  /* [n_buckets] by parent hash: the children of a prefix (partial reuse) */
    int n_buckets;     /* a power of two */
    int32_t *lru_prev, *lru_next; /* [n_blocks] unreferenced registered blocks, oldest first */
    int lru_head, lru_tail, n_lru;
    int no_prefix;     /* never register or look up blocks */
    long hit_tokens;   /* positions found by roe_kv_cache_match */
    long query_tokens; /* positions it was asked to find */
    long evictions;    /* registered blocks taken back for new ones */
};

struct roe_kv_cache_opts {
    int max_seqs, n_layers, max_ctx, kv_dim, n_vecs;
    int block_size;     /* 0: ROE_KV_BLOCK_DEFAULT */
    roe_dtype dtype;    /* F32 (0) or BF16 */
    size_t bytes;       /* the pool (rounded down to whole blocks); 0: max_seqs full contexts */
    int window;         /* > 0: sliding-window layers only (struct roe_kv_cache.window) */
    int min_blocks;     /* > 0 (with window): the fewest blocks accepted, instead of one full context */
    uint64_t scramble;  /* != 0: the free stack in an order drawn from this seed (tests) */
    int no_prefix;      /* no prefix reuse */
};

/* k (and v when n_vecs is 2) are allocated with be->ops->alloc (be must outlive the cache);
 * be NULL: no k and v, the bookkeeping alone (tables, counts, prefix hashes: rank 0's mirror of
 * another rank's pool, cluster.h), every call the same but for the elements a copy moves.
 * Fails (ROE_ERR_INVALID_ARG) when the bytes do not hold one full context. */
roe_status roe_kv_cache_init(struct roe_kv_cache *c, roe_backend *be, const struct roe_kv_cache_opts *o);
void roe_kv_cache_free(struct roe_kv_cache *c);
/* Bytes of the pool. */
size_t roe_kv_cache_bytes(const struct roe_kv_cache *c);
/* Bytes of one block (every layer, K and V) of elements of `elem` bytes. */
size_t roe_kv_block_bytes(int n_layers, int block_size, int kv_dim, int n_vecs, size_t elem);

/* The first position a sequence of length len keeps with a window (0 without): the next row
 * (position len) reads from len - window + 1, and a RoE sample of the position just cleaned (len
 * - 1, ROE.md "adaptive K") from len - window. */
static inline int roe_kv_keep_from(const struct roe_kv_cache *c, int len) {
    return c->window > 0 && len > c->window ? len - c->window : 0;
}

/* Makes sequence seq hold blocks for positions [0, n) (with a window: from its first held block
 * lo[seq]): allocates the missing ones. Fails
 * with ROE_ERR_OVERLOADED, holding what it held, when the pool has too few free blocks. */
roe_status roe_kv_cache_reserve(struct roe_kv_cache *c, int seq, int n);
/* Blocks sequence seq still needs to hold positions [0, n). */
int roe_kv_cache_blocks_needed(const struct roe_kv_cache *c, int seq, int n);

/* Blocks a reservation may take: free ones and unreferenced registered ones (evicted, least
 * recently used first). */
static inline int roe_kv_cache_available(const struct roe_kv_cache *c) { return c->n_free + c->n_lru; }

/* Records that sequence seq holds token t at position pos (the engine, for each clean row);
 * when pos ends a block, the block is registered under the hash of its tokens and every token
 * before it, so later sequences with the same prefix find it. With a window, the blocks wholly
 * before roe_kv_keep_from(pos + 1) go back (registered ones wait, evictable, as after a reset). */
void roe_kv_cache_note(struct roe_kv_cache *c, int seq, int pos, int32_t t);

/* Empty sequence seq starts with the longest registered prefix of tokens[0, n) that leaves at
 * least one position to compute: whole blocks, shared (referenced) and no longer evictable.
 * Returns the positions it holds (0: none found, or seq not empty). */
int roe_kv_cache_match(struct roe_kv_cache *c, int seq, const int32_t *tokens, int n);
/* The longest prefix of tokens, a multiple of block_size and at most `most` positions, that this
 * cache could start a sequence with: every block from 0 registered (with a window: every block
 * from the one holding roe_kv_keep_from of that length), nothing taken. Two caches of one model
 * (the engine's full and sliding layers) agree on a length this way before either takes it. */
int roe_kv_cache_probe(const struct roe_kv_cache *c, const int32_t *tokens, int most);
/* roe_kv_cache_match taking exactly `held` positions, a length roe_kv_cache_probe returned
 * (counting `query` positions asked for). */
int roe_kv_cache_take(struct roe_kv_cache *c, int seq, const int32_t *tokens, int held, int query);

/* Token-granular reuse past the whole blocks (docs/KV.md "Prefix reuse"): sequence seq holds
 * len = len[seq] positions, a multiple of block_size, of tokens[0, n) (a prefix hit, or none),
 * and the next block of tokens differs from every registered one. The registered block that
 * continues seq's chain (its parent is seq's last full block) and shares the most leading tokens
 * with tokens[len, n - 1) (leaving at least the last position to compute): returns how many
 * (0: none; always 0 with a window or no_prefix), *src the block. Nothing is taken. */
int roe_kv_cache_partial_probe(const struct roe_kv_cache *c, int seq, const int32_t *tokens, int n, int32_t *src);
/* Sequence seq (holding a multiple of block_size positions) takes a new block for its next
 * positions and copies into it the first m (< block_size) positions of registered block src,
 * every layer, K and V (a mirror: the bookkeeping alone): its length grows by m. ROE_ERR_FORMAT
 * (nothing changed) unless src is registered and continues seq's chain; ROE_ERR_OVERLOADED when
 * no block is available. Exact: a position's K/V depend only on the tokens up to it. */
roe_status roe_kv_cache_extend(struct roe_kv_cache *c, int seq, int32_t src, int m);

/* What roe_kv_cache_match would find for tokens[0, n) now, without taking it (roe_kv_cache_probe
 * of n - 1 positions): the positions, and (unreferenced, may be NULL) how many of the blocks it
 * would hold no sequence holds (taking them makes them unevictable, so they leave
 * roe_kv_cache_available). Admission's estimate (batch.c). */
int roe_kv_cache_lookup(const struct roe_kv_cache *c, const int32_t *tokens, int n, int *unreferenced);

/* Empty sequence seq starts holding the registered blocks[0, n) (a prefix another process found
 * with roe_kv_cache_match on a copy of this pool's bookkeeping: cluster.h): they gain a
 * reference and leave the LRU list. ROE_ERR_FORMAT, holding nothing, unless seq is empty and
 * each block is registered and chained on the one before (the same tokens from position 0); a
 * pool with a window adopts nothing here (ROE_ERR_FORMAT): roe_kv_cache_adopt_from. */
roe_status roe_kv_cache_adopt(struct roe_kv_cache *c, int seq, const int32_t *blocks, int n);
/* The same for a prefix of n blocks of which this pool holds only [lo, n) (a sliding-window pool:
 * lo = roe_kv_keep_from(n * block_size) / block_size, 0 without a window): blocks[0, n - lo) are
 * blocks lo..n-1 and `before` the chain hash of block lo - 1 (0 when lo is 0), so each block
 * must be registered and chained on `before` and the blocks between (the same tokens from
 * position 0, as far as the hash tells). Block lo - 1's hash is kept; the tokens below lo are
 * not known here (nothing reads them: those positions are not held). */
roe_status roe_kv_cache_adopt_from(struct roe_kv_cache *c, int seq, int lo, uint64_t before, const int32_t *blocks,
                                   int n);

/* Forgets sequence seq: its length becomes 0 and its blocks go back (shared ones lose a
 * reference; registered ones wait, evictable, least recently used first). */
void roe_kv_cache_reset(struct roe_kv_cache *c, int seq);

/* Sequence dst starts as the first len positions of src (every layer, K and V): dst's old
 * blocks go back, src's full blocks below len are shared, a partial last block is copied into a
 * new one. len <= src's length; dst != src. ROE_ERR_OVERLOADED when no block is free for the
 * copy (dst is then empty). With a window: only the blocks src still holds from
 * roe_kv_keep_from(len); ROE_ERR_INVALID_ARG (dst empty) when src gave back a position the next
 * row of dst reads (len - window + 1 on). */
roe_status roe_kv_cache_copy(struct roe_kv_cache *c, int dst, int src, int len);

/* Sequence seq keeps only the blocks of positions [0, n) (those past them go back): a reservation
 * for more positions than were written, undone (MoR's block pool, runtime/mor.c). */
void roe_kv_cache_trim(struct roe_kv_cache *c, int seq, int n);

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
