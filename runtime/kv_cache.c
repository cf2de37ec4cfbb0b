/* kv_cache.c — the block pool of the clean KV cache; see kv_cache.h and docs/KV.md. */
#include "kv_cache.h"

#include <string.h>

#include "base/alloc.h"

size_t roe_kv_block_bytes(int n_layers, int block_size, int kv_dim, int n_vecs, size_t elem) {
    return (size_t)n_vecs * elem * (size_t)n_layers * (size_t)block_size * (size_t)kv_dim;
}

size_t roe_kv_cache_bytes(const struct roe_kv_cache *c) {
    return (size_t)c->n_blocks * roe_kv_block_bytes(c->n_layers, c->block_size, c->kv_dim, c->n_vecs, c->elem);
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The free stack: every block, the lowest id on top (or a seeded permutation). */
static void fill_free(struct roe_kv_cache *c, uint64_t scramble) {
    for (int i = 0; i < c->n_blocks; i++) c->free_ids[i] = c->n_blocks - 1 - i;
    c->n_free = c->n_blocks;
    for (int i = c->n_blocks - 1; scramble && i > 0; i--) {
        const int j = (int)(splitmix(&scramble) % (uint64_t)(i + 1));
        const int32_t t = c->free_ids[i];
        c->free_ids[i] = c->free_ids[j];
        c->free_ids[j] = t;
    }
}

/* The pool's block count from o (0 with an error set when it cannot be). */
static int pool_blocks(const struct roe_kv_cache_opts *o, int block_size, int max_blocks) {
    const size_t per = roe_kv_block_bytes(o->n_layers, block_size, o->kv_dim, o->n_vecs, roe_dtype_size(o->dtype));
    size_t n = o->bytes ? o->bytes / (per ? per : 1) : (size_t)o->max_seqs * (size_t)max_blocks;
    const int least = o->window > 0 && o->min_blocks > 0 && o->min_blocks < max_blocks ? o->min_blocks : max_blocks;
    if (n < (size_t)least && least < max_blocks) {
        roe_fail(ROE_ERR_INVALID_ARG,
                 "kv cache: %zu bytes hold %zu blocks of %d positions (%zu bytes each) for the sliding-window "
                 "layers; a window of %d positions needs %d",
                 o->bytes, n, block_size, per, o->window, least);
        return 0;
    }
    if (n < (size_t)least) {
        roe_fail(ROE_ERR_INVALID_ARG,
                 "kv cache: --kv-memory of %zu bytes holds %zu blocks of %d positions (%zu bytes each); "
                 "one context of %d positions needs %d",
                 o->bytes, n, block_size, per, o->max_ctx, max_blocks);
        return 0;
    }
    if (n > (size_t)INT32_MAX || n * per > ((size_t)1 << 40) || per == 0) {
        roe_fail(ROE_ERR_INVALID_ARG, "kv cache: %zu blocks of %zu bytes is too large", n, per);
        return 0;
    }
    return (int)n;
}

/* The prefix-reuse arrays (kv_cache.h); 0, or -1 when out of memory. */
static int alloc_prefix(struct roe_kv_cache *c) {
    c->n_buckets = 1;
    while (c->n_buckets < c->n_blocks) c->n_buckets *= 2;
    const size_t S = (size_t)c->max_seqs, B = (size_t)c->n_blocks;
    c->tok = roe_malloc(S * (size_t)c->max_ctx * sizeof(int32_t));
    c->chain = roe_malloc(S * (size_t)c->max_blocks * sizeof(uint64_t));
    c->bhash = roe_calloc(B, sizeof(uint64_t));
    c->btok = roe_malloc(B * (size_t)c->block_size * sizeof(int32_t));
    c->cached = roe_calloc(B, 1);
    c->hnext = roe_malloc(B * sizeof(int32_t));
    c->bucket = roe_malloc((size_t)c->n_buckets * sizeof(int32_t));
    c->lru_prev = roe_malloc(B * sizeof(int32_t));
    c->lru_next = roe_malloc(B * sizeof(int32_t));
    c->bparent = roe_calloc(B, sizeof(uint64_t));
    c->pnext = roe_malloc(B * sizeof(int32_t));
    c->pbucket = roe_malloc((size_t)c->n_buckets * sizeof(int32_t));
    return c->tok && c->chain && c->bhash && c->btok && c->cached && c->hnext && c->bucket && c->lru_prev &&
                   c->lru_next && c->bparent && c->pnext && c->pbucket ? 0 : -1;
}

roe_status roe_kv_cache_init(struct roe_kv_cache *c, roe_backend *be, const struct roe_kv_cache_opts *o) {
    memset(c, 0, sizeof *c);
    const int bs = o->block_size ? o->block_size : ROE_KV_BLOCK_DEFAULT;
    if (o->max_seqs <= 0 || o->max_ctx <= 0 || o->n_layers <= 0 || o->kv_dim <= 0 || bs <= 0 ||
        (size_t)o->max_seqs * (size_t)o->max_ctx > ((size_t)1 << 31))
        return roe_fail(ROE_ERR_INVALID_ARG, "kv cache: %d sequences x %d positions, blocks of %d: invalid",
                        o->max_seqs, o->max_ctx, bs);
    if (o->dtype != ROE_DTYPE_F32 && o->dtype != ROE_DTYPE_BF16 && o->dtype != ROE_DTYPE_F8_E4M3)
        return roe_fail(ROE_ERR_INVALID_ARG, "kv cache: elements of %s: f32, bf16 or fp8 e4m3 only (--kv-dtype)",
                        roe_dtype_name(o->dtype));
    const int max_blocks = (int)(((int64_t)o->max_ctx + bs - 1) / bs);
    const int n_blocks = pool_blocks(o, bs, max_blocks);
    if (!n_blocks) return ROE_ERR_INVALID_ARG;
    *c = (struct roe_kv_cache){.max_seqs = o->max_seqs, .n_layers = o->n_layers, .max_ctx = o->max_ctx,
                               .kv_dim = o->kv_dim, .n_vecs = o->n_vecs, .block_size = bs,
                               .max_blocks = max_blocks, .n_blocks = n_blocks,
                               .window = o->window > 0 ? o->window : 0, .dtype = o->dtype,
                               .elem = roe_dtype_size(o->dtype), .be = be};
    const size_t bytes = roe_kv_cache_bytes(c) / (size_t)o->n_vecs;
    if (be) { /* no backend: the bookkeeping alone (a mirror of another rank's pool) */
        c->k = be->ops->alloc(be, bytes);
        if (o->n_vecs == 2) c->v = be->ops->alloc(be, bytes);
    }
    c->len = roe_calloc((size_t)o->max_seqs, sizeof(int));
    c->lo = roe_calloc((size_t)o->max_seqs, sizeof(int));
    c->table = roe_malloc((size_t)o->max_seqs * (size_t)max_blocks * sizeof(int32_t));
    c->nref = roe_calloc((size_t)n_blocks, sizeof(int));
    c->free_ids = roe_malloc((size_t)n_blocks * sizeof(int32_t));
    c->no_prefix = o->no_prefix;
    if ((be && (!c->k || (o->n_vecs == 2 && !c->v))) || !c->len || !c->lo || !c->table || !c->nref || !c->free_ids ||
        alloc_prefix(c) != 0) {
        roe_kv_cache_free(c);
        return roe_fail(ROE_ERR_NOMEM, "kv cache: out of memory for %zu bytes", bytes * (size_t)o->n_vecs);
    }
    memset(c->table, 0xff, (size_t)o->max_seqs * (size_t)max_blocks * sizeof(int32_t));
    memset(c->bucket, 0xff, (size_t)c->n_buckets * sizeof(int32_t));
    memset(c->pbucket, 0xff, (size_t)c->n_buckets * sizeof(int32_t));
    c->lru_head = c->lru_tail = -1;
    fill_free(c, o->scramble);
    return ROE_OK;
}

int roe_kv_cache_blocks_needed(const struct roe_kv_cache *c, int seq, int n) {
    const int32_t *t = c->table + (size_t)seq * c->max_blocks;
    int need = 0;
    for (int i = c->lo[seq]; i < (n + c->block_size - 1) / c->block_size; i++) need += t[i] < 0;
    return need;
}

/* ---- prefix reuse: the hash table of registered blocks and the LRU list ---- */

static uint64_t block_hash(uint64_t prev, const int32_t *t, int n) {
    uint64_t h = prev ^ 0x6A09E667F3BCC909ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint32_t)t[i];
        h = splitmix(&h);
    }
    return h;
}

static void lru_unlink(struct roe_kv_cache *c, int b) {
    const int p = c->lru_prev[b], n = c->lru_next[b];
    if (p >= 0) c->lru_next[p] = n;
    else c->lru_head = n;
    if (n >= 0) c->lru_prev[n] = p;
    else c->lru_tail = p;
    c->n_lru--;
}

static void lru_push(struct roe_kv_cache *c, int b) { /* the most recently used end */
    c->lru_prev[b] = c->lru_tail;
    c->lru_next[b] = -1;
    if (c->lru_tail >= 0) c->lru_next[c->lru_tail] = b;
    else c->lru_head = b;
    c->lru_tail = b;
    c->n_lru++;
}

static void unregister(struct roe_kv_cache *c, int b) {
    int32_t *p = &c->bucket[c->bhash[b] & (uint64_t)(c->n_buckets - 1)];
    while (*p != b) p = &c->hnext[*p];
    *p = c->hnext[b];
    p = &c->pbucket[c->bparent[b] & (uint64_t)(c->n_buckets - 1)];
    while (*p != b) p = &c->pnext[*p];
    *p = c->pnext[b];
    c->cached[b] = 0;
}

/* The registered block with chain hash h and these tokens, or -1. */
static int find(const struct roe_kv_cache *c, uint64_t h, const int32_t *t) {
    for (int b = c->bucket[h & (uint64_t)(c->n_buckets - 1)]; b >= 0; b = c->hnext[b])
        if (c->bhash[b] == h && memcmp(c->btok + (size_t)b * c->block_size, t, (size_t)c->block_size * 4) == 0)
            return b;
    return -1;
}

/* A block for a new reference: a free one, else the least recently used registered one. */
static int take_block(struct roe_kv_cache *c) {
    int b;
    if (c->n_free) b = c->free_ids[--c->n_free];
    else {
        b = c->lru_head;
        lru_unlink(c, b);
        unregister(c, b);
        c->evictions++;
    }
    c->nref[b] = 1;
    return b;
}

static void drop_ref(struct roe_kv_cache *c, int b) {
    if (--c->nref[b] > 0) return;
    if (c->cached[b]) lru_push(c, b);
    else c->free_ids[c->n_free++] = b;
}

/* With a window: sequence seq gives back its blocks wholly before roe_kv_keep_from(len). */
static void trim(struct roe_kv_cache *c, int seq, int len) {
    int32_t *t = c->table + (size_t)seq * c->max_blocks;
    const int keep = roe_kv_keep_from(c, len);
    int i = c->lo[seq];
    for (; (i + 1) * c->block_size <= keep; i++) {
        if (t[i] >= 0) drop_ref(c, t[i]);
        t[i] = -1;
    }
    c->lo[seq] = i;
}

void roe_kv_cache_note(struct roe_kv_cache *c, int seq, int pos, int32_t t) {
    c->tok[(size_t)seq * c->max_ctx + pos] = t;
    if (c->window) trim(c, seq, pos + 1);
    if (c->no_prefix || (pos + 1) % c->block_size) return;
    const int i = pos / c->block_size;
    const int32_t *bt = c->tok + (size_t)seq * c->max_ctx + (size_t)i * c->block_size;
    uint64_t *ch = c->chain + (size_t)seq * c->max_blocks;
    ch[i] = block_hash(i ? ch[i - 1] : 0, bt, c->block_size);
    const int b = c->table[(size_t)seq * c->max_blocks + i];
    if (c->cached[b] || find(c, ch[i], bt) >= 0) return; /* found already, or another block holds it */
    c->bhash[b] = ch[i];
    c->bparent[b] = i ? ch[i - 1] : 0;
    memcpy(c->btok + (size_t)b * c->block_size, bt, (size_t)c->block_size * 4);
    const size_t k = ch[i] & (uint64_t)(c->n_buckets - 1), kp = c->bparent[b] & (uint64_t)(c->n_buckets - 1);
    c->hnext[b] = c->bucket[k];
    c->bucket[k] = b;
    c->pnext[b] = c->pbucket[kp];
    c->pbucket[kp] = b;
    c->cached[b] = 1;
}

/* The chain hash before sequence seq's next block (it holds a multiple of block_size positions). */
static uint64_t parent_of(const struct roe_kv_cache *c, int seq) {
    const int i = c->len[seq] / c->block_size;
    return i ? c->chain[(size_t)seq * c->max_blocks + i - 1] : 0;
}

int roe_kv_cache_partial_probe(const struct roe_kv_cache *c, int seq, const int32_t *tokens, int n, int32_t *src) {
    *src = -1;
    const int len = c->len[seq];
    if (c->no_prefix || c->window || len % c->block_size || n - 1 - len <= 0) return 0;
    const int most = n - 1 - len < c->block_size - 1 ? n - 1 - len : c->block_size - 1;
    const uint64_t h = parent_of(c, seq);
    int best = 0;
    for (int b = c->pbucket[h & (uint64_t)(c->n_buckets - 1)]; b >= 0; b = c->pnext[b]) {
        if (c->bparent[b] != h) continue;
        const int32_t *bt = c->btok + (size_t)b * c->block_size;
        int m = 0;
        while (m < most && bt[m] == tokens[len + m]) m++;
        if (m > best || (m == best && m > 0 && b < *src)) best = m, *src = b; /* ties: the lowest id */
    }
    if (best && roe_kv_cache_available(c) - (c->nref[*src] == 0) < 1) best = 0, *src = -1; /* no block to copy into */
    return best;
}

roe_status roe_kv_cache_extend(struct roe_kv_cache *c, int seq, int32_t src, int m) {
    const int len = c->len[seq];
    if (seq < 0 || seq >= c->max_seqs || c->window || len % c->block_size || m <= 0 || m >= c->block_size ||
        len + m > c->max_ctx || src < 0 || src >= c->n_blocks || !c->cached[src] || c->bparent[src] != parent_of(c, seq))
        return roe_fail(ROE_ERR_FORMAT, "kv cache: sequence %d (%d positions) cannot take %d positions of block %d", seq,
                        len, m, src);
    if (roe_kv_cache_available(c) - (c->nref[src] == 0) < 1)
        return roe_fail(ROE_ERR_OVERLOADED, "kv cache: no block free for sequence %d's partial prefix", seq);
    if (c->nref[src]++ == 0) lru_unlink(c, src); /* held while a block is taken: not the one evicted */
    const int b = take_block(c);
    c->table[(size_t)seq * c->max_blocks + len / c->block_size] = b;
    memcpy(c->tok + (size_t)seq * c->max_ctx + len, c->btok + (size_t)src * c->block_size, (size_t)m * sizeof(int32_t));
    if (c->be) {
        const size_t bytes = (size_t)m * c->kv_dim * c->elem;
        for (int l = 0; l < c->n_layers; l++) {
            const size_t d = (size_t)((((int64_t)b * c->n_layers + l) * c->block_size) * c->kv_dim) * c->elem;
            const size_t s = (size_t)((((int64_t)src * c->n_layers + l) * c->block_size) * c->kv_dim) * c->elem;
            c->be->ops->copy(c->be, (char *)c->k + d, (char *)c->k + s, bytes);
            if (c->v) c->be->ops->copy(c->be, (char *)c->v + d, (char *)c->v + s, bytes);
        }
    }
    drop_ref(c, src);
    c->len[seq] = len + m;
    c->hit_tokens += m;
    return ROE_OK;
}

int roe_kv_cache_probe(const struct roe_kv_cache *c, const int32_t *tokens, int most) {
    if (c->no_prefix || most < c->block_size) return 0;
    const int nb = most / c->block_size;
    int found = 0; /* blocks from 0 found without a gap (no window: the answer) */
    uint64_t h = 0;
    int best = 0, run_from = 0; /* with a window: the latest length whose kept blocks are all found */
    for (int i = 0; i < nb; i++) {
        const int32_t *bt = tokens + (size_t)i * c->block_size;
        h = block_hash(h, bt, c->block_size);
        const int hit = find(c, h, bt) >= 0;
        if (!c->window) {
            if (!hit) break;
            found = i + 1;
            continue;
        }
        if (!hit) run_from = i + 1; /* blocks [run_from, i] found */
        const int held = (i + 1) * c->block_size;
        if (hit && run_from <= roe_kv_keep_from(c, held) / c->block_size) best = held;
    }
    return c->window ? best : found * c->block_size;
}

int roe_kv_cache_take(struct roe_kv_cache *c, int seq, const int32_t *tokens, int held, int query) {
    int32_t *t = c->table + (size_t)seq * c->max_blocks;
    uint64_t *ch = c->chain + (size_t)seq * c->max_blocks;
    const int lo = roe_kv_keep_from(c, held) / c->block_size;
    for (int i = 0; i < held / c->block_size; i++) {
        const int32_t *bt = tokens + (size_t)i * c->block_size;
        ch[i] = block_hash(i ? ch[i - 1] : 0, bt, c->block_size);
        if (i < lo) continue; /* outside the window: not held */
        const int b = find(c, ch[i], bt);
        if (c->nref[b]++ == 0) lru_unlink(c, b);
        t[i] = b;
    }
    memcpy(c->tok + (size_t)seq * c->max_ctx, tokens, (size_t)held * sizeof(int32_t));
    c->len[seq] = held;
    c->lo[seq] = lo;
    c->hit_tokens += held;
    c->query_tokens += query;
    return held;
}

int roe_kv_cache_match(struct roe_kv_cache *c, int seq, const int32_t *tokens, int n) {
    if (c->no_prefix || c->len[seq] != 0 || n <= 1) return 0;
    return roe_kv_cache_take(c, seq, tokens, roe_kv_cache_probe(c, tokens, n - 1), n - 1);
}

roe_status roe_kv_cache_adopt_from(struct roe_kv_cache *c, int seq, int lo, uint64_t before, const int32_t *blocks,
                                   int n) {
    if (seq < 0 || seq >= c->max_seqs || c->len[seq] != 0 || n < 0 || n > c->max_blocks || lo < 0 || lo > n ||
        (n > 0 && lo != roe_kv_keep_from(c, n * c->block_size) / c->block_size) || (lo == 0 && before != 0))
        return roe_fail(ROE_ERR_FORMAT, "kv cache: sequence %d cannot start with cached blocks %d to %d (window %d)",
                        seq, lo, n, c->window);
    uint64_t h = before; /* the chain hash of every block before lo: each block must chain on it */
    for (int i = lo; i < n; i++) {
        const int b = blocks[i - lo];
        if (b < 0 || b >= c->n_blocks || !c->cached[b] ||
            c->bhash[b] != block_hash(h, c->btok + (size_t)b * c->block_size, c->block_size))
            return roe_fail(ROE_ERR_FORMAT, "kv cache: block %d is not the cached block %d of a prefix here", b, i);
        h = c->bhash[b];
    }
    int32_t *t = c->table + (size_t)seq * c->max_blocks;
    uint64_t *ch = c->chain + (size_t)seq * c->max_blocks;
    if (lo > 0) ch[lo - 1] = before; /* the blocks below lo are not held here (their tokens unknown) */
    for (int i = lo; i < n; i++) {
        const int b = blocks[i - lo];
        if (c->nref[b]++ == 0) lru_unlink(c, b);
        t[i] = b;
        ch[i] = c->bhash[b];
        memcpy(c->tok + (size_t)seq * c->max_ctx + (size_t)i * c->block_size, c->btok + (size_t)b * c->block_size,
               (size_t)c->block_size * sizeof(int32_t));
    }
    c->len[seq] = n * c->block_size;
    c->lo[seq] = lo;
    c->hit_tokens += (long)n * c->block_size;
    return ROE_OK;
}

roe_status roe_kv_cache_adopt(struct roe_kv_cache *c, int seq, const int32_t *blocks, int n) {
    if (c->window) /* the blocks before the window are not held: roe_kv_cache_adopt_from */
        return roe_fail(ROE_ERR_FORMAT, "kv cache: a sliding-window pool adopts a prefix from its window (sequence %d)",
                        seq);
    return roe_kv_cache_adopt_from(c, seq, 0, 0, blocks, n);
}

int roe_kv_cache_lookup(const struct roe_kv_cache *c, const int32_t *tokens, int n, int *unreferenced) {
    const int held = n > 1 ? roe_kv_cache_probe(c, tokens, n - 1) : 0;
    int unref = 0;
    uint64_t h = 0;
    for (int i = 0; i < held / c->block_size; i++) {
        const int32_t *bt = tokens + (size_t)i * c->block_size;
        h = block_hash(h, bt, c->block_size);
        if (i < roe_kv_keep_from(c, held) / c->block_size) continue; /* outside the window: not taken */
        unref += c->nref[find(c, h, bt)] == 0;
    }
    if (unreferenced) *unreferenced = unref;
    return held;
}

roe_status roe_kv_cache_reserve(struct roe_kv_cache *c, int seq, int n) {
    const int need = roe_kv_cache_blocks_needed(c, seq, n);
    if (need > roe_kv_cache_available(c))
        return roe_fail(ROE_ERR_OVERLOADED,
                        "kv cache: sequence %d needs %d more blocks for %d positions, %d of %d are free "
                        "(--kv-memory)", seq, need, n, roe_kv_cache_available(c), c->n_blocks);
    int32_t *t = c->table + (size_t)seq * c->max_blocks;
    for (int i = c->lo[seq]; need && i < (n + c->block_size - 1) / c->block_size; i++)
        if (t[i] < 0) t[i] = take_block(c);
    return ROE_OK;
}

void roe_kv_cache_reset(struct roe_kv_cache *c, int seq) {
    int32_t *t = c->table + (size_t)seq * c->max_blocks;
    for (int i = 0; i < c->max_blocks; i++) {
        if (t[i] >= 0) drop_ref(c, t[i]);
        t[i] = -1;
    }
    c->len[seq] = 0;
    c->lo[seq] = 0;
}

roe_status roe_kv_cache_copy(struct roe_kv_cache *c, int dst, int src, int len) {
    roe_kv_cache_reset(c, dst);
    const int32_t *ts = c->table + (size_t)src * c->max_blocks;
    int32_t *td = c->table + (size_t)dst * c->max_blocks;
    const int full = len / c->block_size, part = len % c->block_size;
    const int lo = roe_kv_keep_from(c, len) / c->block_size > c->lo[src] ? roe_kv_keep_from(c, len) / c->block_size
                                                                          : c->lo[src];
    const int reads = c->window > 0 && len >= c->window ? len - c->window + 1 : 0; /* dst's next row */
    if (lo * c->block_size > reads)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "kv cache: sequence %d cannot start from %d positions of sequence %d: its sliding-window "
                        "layers gave back positions before %d (window %d)", dst, len, src, c->lo[src] * c->block_size,
                        c->window);
    c->lo[dst] = lo;
    for (int i = lo; i < full; i++) { /* full blocks are never written again: shared */
        td[i] = ts[i];
        c->nref[td[i]]++;
    }
    memcpy(c->tok + (size_t)dst * c->max_ctx, c->tok + (size_t)src * c->max_ctx, (size_t)len * sizeof(int32_t));
    memcpy(c->chain + (size_t)dst * c->max_blocks, c->chain + (size_t)src * c->max_blocks,
           (size_t)full * sizeof(uint64_t));
    if (part) {
        const roe_status st = roe_kv_cache_reserve(c, dst, len);
        if (st != ROE_OK) {
            roe_kv_cache_reset(c, dst);
            return st;
        }
        c->len[dst] = len;
        if (!c->be) return ROE_OK; /* a mirror: no elements */
        const size_t bytes = (size_t)part * c->kv_dim * c->elem;
        for (int l = 0; l < c->n_layers; l++) {
            const size_t d = (size_t)roe_kv_row(c, dst, l, full * c->block_size) * c->kv_dim * c->elem;
            const size_t s = (size_t)roe_kv_row(c, src, l, full * c->block_size) * c->kv_dim * c->elem;
            c->be->ops->copy(c->be, (char *)c->k + d, (char *)c->k + s, bytes);
            if (c->v) c->be->ops->copy(c->be, (char *)c->v + d, (char *)c->v + s, bytes);
        }
    }
    c->len[dst] = len;
    return ROE_OK;
}

void roe_kv_cache_trim(struct roe_kv_cache *c, int seq, int n) {
    int32_t *t = c->table + (size_t)seq * c->max_blocks;
    for (int i = (n + c->block_size - 1) / c->block_size; i < c->max_blocks; i++) {
        if (t[i] >= 0) drop_ref(c, t[i]);
        t[i] = -1;
    }
}

void roe_kv_cache_free(struct roe_kv_cache *c) {
    if (c->be) {
        if (c->k) c->be->ops->free(c->be, c->k);
        if (c->v) c->be->ops->free(c->be, c->v);
    }
    roe_free(c->len);
    roe_free(c->lo);
    roe_free(c->table);
    roe_free(c->nref);
    roe_free(c->free_ids);
    void *prefix[] = {c->tok,    c->chain,    c->bhash,   c->btok,   c->cached, c->hnext,
                      c->bucket, c->lru_prev, c->lru_next, c->bparent, c->pnext, c->pbucket};
    for (size_t i = 0; i < sizeof prefix / sizeof prefix[0]; i++) roe_free(prefix[i]);
    memset(c, 0, sizeof *c);
}
