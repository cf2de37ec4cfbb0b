/*
 * cluster.c — engine steps across ranks; see cluster.h.
 *
 * Per-sequence state (max_seqs slots), kept identically on every rank from the plans:
 *   home[seq]            its home rank (-1 until first used)
 *   seed / roster[seq]   bound from its RoE sample rows (sample 0 never reads them)
 *   clean[seq]           [vocab] its kept clean logits (home rank only)
 * and on the coordinator only: len[seq] (its clean history on the home rank, to validate
 * plans before they are sent) and dirty[seq] (its binding must go out with the next plan).
 *
 * Message capacities (fixed at creation from the engine's limits, R = max_rows, S =
 * max_seqs, L = layers, V = vocab): a plan is at most 512 + 64 R + S (4 L + 96) bytes;
 * a reply at most 4 R V + 4096 (its outputs are at most one vocab row per row); the
 * coordinator's gather of all replies at most 4 R V + 4096 N, since the rows of a step,
 * summed over ranks, are at most R.
 */
#include "cluster.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "aggregate.h"
#include "base/alloc.h"
#include "control.h"
#include "mor.h"

enum { BIND_DIRTY = 1, BIND_RESET = 2, BIND_COPY = 4 };

struct roe_cluster {
    roe_engine *e;
    roe_comm *comm;
    int me, N, V, L, R, S, ctx;
    uint64_t step;
    /* per sequence slot */
    int *home;
    int *len;
    int *next;             /* validation scratch: clean positions as the step extends them */
    uint64_t *stamp;       /* step in which seq's sample rows were last bound */
    int *copy_from;        /* BIND_COPY: the slot and length its cache starts from */
    int *copy_len;
    uint8_t *dirty;
    uint8_t *bound;
    uint8_t *has_roster;
    uint64_t *seed;
    struct roe_roster *roster;
    float *clean;          /* [S, V] */
    /* the local part of a step */
    struct roe_row *grows; /* [R] the plan's rows (other ranks) */
    struct roe_group *wgroups; /* [R] the plan's groups (other ranks) */
    struct roe_row *lrows; /* [R] this rank's rows */
    int *lidx;             /* [R] global row -> its logits row here, or -1 */
    float *logits;         /* [R, V] */
    float *rout;           /* [R, V] other ranks: their group outputs, in plan order */
    const float **lp;      /* [ROE_MAX_SAMPLES + 1] */
    float *scratch;        /* [V] */
    size_t *goff;          /* [R + 1] output offset of each group */
    /* the plan and reply messages (several ranks) */
    uint32_t *p_seq, *p_pos, *p_sample, *p_flags, *p_gfirst, *p_gn, *p_gmode; /* [R] */
    int32_t *p_token;      /* [R] */
    struct roe_plan_bind *pbind; /* [S] */
    struct roe_control_io io;
    /* coordinator with several ranks: the bookkeeping of every other rank's block pool, kept
     * by the same calls in the same order as that rank's engine makes (mirror[0] unused) */
    struct roe_kv_cache *mirror; /* [N] */
    struct roe_kv_cache *mirror_w; /* [N] their sliding-window pools (NULL: the model has none) */
    uint32_t *log;               /* the pool log: their operations since the last plan */
    size_t n_log, log_cap;
};

int roe_cluster_size(const roe_cluster *cl) { return cl->N; }

size_t roe_group_out_floats(const struct roe_group *g, int vocab) {
    return (g->mode & ROE_GROUP_MEAN) ? (size_t)vocab : (size_t)g->n * vocab;
}

roe_status roe_home_policy_parse(const char *s, roe_home_policy *out) {
    if (!s || strcmp(s, "round-robin") == 0) *out = ROE_HOME_ROUND_ROBIN;
    else if (strcmp(s, "least-loaded") == 0) *out = ROE_HOME_LEAST_LOADED;
    else
        return roe_fail(ROE_ERR_INVALID_ARG, "home policy '%s' is not round-robin or least-loaded (ROE_HOME_POLICY)", s);
    return ROE_OK;
}

/* The cluster's arrays (S = max_seqs, R = max_rows, V = vocabulary). */
#define CLUSTER_ARRAYS(cl, S, R, V)                                                                \
    {ROE_ARRAY((cl)->home, S),        ROE_ARRAY((cl)->len, S),          ROE_ARRAY((cl)->next, S),        \
     ROE_ARRAY((cl)->stamp, S),       ROE_ARRAY((cl)->dirty, S),        ROE_ARRAY((cl)->bound, S),       \
     ROE_ARRAY((cl)->copy_from, S),   ROE_ARRAY((cl)->copy_len, S),                                      \
     ROE_ARRAY((cl)->has_roster, S),  ROE_ARRAY((cl)->seed, S),         ROE_ARRAY((cl)->roster, S),      \
     ROE_ARRAY((cl)->clean, (S) * (V)), ROE_ARRAY((cl)->grows, R),      ROE_ARRAY((cl)->wgroups, R),     \
     ROE_ARRAY((cl)->lrows, R),       ROE_ARRAY((cl)->lidx, R),         ROE_ARRAY((cl)->logits, (R) * (V)), \
     ROE_ARRAY((cl)->lp, ROE_MAX_SAMPLES + 1), ROE_ARRAY((cl)->scratch, V), ROE_ARRAY((cl)->goff, (R) + 1)}
/* ... and with several ranks, the plan's (rout: other ranks only). */
#define PLAN_ARRAYS(cl, S, R, V)                                                                   \
    {ROE_ARRAY((cl)->p_seq, R),    ROE_ARRAY((cl)->p_pos, R),    ROE_ARRAY((cl)->p_sample, R),       \
     ROE_ARRAY((cl)->p_flags, R),  ROE_ARRAY((cl)->p_gfirst, R), ROE_ARRAY((cl)->p_gn, R),           \
     ROE_ARRAY((cl)->p_gmode, R),  ROE_ARRAY((cl)->p_token, R),  ROE_ARRAY((cl)->pbind, S),          \
     ROE_ARRAY((cl)->rout, (cl)->me ? (R) * (V) : 1)}

void roe_cluster_free(roe_cluster *cl) {
    if (!cl) return;
    for (int r = 1; cl->mirror && r < cl->N; r++) roe_kv_cache_free(&cl->mirror[r]);
    for (int r = 1; cl->mirror_w && r < cl->N; r++) roe_kv_cache_free(&cl->mirror_w[r]);
    roe_free(cl->mirror);
    roe_free(cl->mirror_w);
    roe_free(cl->log);
    const struct roe_array arrays[] = CLUSTER_ARRAYS(cl, 0, 0, 0), plan[] = PLAN_ARRAYS(cl, 0, 0, 0);
    roe_arrays_free(arrays, ROE_N_OF(arrays));
    roe_arrays_free(plan, ROE_N_OF(plan));
    roe_control_io_free(&cl->io);
    roe_free(cl);
}

/* Several ranks: the plan's arrays and the message buffers. A plan is at most
 * 512 + 64 R + S (4 L + 96) bytes; a reply at most 4 R V + 4096; the coordinator's gather of
 * all replies at most 4 R V + 4096 N (the rows of a step over all ranks are at most R). */
static roe_status open_messages(roe_cluster *cl) {
    const size_t R = (size_t)cl->R, S = (size_t)cl->S, V = (size_t)cl->V, L = (size_t)cl->L, N = (size_t)cl->N;
    const struct roe_array plan[] = PLAN_ARRAYS(cl, S, R, V);
    ROE_TRY(roe_arrays_alloc(plan, ROE_N_OF(plan), "cluster"));
    const size_t plan_cap = 512 + 64 * R + S * (4 * L + 96), reply_cap = 4 * R * V + 4096;
    if (cl->me == 0) {
        const size_t gather = 4 * R * V + 4096 * N;
        return roe_control_io_init(&cl->io, cl->N, plan_cap > gather ? plan_cap : gather, reply_cap + 65536,
                                   cl->S, cl->L);
    }
    return roe_control_io_init(&cl->io, cl->N, plan_cap > reply_cap ? plan_cap : reply_cap, 65536, 0, cl->L);
}

/* The bookkeeping of a pool shaped as kv (no elements: a mirror). */
static struct roe_kv_cache_opts mirror_opts(const struct roe_kv_cache *kv) {
    return (struct roe_kv_cache_opts){
        .max_seqs = kv->max_seqs, .n_layers = kv->n_layers, .max_ctx = kv->max_ctx, .kv_dim = kv->kv_dim,
        .n_vecs = kv->n_vecs, .block_size = kv->block_size, .dtype = kv->dtype, .bytes = roe_kv_cache_bytes(kv),
        .window = kv->window, .min_blocks = kv->n_blocks, .no_prefix = kv->no_prefix};
}

/* Coordinator: the mirrors of the other ranks' pools (the main one and, for a model with
 * sliding-window layers beside full ones, the window pool), shaped as its own (every rank's
 * pools are the same: the session spec carries the bytes, block size and dtype, the window pool
 * is sized by the engine's limits alike; the other ranks never scramble their blocks). */
static roe_status open_mirrors(roe_cluster *cl) {
    const struct roe_kv_cache *kv = roe_engine_kv(cl->e), *kw = roe_engine_kv_window(cl->e);
    const struct roe_kv_cache_opts ko = mirror_opts(kv);
    cl->mirror = roe_calloc((size_t)cl->N, sizeof *cl->mirror);
    if (!cl->mirror) return roe_fail(ROE_ERR_NOMEM, "cluster: out of memory");
    for (int r = 1; r < cl->N; r++) ROE_TRY(roe_kv_cache_init(&cl->mirror[r], NULL, &ko));
    if (kw) {
        const struct roe_kv_cache_opts wo = mirror_opts(kw);
        cl->mirror_w = roe_calloc((size_t)cl->N, sizeof *cl->mirror_w);
        if (!cl->mirror_w) return roe_fail(ROE_ERR_NOMEM, "cluster: out of memory");
        for (int r = 1; r < cl->N; r++) ROE_TRY(roe_kv_cache_init(&cl->mirror_w[r], NULL, &wo));
    }
    cl->log_cap = (size_t)cl->S * (size_t)(16 + kv->max_blocks);
    cl->log = roe_malloc(cl->log_cap * sizeof *cl->log);
    return cl->log ? ROE_OK : roe_fail(ROE_ERR_NOMEM, "cluster: out of memory");
}

/* ---- the pool log ----
 * Rank 0 keeps a mirror of every other rank's block pool (the bookkeeping, no elements) so that
 * admission counts their blocks and prefix reuse finds their cached blocks. A mirror stays that
 * rank's pool, block ids included, because both see the same calls in the same order: every
 * reset, fork and prefix hit is made on the mirror when rank 0 decides it and logged; the next
 * plan carries the log, and the rank replays it before its rows, in that order; each step's
 * reservations and registrations are then made by its engine and by mirror_step alike. */
enum { POOL_RESET = 0, POOL_COPY = 1, POOL_ADOPT = 2, POOL_ADOPT_FROM = 3, POOL_EXTEND = 4, POOL_HEAD = 6 };

/* Logs an operation: kind, rank, seq, a, b, then n words: pre[0, npre) and blocks[0, n - npre). */
static roe_status log_op_pre(roe_cluster *cl, int kind, int rank, int seq, int a, int b, const uint32_t *pre, int npre,
                             const int32_t *blocks, int n) {
    const size_t need = cl->n_log + POOL_HEAD + (size_t)n;
    if (need > cl->log_cap) { /* rare: many operations on one slot between two steps */
        uint32_t *p = roe_realloc(cl->log, 2 * need * sizeof *p);
        if (!p) return roe_fail(ROE_ERR_NOMEM, "cluster: out of memory for the pool log");
        cl->log = p;
        cl->log_cap = 2 * need;
    }
    uint32_t *o = cl->log + cl->n_log;
    o[0] = (uint32_t)kind, o[1] = (uint32_t)rank, o[2] = (uint32_t)seq, o[3] = (uint32_t)a, o[4] = (uint32_t)b;
    o[5] = (uint32_t)n;
    for (int i = 0; i < npre; i++) o[POOL_HEAD + i] = pre[i];
    for (int i = npre; i < n; i++) o[POOL_HEAD + i] = (uint32_t)blocks[i - npre];
    cl->n_log = need;
    return ROE_OK;
}

static roe_status log_op(roe_cluster *cl, int kind, int rank, int seq, int a, int b, const int32_t *blocks, int n) {
    return log_op_pre(cl, kind, rank, seq, a, b, NULL, 0, blocks, n);
}

/* Another rank: the log's operations on this rank's pool, in order. */
static roe_status replay_log(roe_cluster *cl, const uint32_t *o, size_t n) {
    int32_t blocks[1024];
    for (size_t i = 0; i < n;) {
        if (n - i < POOL_HEAD || o[i + 5] > n - i - POOL_HEAD)
            return roe_fail(ROE_ERR_FORMAT, "rank %d: the plan's pool log from rank 0 is truncated", cl->me);
        const uint32_t kind = o[i], rank = o[i + 1], seq = o[i + 2], a = o[i + 3], b = o[i + 4], nb = o[i + 5];
        const uint32_t *ids = o + i + POOL_HEAD;
        i += POOL_HEAD + nb;
        if (rank != (uint32_t)cl->me) continue;
        if (seq >= (uint32_t)cl->S || kind > POOL_EXTEND || (kind == POOL_COPY && a >= (uint32_t)cl->S) ||
            (kind == POOL_EXTEND && (a > (uint32_t)INT32_MAX || b > (uint32_t)INT32_MAX)) ||
            (kind == POOL_ADOPT_FROM && (nb < 2 || a > 1 || b > (uint32_t)INT32_MAX)) ||
            nb > sizeof blocks / sizeof blocks[0])
            return roe_fail(ROE_ERR_FORMAT, "rank %d: the plan's pool log from rank 0 has a bad operation (%u on %u)",
                            cl->me, kind, seq);
        roe_status st = ROE_OK;
        if (kind == POOL_RESET) roe_engine_reset_seq(cl->e, (int)seq);
        else if (kind == POOL_COPY) st = b > (uint32_t)INT32_MAX ? ROE_ERR_FORMAT : roe_engine_copy_seq(cl->e, (int)seq, (int)a, (int)b);
        else if (kind == POOL_EXTEND) st = roe_engine_prefix_extend(cl->e, (int)seq, (int32_t)a, (int)b);
        else { /* POOL_ADOPT: main pool, blocks from 0; POOL_ADOPT_FROM: pool a, blocks from b, after hash ids[0, 2) */
            const uint32_t skip = kind == POOL_ADOPT_FROM ? 2 : 0, lo = kind == POOL_ADOPT_FROM ? b : 0;
            for (uint32_t k = skip; k < nb; k++)
                blocks[k - skip] = ids[k] > (uint32_t)INT32_MAX ? -1 : (int32_t)ids[k];
            const uint64_t before = skip ? (uint64_t)ids[0] | (uint64_t)ids[1] << 32 : 0;
            st = roe_engine_prefix_adopt(cl->e, (int)seq, kind == POOL_ADOPT_FROM ? (int)a : 0, (int)lo, before, blocks,
                                         (int)(lo + nb - skip));
        }
        if (st != ROE_OK)
            return roe_fail_context(ROE_ERR_FORMAT, "rank %d: the pool operation %u on sequence %u from rank 0 does not "
                                    "apply here (rank 0's mirror of this pool is out of step)", cl->me, kind, seq);
    }
    return ROE_OK;
}

const struct roe_kv_cache *roe_cluster_kv(const roe_cluster *cl, int home) {
    if (home == cl->me || home < 0 || home >= cl->N || !cl->mirror) return roe_engine_kv(cl->e);
    return &cl->mirror[home];
}

/* The pool of `home` that calls on the coordinator change: its engine's, or a mirror. */
static struct roe_kv_cache *mirror_of(roe_cluster *cl, int home) {
    return home != cl->me && cl->mirror && home > 0 && home < cl->N ? &cl->mirror[home] : NULL;
}
/* ... and of its sliding-window pool (NULL: no mirror, or the model has no second pool). */
static struct roe_kv_cache *mirror_w_of(roe_cluster *cl, int home) {
    return mirror_of(cl, home) && cl->mirror_w ? &cl->mirror_w[home] : NULL;
}

roe_status roe_cluster_create(roe_engine *e, roe_cluster **out) {
    *out = NULL;
    const struct roe_engine_opts *o = roe_engine_get_opts(e);
    const struct roe_model_config *c = &roe_engine_model(e)->cfg;
    roe_cluster *cl = roe_calloc(1, sizeof *cl);
    if (!cl) return roe_fail(ROE_ERR_NOMEM, "cluster: out of memory");
    cl->e = e;
    cl->comm = roe_engine_comm(e);
    cl->me = roe_comm_rank(cl->comm);
    cl->N = roe_comm_size(cl->comm);
    cl->V = c->vocab_size;
    cl->L = c->n_layers;
    cl->R = o->max_rows;
    cl->S = o->max_seqs;
    cl->ctx = o->max_ctx;
    const size_t R = (size_t)cl->R, S = (size_t)cl->S, V = (size_t)cl->V;
    const struct roe_array arrays[] = CLUSTER_ARRAYS(cl, S, R, V);
    roe_status st = roe_arrays_alloc(arrays, ROE_N_OF(arrays), "cluster");
    if (st == ROE_OK && cl->N > 1) st = open_messages(cl);
    if (st == ROE_OK && cl->N > 1 && cl->me == 0) st = open_mirrors(cl);
    if (st != ROE_OK) {
        roe_cluster_free(cl);
        return st;
    }
    for (int s = 0; s < cl->S; s++) cl->home[s] = -1;
    *out = cl;
    return ROE_OK;
}

void roe_plan_homes(roe_home_policy policy, int N, const double *cost, int n, int *home, double *load) {
    for (int i = 0; i < n; i++) home[i] = policy == ROE_HOME_ROUND_ROBIN ? i % N : -1;
    if (policy == ROE_HOME_ROUND_ROBIN) return;
    for (int r = 0; r < N; r++) load[r] = 0.0;
    for (int done = 0; done < n; done++) { /* the costliest unplaced sequence to the least-loaded rank */
        int pick = -1;
        for (int i = 0; i < n; i++)
            if (home[i] < 0 && (pick < 0 || cost[i] > cost[pick])) pick = i;
        int best = 0;
        for (int r = 1; r < N; r++)
            if (load[r] < load[best]) best = r;
        home[pick] = best;
        load[best] += cost[pick];
    }
}

roe_status roe_cluster_reset_seq(roe_cluster *cl, int seq, int home) {
    if (seq < 0 || seq >= cl->S)
        return roe_fail(ROE_ERR_INVALID_ARG, "cluster: sequence slot %d is outside [0, %d)", seq, cl->S);
    if (home < 0 || home >= cl->N)
        return roe_fail(ROE_ERR_INVALID_ARG, "cluster: home rank %d is outside [0, %d)", home, cl->N);
    /* a slot that moves: its former home forgets it too (its blocks go back there) */
    const int old = cl->home[seq];
    for (int k = 0; k < 2; k++) {
        const int r = k == 0 ? old : home;
        if (r < 0 || (k == 0 && old == home)) continue;
        if (r == cl->me) roe_engine_reset_seq(cl->e, seq);
        else if (mirror_of(cl, r)) {
            roe_kv_cache_reset(mirror_of(cl, r), seq);
            if (mirror_w_of(cl, r)) roe_kv_cache_reset(mirror_w_of(cl, r), seq);
            ROE_TRY(log_op(cl, POOL_RESET, r, seq, 0, 0, NULL, 0));
        }
    }
    cl->home[seq] = home;
    cl->len[seq] = 0;
    cl->bound[seq] = 0;
    cl->dirty[seq] = BIND_DIRTY | BIND_RESET;
    return ROE_OK;
}

/* Logs that rank `home` takes, for seq, the prefix that pool c (0: main, 1: window) of its mirror
 * just took: the main pool without a window by block ids from 0 (POOL_ADOPT), a pool with a
 * window by the blocks it holds from lo and the chain hash of the block before (POOL_ADOPT_FROM). */
static roe_status log_adopt(roe_cluster *cl, int home, int seq, int pool, const struct roe_kv_cache *c) {
    const int32_t *t = c->table + (size_t)seq * c->max_blocks;
    const int nb = c->len[seq] / c->block_size, lo = c->lo[seq];
    if (!c->window) return log_op(cl, POOL_ADOPT, home, seq, 0, 0, t, nb);
    const uint64_t before = lo ? c->chain[(size_t)seq * c->max_blocks + lo - 1] : 0;
    const uint32_t pre[2] = {(uint32_t)before, (uint32_t)(before >> 32)};
    return log_op_pre(cl, POOL_ADOPT_FROM, home, seq, pool, lo, pre, 2, t + lo, 2 + nb - lo);
}

/* Coordinator, a sequence homed on another rank: the longest prefix both of its mirrored pools
 * hold (as roe_engine_prefix_match does on that rank), taken there and logged for the rank. */
static int mirror_prefix(roe_cluster *cl, int home, int seq, const int32_t *tokens, int n) {
    struct roe_kv_cache *m = mirror_of(cl, home), *w = mirror_w_of(cl, home);
    int held, part = 0;
    int32_t src = -1;
    if (!w) {
        held = roe_kv_cache_match(m, seq, tokens, n);
        part = roe_kv_cache_partial_probe(m, seq, tokens, n, &src); /* (as roe_engine_prefix_match) */
    } else {
        if (m->no_prefix || m->len[seq] != 0 || n <= 1) return 0;
        held = roe_kv_cache_probe(w, tokens, roe_kv_cache_probe(m, tokens, n - 1));
        roe_kv_cache_take(w, seq, tokens, held, n - 1);
        roe_kv_cache_take(m, seq, tokens, held, n - 1);
    }
    if (held <= 0 && part <= 0) return 0;
    if ((held > 0 && (log_adopt(cl, home, seq, 0, m) != ROE_OK || (w && log_adopt(cl, home, seq, 1, w) != ROE_OK))) ||
        (part > 0 && (roe_kv_cache_extend(m, seq, src, part) != ROE_OK ||
                      log_op(cl, POOL_EXTEND, home, seq, src, part, NULL, 0) != ROE_OK))) {
        roe_kv_cache_reset(m, seq); /* out of memory for the log: no hit */
        if (w) roe_kv_cache_reset(w, seq);
        return 0;
    }
    return held + part;
}

int roe_cluster_prefix_seq(roe_cluster *cl, int seq, const int32_t *tokens, int n) {
    if (seq < 0 || seq >= cl->S || cl->home[seq] < 0 || cl->len[seq] != 0 || n > cl->ctx) return 0;
    const int home = cl->home[seq];
    int held = 0;
    if (home == cl->me) held = roe_engine_prefix_match(cl->e, seq, tokens, n);
    else if (mirror_of(cl, home)) held = mirror_prefix(cl, home, seq, tokens, n);
    cl->len[seq] = held;
    return held;
}

int roe_cluster_prefix_probe(const roe_cluster *cl, int home, const int32_t *tokens, int n, int *unreferenced) {
    if (unreferenced) *unreferenced = 0;
    if (home < 0 || home >= cl->N || n > cl->ctx) return 0;
    const struct roe_kv_cache *kv = roe_cluster_kv(cl, home);
    const struct roe_kv_cache *kw = home == cl->me ? roe_engine_kv_window(cl->e)
                                    : cl->mirror_w && home > 0 ? &cl->mirror_w[home] : NULL;
    if (!kw) return roe_kv_cache_lookup(kv, tokens, n, unreferenced);
    /* both pools must hold a length (roe_engine_prefix_match): the window's blocks at the main
     * pool's length, then the main pool's unreferenced blocks up to the length both hold */
    const int held = roe_kv_cache_probe(kw, tokens, roe_kv_cache_lookup(kv, tokens, n, NULL));
    return roe_kv_cache_lookup(kv, tokens, held + 1, unreferenced);
}

roe_status roe_cluster_fork_seq(roe_cluster *cl, int dst, int src, int len) {
    if (dst < 0 || dst >= cl->S || src < 0 || src >= cl->S || dst == src || cl->home[src] < 0 ||
        cl->home[dst] != cl->home[src] || len < 0 || len > cl->len[src])
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "cluster: slot %d cannot start from %d positions of slot %d (homes %d, %d; it holds %d)", dst,
                        len, src, dst >= 0 && dst < cl->S ? cl->home[dst] : -1,
                        src >= 0 && src < cl->S ? cl->home[src] : -1, src >= 0 && src < cl->S ? cl->len[src] : -1);
    cl->len[dst] = len;
    if (cl->home[dst] == cl->me) return roe_engine_copy_seq(cl->e, dst, src, len);
    struct roe_kv_cache *m = mirror_of(cl, cl->home[dst]), *w = mirror_w_of(cl, cl->home[dst]);
    if (m) { /* as roe_engine_copy_seq: the main pool, then the window pool (undoing the first) */
        ROE_TRY(roe_kv_cache_copy(m, dst, src, len));
        const roe_status st = w ? roe_kv_cache_copy(w, dst, src, len) : ROE_OK;
        if (st != ROE_OK) roe_kv_cache_reset(m, dst);
        ROE_TRY(st);
        ROE_TRY(log_op(cl, POOL_COPY, cl->home[dst], dst, src, len, NULL, 0));
    }
    cl->dirty[dst] |= BIND_DIRTY | BIND_COPY;
    cl->copy_from[dst] = src;
    cl->copy_len[dst] = len;
    return ROE_OK;
}

static int roster_equal(const struct roe_roster *a, const struct roe_roster *b, int L) {
    return a->k == b->k && a->gate == b->gate && a->keep_clean == b->keep_clean &&
           a->adaptive_entropy == b->adaptive_entropy && memcmp(a->tau, b->tau, (size_t)L * sizeof(float)) == 0;
}

/* The engine's cache contract (engine.h) over every rank's rows, checked before the plan
 * leaves rank 0, plus the groups' shape. */
static roe_status validate(roe_cluster *cl, const struct roe_row *rows, int n, const struct roe_group *g, int ng) {
    ROE_TRY(roe_rows_check(rows, n, roe_engine_get_opts(cl->e), cl->V, cl->len, cl->next));
    if (ng < 0 || ng > n)
        return roe_fail(ROE_ERR_INVALID_ARG, "step of %d rows cannot have %d groups", n, ng);
    for (int i = 0; i < n; i++) cl->lidx[i] = -1;
    for (int k = 0; k < ng; k++) {
        const int m = g[k].mode;
        if (g[k].first < 0 || g[k].n <= 0 || g[k].first > n - g[k].n)
            return roe_fail(ROE_ERR_INVALID_ARG, "group %d: rows [%d, %d) outside the step's %d rows", k, g[k].first,
                            g[k].first + g[k].n, n);
        if ((m & ~7) || (!(m & ROE_GROUP_MEAN) && (m & ~ROE_GROUP_MEAN)) ||
            (m & ROE_GROUP_MEAN && g[k].n + 1 > ROE_MAX_SAMPLES + 1))
            return roe_fail(ROE_ERR_INVALID_ARG, "group %d: mode %d with %d rows is not a valid group", k, m, g[k].n);
        for (int i = g[k].first; i < g[k].first + g[k].n; i++) {
            if (rows[i].seq != rows[g[k].first].seq || !rows[i].want_logits || cl->lidx[i] != -1)
                return roe_fail(ROE_ERR_INVALID_ARG,
                                "group %d: row %d is of another sequence, wants no logits, or is in another group",
                                k, i);
            cl->lidx[i] = -2;
        }
    }
    for (int i = 0; i < n; i++)
        if (rows[i].want_logits && cl->lidx[i] != -2)
            return roe_fail(ROE_ERR_INVALID_ARG, "row %d wants logits but is in no group", i);
    return ROE_OK;
}

/* Output of one group from this rank's logits. */
static void reduce_group(roe_cluster *cl, const struct roe_row *rows, const struct roe_group *g, float *dest) {
    const size_t V = (size_t)cl->V;
    const int seq = rows[g->first].seq;
    const float *first = cl->logits + (size_t)cl->lidx[g->first] * V;
    if (!(g->mode & ROE_GROUP_MEAN)) {
        for (int j = 0; j < g->n; j++)
            memcpy(dest + (size_t)j * V, cl->logits + (size_t)cl->lidx[g->first + j] * V, V * sizeof(float));
    } else {
        int k = 0;
        if (g->mode & ROE_GROUP_WITH_CLEAN) cl->lp[k++] = cl->clean + (size_t)seq * V;
        for (int j = 0; j < g->n; j++) cl->lp[k++] = cl->logits + (size_t)cl->lidx[g->first + j] * V;
        roe_aggregate(cl->lp, k, cl->V, dest, cl->scratch);
    }
    if (g->mode & ROE_GROUP_STORE_CLEAN) memcpy(cl->clean + (size_t)seq * V, first, V * sizeof(float));
}

/* This rank's share of a step: its home rows through the engine, then its groups. Group
 * outputs go to out + goff[g] (coordinator) or one after another into rout (others);
 * *n_out receives the floats written. */
static roe_status run_local(roe_cluster *cl, const struct roe_row *rows, int n, const struct roe_group *g,
                            int ng, float *out, size_t *n_out, struct roe_step_stats *ss) {
    int nl = 0, li = 0;
    for (int i = 0; i < n; i++) {
        cl->lidx[i] = -1;
        if (cl->N > 1 && cl->home[rows[i].seq] != cl->me) continue;
        cl->lrows[nl++] = rows[i];
        if (rows[i].want_logits) cl->lidx[i] = li++;
    }
    roe__engine_set_driven(cl->e, 1);
    roe_status st = roe_engine_step(cl->e, cl->lrows, nl, cl->logits);
    roe__engine_set_driven(cl->e, 0);
    if (st != ROE_OK) return st;
    *ss = roe_engine_last_stats(cl->e);
    size_t w = 0;
    for (int k = 0; k < ng; k++) {
        if (cl->N > 1 && cl->home[rows[g[k].first].seq] != cl->me) continue;
        float *dest = cl->me == 0 ? out + cl->goff[k] : cl->rout + w;
        reduce_group(cl, rows, &g[k], dest);
        w += roe_group_out_floats(&g[k], cl->V);
    }
    *n_out = w;
    return ROE_OK;
}

/* Coordinator: the bindings, rows and groups of a step as a plan, broadcast. */
static roe_status send_plan(roe_cluster *cl, const struct roe_row *rows, int n, const struct roe_group *g, int ng) {
    size_t nb = 0;
    for (int s = 0; s < cl->S; s++) {
        if (!cl->dirty[s]) continue;
        const int copy = (cl->dirty[s] & BIND_COPY) != 0;
        cl->pbind[nb++] = (struct roe_plan_bind){
            .seq = s, .home = cl->home[s], .seed = cl->seed[s], .reset = (cl->dirty[s] & BIND_RESET) != 0,
            .copy_from = copy ? cl->copy_from[s] : 0, .copy_len = copy ? cl->copy_len[s] : 0,
            .roster = cl->bound[s] && cl->has_roster[s] ? &cl->roster[s] : NULL};
        cl->dirty[s] = 0;
    }
    for (int i = 0; i < n; i++) {
        cl->p_seq[i] = (uint32_t)rows[i].seq;
        cl->p_pos[i] = (uint32_t)rows[i].pos;
        cl->p_token[i] = rows[i].token;
        cl->p_sample[i] = (uint32_t)rows[i].sample;
        cl->p_flags[i] = rows[i].want_logits ? 1u : 0u;
    }
    for (int k = 0; k < ng; k++) {
        cl->p_gfirst[k] = (uint32_t)g[k].first;
        cl->p_gn[k] = (uint32_t)g[k].n;
        cl->p_gmode[k] = (uint32_t)g[k].mode;
    }
    const struct roe_control m = {
        .kind = ROE_CONTROL_STEP,
        .step = {.step = cl->step, .n_bind = nb, .bind = cl->pbind, .n_rows = (size_t)n, .row_seq = cl->p_seq,
                 .row_pos = cl->p_pos, .row_sample = cl->p_sample, .row_flags = cl->p_flags,
                 .row_token = cl->p_token, .n_groups = (size_t)ng, .group_first = cl->p_gfirst,
                 .group_n = cl->p_gn, .group_mode = cl->p_gmode, .n_pool_op = cl->n_log, .pool_op = cl->log}};
    cl->n_log = 0; /* sent (a failed send ends the job) */
    return roe_control_send(cl->comm, &m, &cl->io);
}

/* Coordinator: every other rank's group outputs into out, in plan order. */
static roe_status collect(roe_cluster *cl, const struct roe_row *rows, const struct roe_group *g, int ng,
                          float *out, struct roe_step_stats *ss) {
    ROE_TRY(roe_reply_collect(cl->comm, &cl->io, "step reply"));
    for (int r = 1; r < cl->N; r++) {
        struct roe_reply reply;
        const struct roe_reply *rep = &reply;
        ROE_TRY(roe_reply_get(&cl->io, r, &reply));
        if (rep->step != cl->step)
            return roe_fail(ROE_ERR_FORMAT, "rank 0: rank %d answered step %llu, expected %llu", r,
                            (unsigned long long)rep->step, (unsigned long long)cl->step);
        size_t pos = 0;
        for (int k = 0; k < ng; k++) {
            if (cl->home[rows[g[k].first].seq] != r) continue;
            const size_t sz = roe_group_out_floats(&g[k], cl->V);
            if (pos + sz > rep->n_out) break;
            memcpy(out + cl->goff[k], rep->out + pos, sz * sizeof(float));
            pos += sz;
        }
        if (pos != rep->n_out)
            return roe_fail(ROE_ERR_FORMAT, "rank 0: rank %d sent %zu output floats for step %llu, expected %zu", r,
                            rep->n_out, (unsigned long long)cl->step, pos);
        ss->distinct_experts += (int)rep->distinct_experts;
        ss->rows_computed += (long)rep->rows_computed;
    }
    return ROE_OK;
}

/* Coordinator, after a step every rank ran: the other ranks' pools as their engines left them
 * (engine.c: blocks for every clean row up to its sequence's new length, in row order, then
 * each clean row noted). cl->next holds the new lengths (validate). */
static void mirror_step(roe_cluster *cl, const struct roe_row *rows, int n) {
    for (int i = 0; i < n; i++) {
        struct roe_kv_cache *m = mirror_of(cl, cl->home[rows[i].seq]), *w = mirror_w_of(cl, cl->home[rows[i].seq]);
        /* cannot fail where the engine's reservation did not */
        if (m && rows[i].sample == 0) (void)roe_kv_cache_reserve(m, rows[i].seq, cl->next[rows[i].seq]);
        if (w && rows[i].sample == 0) (void)roe_kv_cache_reserve(w, rows[i].seq, cl->next[rows[i].seq]);
    }
    for (int i = 0; i < n; i++) {
        struct roe_kv_cache *m = mirror_of(cl, cl->home[rows[i].seq]), *w = mirror_w_of(cl, cl->home[rows[i].seq]);
        if (!m || rows[i].sample != 0) continue;
        roe_kv_cache_note(m, rows[i].seq, rows[i].pos, rows[i].token);
        m->len[rows[i].seq]++;
        if (w) {
            roe_kv_cache_note(w, rows[i].seq, rows[i].pos, rows[i].token);
            w->len[rows[i].seq]++;
        }
    }
}

roe_status roe_cluster_step(roe_cluster *cl, const struct roe_row *rows, int n,
                            const struct roe_group *groups, int ng, float *out,
                            struct roe_step_stats *stats) {
    if (cl->me != 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "cluster: rank %d cannot drive a step (only rank 0)", cl->me);
    ROE_TRY(validate(cl, rows, n, groups, ng));
    cl->goff[0] = 0;
    for (int k = 0; k < ng; k++) cl->goff[k + 1] = cl->goff[k] + roe_group_out_floats(&groups[k], cl->V);
    cl->step++;
    if (cl->N > 1) {
        /* homes and bindings; rows of one sequence's samples must agree on seed and roster */
        for (int i = 0; i < n; i++) {
            const struct roe_row *r = &rows[i];
            const int s = r->seq;
            if (cl->home[s] < 0) {
                cl->home[s] = s % cl->N;
                cl->dirty[s] |= BIND_DIRTY;
            }
            if (r->sample == 0) continue;
            const int same = cl->bound[s] && cl->seed[s] == r->seed && cl->has_roster[s] == (r->roster != NULL) &&
                             (!r->roster || roster_equal(&cl->roster[s], r->roster, cl->L));
            if (same) continue;
            if (cl->stamp[s] == cl->step)
                return roe_fail(ROE_ERR_INVALID_ARG,
                                "row %d: RoE rows of sequence %d in one step carry different seeds or rosters", i, s);
            cl->bound[s] = 1;
            cl->seed[s] = r->seed;
            cl->has_roster[s] = r->roster != NULL;
            if (r->roster) cl->roster[s] = *r->roster;
            cl->dirty[s] |= BIND_DIRTY;
            cl->stamp[s] = cl->step;
        }
        ROE_TRY(send_plan(cl, rows, n, groups, ng));
    }
    struct roe_step_stats ss;
    size_t n_out = 0;
    roe_status st = run_local(cl, rows, n, groups, ng, out, &n_out, &ss);
    if (st == ROE_OK && cl->N > 1) st = collect(cl, rows, groups, ng, out, &ss);
    if (st != ROE_OK) {
        /* the plan is out: a failure here leaves the ranks out of step, so the job must end */
        if (cl->N > 1) roe_comm_set_failed(cl->comm);
        return st;
    }
    if (cl->mirror) mirror_step(cl, rows, n);
    for (int i = 0; i < n; i++)
        if (rows[i].sample == 0) cl->len[rows[i].seq]++;
    ss.rows = n;
    ss.rows_naive = (long)n * cl->L;
    if (stats) *stats = ss;
    return ROE_OK;
}

static roe_status mor_one_rank(const roe_cluster *cl) {
    if (cl->N == 1) return ROE_OK;
    return roe_fail(ROE_ERR_UNSUPPORTED, "cluster: depth-wise batching runs in one process (%d ranks)", cl->N);
}

roe_status roe_cluster_mor_submit(roe_cluster *cl, const struct roe_row *row) {
    ROE_TRY(mor_one_rank(cl));
    if (row->seq < 0 || row->seq >= cl->S || row->pos != cl->len[row->seq])
        return roe_fail(ROE_ERR_INVALID_ARG, "cluster: depth-wise row of sequence %d at position %d, but it holds %d",
                        row->seq, row->pos, row->seq >= 0 && row->seq < cl->S ? cl->len[row->seq] : -1);
    return roe_engine_mor_submit(cl->e, row);
}

roe_status roe_cluster_mor_tick(roe_cluster *cl, int width, struct roe_row *done, int *n_done, float *logits) {
    *n_done = 0;
    ROE_TRY(mor_one_rank(cl));
    ROE_TRY(roe_engine_mor_tick(cl->e, width, done, NULL, n_done, logits));
    for (int i = 0; i < *n_done; i++) cl->len[done[i].seq]++;
    return ROE_OK;
}

/* ---- the other ranks ---- */

static roe_status apply_binds(roe_cluster *cl, const struct roe_step_plan *p) {
    struct roe_roster roster;
    for (size_t i = 0; i < p->n_bind; i++) {
        struct roe_plan_bind x;
        ROE_TRY(roe_step_plan_bind(p, i, cl->L, cl->me, &x, &roster));
        if (x.seq < 0 || x.seq >= cl->S || x.home < 0 || x.home >= cl->N)
            return roe_fail(ROE_ERR_FORMAT, "rank %d: the plan from rank 0 binds sequence %d to rank %d (limits %d, %d)",
                            cl->me, x.seq, x.home, cl->S, cl->N);
        const int s = x.seq;
        /* the coordinator validated it; a corrupt plan must not reach the router (a NaN tau) */
        if (x.roster && roe_roster_validate(x.roster, &roe_engine_model(cl->e)->cfg) != ROE_OK)
            return roe_fail_context(ROE_ERR_FORMAT, "rank %d: the plan from rank 0 gives sequence %d a bad roster",
                                    cl->me, s);
        cl->home[s] = x.home;
        cl->seed[s] = x.seed;
        cl->has_roster[s] = x.roster != NULL;
        if (x.roster) cl->roster[s] = *x.roster;
        /* (its reset and copy reach this rank's pool through the pool log) */
    }
    return replay_log(cl, p->pool_op, p->n_pool_op);
}

static roe_status read_plan(roe_cluster *cl, const struct roe_step_plan *p, int *n_out, int *ng_out) {
    const size_t n = p->n_rows, ng = p->n_groups;
    if (n > (size_t)cl->R || ng > n)
        return roe_fail(ROE_ERR_FORMAT, "rank %d: malformed plan of step %llu from rank 0 (%zu rows, %zu groups, limit %d rows)",
                        cl->me, (unsigned long long)p->step, n, ng, cl->R);
    for (size_t i = 0; i < n; i++) {
        const int s = (int)p->row_seq[i];
        if (p->row_seq[i] >= (uint32_t)cl->S || cl->home[s] < 0)
            return roe_fail(ROE_ERR_FORMAT, "rank %d: the plan from rank 0: row %zu names sequence %u, unbound or outside [0, %d)",
                            cl->me, i, p->row_seq[i], cl->S);
        const int sample = (int)p->row_sample[i];
        cl->grows[i] = (struct roe_row){
            .seq = s, .pos = (int)p->row_pos[i], .token = p->row_token[i], .sample = sample,
            .want_logits = (int)(p->row_flags[i] & 1u),
            .seed = sample > 0 ? cl->seed[s] : 0,
            .roster = sample > 0 && cl->has_roster[s] ? &cl->roster[s] : NULL,
        };
    }
    for (size_t k = 0; k < ng; k++) {
        const struct roe_group g = {(int)p->group_first[k], (int)p->group_n[k], (int)p->group_mode[k]};
        if (g.first < 0 || g.n <= 0 || (size_t)g.first + (size_t)g.n > n || (g.mode & ~7))
            return roe_fail(ROE_ERR_FORMAT, "rank %d: the plan from rank 0: group %zu is malformed", cl->me, k);
        for (int i = g.first; i < g.first + g.n; i++)
            if (!cl->grows[i].want_logits || cl->grows[i].seq != cl->grows[g.first].seq)
                return roe_fail(ROE_ERR_FORMAT, "rank %d: the plan from rank 0: group %zu mixes sequences or rows without logits",
                                cl->me, k);
        cl->wgroups[k] = g;
    }
    *n_out = (int)n;
    *ng_out = (int)ng;
    return ROE_OK;
}

roe_status roe_cluster_serve(roe_cluster *cl, const struct roe_step_plan *plan) {
    int n = 0, ng = 0;
    struct roe_step_stats ss = {0};
    size_t n_out = 0;
    cl->step = plan->step;
    roe_status st = apply_binds(cl, plan);
    if (st == ROE_OK) st = read_plan(cl, plan, &n, &ng);
    if (st == ROE_OK) st = run_local(cl, cl->grows, n, cl->wgroups, ng, NULL, &n_out, &ss);
    const struct roe_reply rep = {
        .step = plan->step, .status = st, .error = st == ROE_OK ? "" : roe_error_message(), .out = cl->rout,
        .n_out = st == ROE_OK ? n_out : 0, .distinct_experts = (uint64_t)ss.distinct_experts,
        .rows_computed = (uint64_t)ss.rows_computed};
    roe_status sst = roe_reply_send(cl->comm, &rep, &cl->io, "step reply");
    return st != ROE_OK ? st : sst;
}
