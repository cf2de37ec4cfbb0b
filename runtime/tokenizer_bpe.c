/*
 * tokenizer_bpe.c — the tokenizer's hash tables and the BPE merge loop.
 *
 * The merge rule is Hugging Face's (models/bpe/word.rs, merge_all): keep a priority queue
 * of adjacent pairs keyed by (merge rank, position); pop the lowest, skip it if stale,
 * merge, and queue the two pairs the new symbol forms with its neighbours. The result is
 * "repeatedly merge the leftmost occurrence of the lowest-ranked pair".
 */
#include <assert.h>
#include <string.h>

#include "base/alloc.h"
#include "tokenizer_impl.h"

/* ---- hash tables --------------------------------------------------------------------------- */

static uint64_t roe__hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix for the low bits */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static uint64_t roe__hash_u64(uint64_t x) {
    x ^= x >> 30; /* splitmix64 finalizer */
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static roe_status roe__table_cap(size_t max_count, size_t slot_size, const char *what,
                                 size_t *cap) {
    size_t c = 16, bytes;
    while (c < 2 * max_count) {
        if (c > SIZE_MAX / 4)
            return roe_fail(ROE_ERR_NOMEM, "tokenizer: %s: too many entries", what);
        c *= 2;
    }
    if (!roe_size_mul(c, slot_size, &bytes))
        return roe_fail(ROE_ERR_NOMEM, "tokenizer: %s: too many entries", what);
    *cap = c;
    return ROE_OK;
}

roe_status roe__strmap_init(roe__strmap *m, size_t max_count, const char *what) {
    memset(m, 0, sizeof *m);
    ROE_TRY(roe__table_cap(max_count, sizeof *m->slots, what, &m->cap));
    m->slots = roe_calloc(m->cap, sizeof *m->slots);
    if (!m->slots) return roe_fail(ROE_ERR_NOMEM, "tokenizer: allocating the %s table", what);
    m->max_count = max_count;
    return ROE_OK;
}

void roe__strmap_free(roe__strmap *m) {
    roe_free(m->slots);
    memset(m, 0, sizeof *m);
}

int roe__strmap_put(roe__strmap *m, const char *key, size_t len, int32_t value, int32_t *old) {
    assert(m->count < m->max_count && len <= UINT32_MAX);
    size_t mask = m->cap - 1;
    for (size_t i = roe__hash_bytes(key, len) & mask;; i = (i + 1) & mask) {
        struct roe__strmap_slot *s = &m->slots[i];
        if (!s->key) {
            s->key = key;
            s->len = (uint32_t)len;
            s->value = value;
            m->count++;
            return 1;
        }
        if (s->len == len && memcmp(s->key, key, len) == 0) {
            if (old) *old = s->value;
            return 0;
        }
    }
}

int32_t roe__strmap_get(const roe__strmap *m, const char *key, size_t len) {
    if (m->cap == 0) return -1;
    size_t mask = m->cap - 1;
    for (size_t i = roe__hash_bytes(key, len) & mask;; i = (i + 1) & mask) {
        const struct roe__strmap_slot *s = &m->slots[i];
        if (!s->key) return -1;
        if (s->len == len && memcmp(s->key, key, len) == 0) return s->value;
    }
}

roe_status roe__u64map_init(roe__u64map *m, size_t max_count, const char *what) {
    memset(m, 0, sizeof *m);
    ROE_TRY(roe__table_cap(max_count, sizeof *m->slots, what, &m->cap));
    m->slots = roe_malloc(m->cap * sizeof *m->slots);
    if (!m->slots) return roe_fail(ROE_ERR_NOMEM, "tokenizer: allocating the %s table", what);
    for (size_t i = 0; i < m->cap; i++)
        m->slots[i].key = UINT64_MAX;
    m->max_count = max_count;
    return ROE_OK;
}

void roe__u64map_free(roe__u64map *m) {
    roe_free(m->slots);
    memset(m, 0, sizeof *m);
}

void roe__u64map_put(roe__u64map *m, uint64_t key, int32_t a, int32_t b) {
    assert(key != UINT64_MAX);
    size_t mask = m->cap - 1;
    for (size_t i = roe__hash_u64(key) & mask;; i = (i + 1) & mask) {
        struct roe__u64map_slot *s = &m->slots[i];
        if (s->key == UINT64_MAX) {
            assert(m->count < m->max_count);
            m->count++;
            s->key = key;
        }
        if (s->key == key) {
            s->a = a;
            s->b = b;
            return;
        }
    }
}

const struct roe__u64map_slot *roe__u64map_get(const roe__u64map *m, uint64_t key) {
    if (m->cap == 0) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = roe__hash_u64(key) & mask;; i = (i + 1) & mask) {
        const struct roe__u64map_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

/* ---- BPE ----------------------------------------------------------------------------------- */

struct roe__merge_item {
    int32_t rank;
    int32_t pos;    /* index of the left symbol */
    int32_t new_id; /* the merged token: detects stale entries */
};

roe_status roe__ids_push(struct roe__ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 256;
        int32_t *v = roe_realloc(ids->v, cap * sizeof *v);
        if (!v)
            return roe_fail(ROE_ERR_NOMEM, "tokenizer: encode: growing the id list to %zu", cap);
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return ROE_OK;
}

void roe__bpe_scratch_free(struct roe__bpe_scratch *s) {
    roe_free(s->id);
    roe_free(s->prev);
    roe_free(s->next);
    roe_free(s->heap);
    memset(s, 0, sizeof *s);
}

static roe_status roe__bpe_reserve(struct roe__bpe_scratch *s, size_t n) {
    if (n <= s->cap) return ROE_OK;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n)
        cap *= 2;
    /* A word of n symbols makes at most n-1 merges, each queuing at most 2 pairs. */
    size_t heap_cap = 3 * cap;
    if (cap > INT32_MAX / 4)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "tokenizer: encode: a pre-token of %zu bytes is too long", n);
    int32_t *id = roe_realloc(s->id, cap * sizeof *id);
    if (id) s->id = id;
    int32_t *prev = roe_realloc(s->prev, cap * sizeof *prev);
    if (prev) s->prev = prev;
    int32_t *next = roe_realloc(s->next, cap * sizeof *next);
    if (next) s->next = next;
    struct roe__merge_item *heap = roe_realloc(s->heap, heap_cap * sizeof *heap);
    if (heap) s->heap = heap;
    if (!id || !prev || !next || !heap)
        return roe_fail(ROE_ERR_NOMEM, "tokenizer: encode: BPE scratch for %zu symbols", cap);
    s->cap = cap;
    s->heap_cap = heap_cap;
    return ROE_OK;
}

static int roe__merge_less(const struct roe__merge_item *a, const struct roe__merge_item *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void roe__heap_push(struct roe__merge_item *h, size_t *n, struct roe__merge_item it) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!roe__merge_less(&it, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = it;
}

static struct roe__merge_item roe__heap_pop(struct roe__merge_item *h, size_t *n) {
    struct roe__merge_item top = h[0], last = h[--(*n)];
    size_t i = 0, len = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= len) break;
        if (c + 1 < len && roe__merge_less(&h[c + 1], &h[c])) c++;
        if (!roe__merge_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (len > 0) h[i] = last;
    return top;
}

/* Queues the pair (symbol pos, its next) if the merges know it. */
static void roe__queue_pair(const roe_tokenizer *t, struct roe__bpe_scratch *s, size_t *hn,
                            int32_t pos) {
    int32_t nx = s->next[pos];
    if (nx < 0) return;
    uint64_t key = (uint64_t)(uint32_t)s->id[pos] << 32 | (uint32_t)s->id[nx];
    const struct roe__u64map_slot *m = roe__u64map_get(&t->merges, key);
    if (!m) return;
    assert(*hn < s->heap_cap);
    roe__heap_push(s->heap, hn, (struct roe__merge_item){m->a, pos, m->b});
}

/* Initial symbols of a word, as in Hugging Face's BPE::merge_word: one per byte (one per
 * mapped char); an unknown one becomes byte-fallback tokens, else [UNK] (fused if
 * fuse_unk), else is dropped. */
static size_t roe__initial_symbols(const roe_tokenizer *t, const uint8_t *w, size_t n,
                                   int32_t *sym) {
    size_t k = 0;
    int32_t pending_unk = 0; /* an [UNK] not yet emitted */
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[w[i]];
        if (id >= 0) {
            if (pending_unk) sym[k++] = t->unk_id;
            pending_unk = 0;
            sym[k++] = id;
            continue;
        }
        if (t->byte_fallback && t->fallback_n[w[i]]) {
            /* Hugging Face appends these without flushing a pending [UNK] first. */
            for (int j = 0; j < t->fallback_n[w[i]]; j++)
                sym[k++] = t->fallback[w[i]][j];
            continue;
        }
        if (t->unk_id >= 0) {
            if (pending_unk && !t->fuse_unk) sym[k++] = t->unk_id;
            pending_unk = 1;
        }
    }
    if (pending_unk) sym[k++] = t->unk_id;
    return k;
}

/* The same over chars (no ByteLevel): one symbol per char of the vocab's alphabet; a char
 * outside it becomes the "<0xXX>" tokens of its UTF-8 if byte_fallback has them all, else
 * [UNK] (fused with a preceding [UNK] if fuse_unk), else is dropped. */
static size_t roe__initial_chars(const roe_tokenizer *t, const char *w, size_t n, int32_t *sym) {
    size_t k = 0;
    int32_t pending_unk = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = roe__utf8_decode(w, n, i, &cp);
        const struct roe__u64map_slot *e = roe__u64map_get(&t->char_id, cp);
        if (e) {
            if (pending_unk) sym[k++] = t->unk_id;
            pending_unk = 0;
            sym[k++] = e->a;
            i += len;
            continue;
        }
        int all = t->byte_fallback;
        for (size_t j = 0; j < len && all; j++)
            all = t->byte_tok[(uint8_t)w[i + j]] >= 0;
        if (all) { /* appended without flushing a pending [UNK], as Hugging Face does */
            for (size_t j = 0; j < len; j++)
                sym[k++] = t->byte_tok[(uint8_t)w[i + j]];
        } else if (t->unk_id >= 0) {
            if (pending_unk && !t->fuse_unk) sym[k++] = t->unk_id;
            pending_unk = 1;
        }
        i += len;
    }
    if (pending_unk) sym[k++] = t->unk_id;
    return k;
}

/* ignore_merges: the whole word, if the model's vocab has it. */
static int32_t roe__whole_word(const roe_tokenizer *t, const char *w, size_t n) {
    if (t->byte_level) return roe__strmap_get(&t->vocab_bytes, w, n);
    int32_t id = roe__strmap_get(&t->by_text, w, n); /* by_text also holds added tokens */
    return id >= 0 && t->tokens[id].in_vocab ? id : -1;
}

roe_status roe__bpe_word(const roe_tokenizer *t, struct roe__bpe_scratch *s, const char *w,
                         size_t n, struct roe__ids *out) {
    if (n == 0) return ROE_OK;
    if (t->ignore_merges) {
        int32_t id = roe__whole_word(t, w, n);
        if (id >= 0) return roe__ids_push(out, id);
    }
    /* One symbol per byte, or up to two "<0xXX>" per byte with byte_fallback. */
    size_t cap_needed = n;
    if (t->byte_level && t->byte_fallback && !roe_size_mul(n, 2, &cap_needed)) cap_needed = SIZE_MAX;
    ROE_TRY(roe__bpe_reserve(s, cap_needed));

    size_t n_sym = t->byte_level ? roe__initial_symbols(t, (const uint8_t *)w, n, s->id)
                                 : roe__initial_chars(t, w, n, s->id);
    for (size_t i = 0; i < n_sym; i++) {
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n_sym ? (int32_t)i + 1 : -1;
    }

    /* Queue every adjacent pair, then merge the lowest (rank, pos) until none is left. */
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n_sym; i++)
        roe__queue_pair(t, s, &hn, (int32_t)i);
    while (hn > 0) {
        struct roe__merge_item top = roe__heap_pop(s->heap, &hn);
        int32_t pos = top.pos, nx = s->next[pos];
        if (s->id[pos] < 0 || nx < 0) continue; /* merged away, or now the last symbol */
        uint64_t key = (uint64_t)(uint32_t)s->id[pos] << 32 | (uint32_t)s->id[nx];
        const struct roe__u64map_slot *m = roe__u64map_get(&t->merges, key);
        if (!m || m->b != top.new_id) continue; /* stale: a neighbour changed */
        s->id[pos] = top.new_id;
        s->id[nx] = -1; /* removed */
        s->next[pos] = s->next[nx];
        if (s->next[nx] >= 0) s->prev[s->next[nx]] = pos;
        if (s->prev[pos] >= 0) roe__queue_pair(t, s, &hn, s->prev[pos]);
        roe__queue_pair(t, s, &hn, pos);
    }

    for (int32_t i = n_sym ? 0 : -1; i >= 0; i = s->next[i])
        ROE_TRY(roe__ids_push(out, s->id[i]));
    return ROE_OK;
}
