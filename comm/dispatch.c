/*
 * dispatch.c — expert-parallel dispatch / combine; see dispatch.h.
 *
 * Copies are what make an exchange slower than the wire: MPI's shared-memory transport
 * already copies every byte once. So rows leave straight from the caller's x when a
 * destination needs (nearly) a contiguous run of slots, and outputs are read where they
 * arrive (roe_ep_pair_out) instead of being scattered into `out`.
 *
 * Latency: the counts and the pair indices travel in one header message per peer, received
 * into a buffer large enough for any header (MPI reports the size that came), small rows
 * inside it (EP_INLINE_BYTES), larger ones leaving at the same time in a message of their own
 * whose receive is posted once the header has said how many rows come. Dispatch is thus one
 * round trip, combine another.
 *
 * Buffers (sizes fixed at creation; N ranks, R = max_slots, K = top_k, H = hidden,
 * RR / RP = max_recv_rows / max_recv_pairs, w = wire bytes per element, X = my experts):
 *   hsend [N + E + R K + N (32 + IB/4)] int32  header to each destination d: rows (or run
 *                             length), pairs per local expert of d, then each pair's row index
 *                             (none to itself), then rows of at most IB = inline bytes; 64-byte
 *                             aligned, headers and their rows
 *   hrecv [N, HC] int32       the header from each source, HC = 1 + E + max(RP, R K) + IB/4
 *                             (rounded up to 64 bytes)
 *   sbuf  [R min(K,N) H] w    rows packed for destinations that need scattered slots
 *   rbuf  [RR H] w + 64 N     rows from every source, 64-byte aligned segments
 *   ret   [RP H] f32          outputs computed here for other ranks, by source
 *   retr  [R K H] w           this rank's outputs computed elsewhere, by destination
 *   in/out [R K + RP]         one entry per (expert, row) computed here
 *   pout  [R K]               where each of this rank's pairs' outputs are
 *   bf16 wire only: xs [R H] f32 (local inputs rounded), rrows [RR H] f32 (received rows
 *   widened), ret16 [RP H] bf16
 */
#include "dispatch.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/dtype.h"
#include "base/clock.h"

enum { EP_ALIGN = 64, EP_ALIGN_I32 = EP_ALIGN / 4 };

/* Rows of at most this many bytes for one destination travel inside its header message
 * (after the header, 64-byte aligned) instead of in a message of their own: at decode sizes
 * the exchange then sends what a raw all-to-all-v would, one message per peer each way. */
#define EP_INLINE_BYTES 16384

/* How long a rank whose headers went out waits for the others' before it starts computing
 * its own rows on its experts (dispatch.h, "early"): long against a header's latency
 * (~1-3 us on one node, tens over TCP), short against an expert's work (~1 ms on a CPU), so
 * that ranks arriving together never split an expert into two passes over its weights. */
#define EP_EARLY_US 100

struct roe_ep {
    struct roe_ep_opts o;
    int N, me;
    size_t ws; /* wire bytes per element */
    roe_comm_xfer *xa; /* headers */
    roe_comm_xfer *xb; /* rows out, then outputs */
    roe_comm_xfer *xc; /* rows in */
    /* layout */
    struct roe_layout_send ls;
    int *ls_scratch;  /* [2N] */
    int *from;        /* [N * E] */
    int *task_off;    /* [E + 1] */
    int *task_src;    /* [R K + RP] */
    int *task_idx;    /* [R K + RP] */
    int *src_pairs;   /* [N] pairs each source sends here */
    int *src_rows;    /* [N] rows each source sends here */
    int *send_rows;   /* [N] rows this rank sends to each destination (run length or packed) */
    int *run_lo;      /* [N] first slot of the run sent to d, or -1: packed */
    int *ret_off;     /* [N] where each source's pairs start in ret */
    int *rrow_off;    /* [N] where each source's rows start in rrows (bf16 wire) */
    int *mine_off;    /* [N] where each destination's outputs start in retr (pairs) */
    int *l2g;         /* [E] local expert -> global id */
    /* messages */
    int32_t *hsend, *hrecv;
    size_t hcap;                    /* ints of one received header (inline rows included) */
    size_t inline_max;              /* opts.inline_bytes: rows for one rank up to this go inline */
    size_t *h_sc, *h_rc;            /* [N] */
    const void **h_sp;              /* [N] */
    void **h_rp;                    /* [N] */
    void **nulls;                   /* [N] for one-sided exchanges */
    size_t *zeros;                  /* [N] */
    unsigned char *sbuf, *rbuf, *retr;
    float *ret;
    uint16_t *ret16;
    float *xs, *rrows;
    size_t rbuf_cap;
    size_t *cnt_s, *cnt_r;          /* [N] element counts of the combine */
    const void **ptr_s;             /* [N] */
    void **ptr_r;                   /* [N] */
    size_t *p_sc, *p_rc;            /* [N] bytes of the rows in flight */
    const void **p_sp;              /* [N] */
    void **p_rp;                    /* [N] */
    size_t *bytes_d, *bytes_c;      /* [N] bytes sent per peer by the last layer */
    const float **in;
    float **out;
    const float **pout;
    struct roe_ep_task *now, *rest; /* [E] each */
    int n_now, n_rest;
    /* the layer in flight */
    const struct roe_layout_map *map;
    float *outp;
    const int32_t *sel;
    const float *xin; /* this rank's inputs as its experts see them (x, or bf16-rounded xs) */
    int phase; /* 0 idle, 1 rows in flight, 2 rows arrived */
    int stage; /* phase 1: 0 headers pending (early tasks), 1 headers in */
    /* early tasks: local experts on this rank's own pairs, entries from early_base on */
    struct roe_ep_task *early;      /* [E] */
    uint8_t *early_done;            /* [E] by local expert */
    int n_early, next_early, next_now, early_base;
    double early_s;                 /* the wait before early tasks (opts.early_us >= 0) */
    int *rot_src, *rot_idx;         /* [R K + RP + 1] own_first scratch */
    char what[3][128];
    struct roe_ep_stats stats;
};

const char *roe_ep_wire_name(roe_ep_wire w) { return w == ROE_EP_WIRE_BF16 ? "bf16" : "f32"; }

struct roe_ep_opts roe_ep_opts_default(void) {
    return (struct roe_ep_opts){.wire = ROE_EP_WIRE_F32, .overlap = 1, .early_us = EP_EARLY_US,
                                .inline_bytes = EP_INLINE_BYTES};
}

static size_t align_up(size_t n) { return (n + EP_ALIGN - 1) & ~(size_t)(EP_ALIGN - 1); }
static size_t align_i32(size_t n) { return (n + EP_ALIGN_I32 - 1) & ~(size_t)(EP_ALIGN_I32 - 1); }

/* Whether `rows` rows travel inside the header: the sender decides from the rows it sends
 * (ls.rows), the receiver from the count the header announces (src_rows); both apply this
 * one rule. */
static int rows_inline(const roe_ep *ep, long rows) {
    return rows > 0 && (size_t)rows * (size_t)ep->o.hidden * ep->ws <= ep->inline_max;
}

/* The rows this rank sends to d ride in d's header (never to itself). */
static int send_inline(const roe_ep *ep, int d) { return d != ep->me && rows_inline(ep, ep->ls.rows[d]); }

static void narrow(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = roe_f32_to_bf16(src[i]);
}

static void widen(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = roe_bf16_to_f32(src[i]);
}

/* Packs slots rows[0..n) of x (f32) as wire rows at dst. */
static void pack_rows(const roe_ep *ep, const float *x, const int *slots, int n, unsigned char *dst) {
    const size_t H = (size_t)ep->o.hidden;
    for (int i = 0; i < n; i++) {
        const float *src = x + (size_t)slots[i] * H;
        if (ep->ws == 4) memcpy(dst + (size_t)i * H * 4, src, H * 4);
        else narrow(src, (uint16_t *)(dst + (size_t)i * H * 2), H);
    }
}

void roe_ep_free(roe_ep *ep) {
    if (!ep) return;
    roe_comm_xfer_free(ep->xa);
    roe_comm_xfer_free(ep->xb);
    roe_comm_xfer_free(ep->xc);
    void *small[] = {ep->ls.rows, ep->ls.pairs, ep->ls.row_off, ep->ls.pair_off, ep->ls.row_slot,
                     ep->ls.pair_id, ep->ls.pair_row, ep->ls.counts, ep->ls_scratch, ep->from,
                     ep->task_off, ep->task_src, ep->task_idx, ep->src_pairs, ep->src_rows,
                     ep->send_rows, ep->run_lo, ep->ret_off, ep->rrow_off, ep->mine_off, ep->l2g,
                     ep->h_sc, ep->h_rc, ep->h_sp, ep->h_rp, ep->nulls, ep->zeros,
                     ep->cnt_s, ep->cnt_r, ep->ptr_s, ep->ptr_r, ep->p_sc, ep->p_rc, ep->p_sp, ep->p_rp,
                     ep->bytes_d, ep->bytes_c, ep->in, ep->out, ep->pout, ep->now, ep->rest,
                     ep->early, ep->early_done, ep->rot_src, ep->rot_idx};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) roe_free(small[i]);
    void *big[] = {ep->hsend, ep->hrecv, ep->sbuf, ep->rbuf, ep->retr, ep->ret, ep->ret16, ep->xs, ep->rrows};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) roe_free_aligned(big[i]);
    roe_free(ep);
}

static void *big_alloc(size_t a, size_t b, size_t c, int *ok) {
    size_t n;
    if (!roe_size_mul(a, b, &n) || !roe_size_mul(n, c, &n)) {
        *ok = 0;
        return NULL;
    }
    void *p = roe_malloc_aligned(n ? n : EP_ALIGN);
    if (!p) *ok = 0;
    return p;
}

static roe_status check_opts(const struct roe_ep_opts *o) {
    if (o->hidden <= 0 || o->top_k <= 0 || o->n_experts <= 0 || o->top_k > o->n_experts ||
        o->max_slots < 0 || o->max_recv_rows < 0 || o->max_recv_pairs < 0)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "expert dispatch: hidden %d, top_k %d, experts %d, max_slots %d, receive bounds "
                        "%d rows / %d pairs",
                        o->hidden, o->top_k, o->n_experts, o->max_slots, o->max_recv_rows, o->max_recv_pairs);
    if (o->inline_bytes < 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "expert dispatch: inline_bytes %d (0: never inline, else the limit)",
                        o->inline_bytes);
    return ROE_OK;
}

/* Task entries: the plan's (R K + RP + 1), then the early ones (R K). */
static size_t n_entries(const struct roe_ep_opts *o) {
    const size_t RK = (size_t)o->max_slots * (size_t)o->top_k;
    return RK + (size_t)o->max_recv_pairs + 1 + RK;
}

/* Each A() allocates only while every one before it succeeded. */
#define A(field, n) ok = ok && ((field) = roe_malloc((n) * sizeof *(field)))

/* The layout and the receive plan (sizes: the block at the top of this file). */
static int alloc_layout(roe_ep *ep, int ok) {
    const size_t N = (size_t)ep->N, E = (size_t)ep->o.n_experts, K = (size_t)ep->o.top_k;
    const size_t R = (size_t)ep->o.max_slots, KN = K < N ? K : N, entries = n_entries(&ep->o);
    A(ep->ls.rows, N);
    A(ep->ls.pairs, N);
    A(ep->ls.row_off, N + 1);
    A(ep->ls.pair_off, N + 1);
    A(ep->ls.row_slot, R * KN + 1);
    A(ep->ls.pair_id, R * K + 1);
    A(ep->ls.pair_row, R * K + 1);
    A(ep->ls.counts, E);
    A(ep->ls_scratch, 2 * N);
    A(ep->from, N * E);
    A(ep->task_off, E + 1);
    A(ep->task_src, entries);
    A(ep->task_idx, entries);
    int **perN[] = {&ep->src_pairs, &ep->src_rows, &ep->send_rows, &ep->run_lo, &ep->ret_off, &ep->rrow_off, &ep->mine_off};
    for (size_t i = 0; i < sizeof perN / sizeof perN[0]; i++) A(*perN[i], N);
    A(ep->l2g, E);
    return ok;
}

/* The per-peer message arguments and the tasks. */
static int alloc_messages(roe_ep *ep, int ok) {
    const size_t N = (size_t)ep->N, E = (size_t)ep->o.n_experts, RK = (size_t)ep->o.max_slots * (size_t)ep->o.top_k;
    const size_t entries = n_entries(&ep->o), RP = (size_t)ep->o.max_recv_pairs;
    size_t **sz[] = {&ep->h_sc, &ep->h_rc, &ep->cnt_s, &ep->cnt_r, &ep->p_sc, &ep->p_rc, &ep->bytes_d, &ep->bytes_c};
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) A(*sz[i], N);
    A(ep->h_sp, N);
    A(ep->h_rp, N);
    A(ep->ptr_s, N);
    A(ep->ptr_r, N);
    A(ep->p_sp, N);
    A(ep->p_rp, N);
    ok = ok && (ep->nulls = roe_calloc(N, sizeof *ep->nulls)) && (ep->zeros = roe_calloc(N, sizeof *ep->zeros));
    A(ep->in, entries);
    A(ep->out, entries);
    A(ep->pout, RK + 1);
    A(ep->now, E);
    A(ep->rest, E);
    A(ep->early, E);
    A(ep->early_done, E);
    A(ep->rot_src, RK + RP + 1);
    A(ep->rot_idx, RK + RP + 1);
    return ok;
}
#undef A

/* The headers: every one this rank sends, each padded to 64 bytes before and after its
 * inline rows, and one received per source, as large as any can be. */
static void alloc_headers(roe_ep *ep, int *ok) {
    const size_t N = (size_t)ep->N, E = (size_t)ep->o.n_experts, RK = (size_t)ep->o.max_slots * (size_t)ep->o.top_k;
    const size_t RP = (size_t)ep->o.max_recv_pairs;
    ep->inline_max = (size_t)ep->o.inline_bytes;
    const size_t inl_i32 = (ep->inline_max + 3) / 4; /* inline rows, in ints */
    ep->hcap = align_i32(align_i32(1 + E + (RP > RK ? RP : RK)) + inl_i32);
    ep->hsend = big_alloc(align_i32(N + E + RK) + N * ((size_t)EP_ALIGN_I32 * 2 + inl_i32), sizeof(int32_t), 1, ok);
    ep->hrecv = big_alloc(N, ep->hcap, sizeof(int32_t), ok);
}

/* Rows and outputs on the wire; one rank moves nothing, so has none. */
static void alloc_wire(roe_ep *ep, int *ok) {
    const size_t N = (size_t)ep->N, K = (size_t)ep->o.top_k, H = (size_t)ep->o.hidden, KN = K < N ? K : N;
    const size_t R = (size_t)ep->o.max_slots, RR = (size_t)ep->o.max_recv_rows, RP = (size_t)ep->o.max_recv_pairs;
    if (*ok && ep->N > 1) {
        ep->rbuf_cap = RR * H * ep->ws + EP_ALIGN * N;
        ep->sbuf = big_alloc(R * KN, H, ep->ws, ok);
        ep->rbuf = big_alloc(ep->rbuf_cap, 1, 1, ok);
        ep->retr = big_alloc(R * K, H, ep->ws, ok);
        ep->ret = big_alloc(RP, H, sizeof(float), ok);
        if (ep->o.wire == ROE_EP_WIRE_BF16) {
            ep->ret16 = big_alloc(RP, H, sizeof(uint16_t), ok);
            ep->rrows = big_alloc(RR, H, sizeof(float), ok);
        }
    }
    if (*ok && ep->o.wire == ROE_EP_WIRE_BF16) ep->xs = big_alloc(R, H, sizeof(float), ok);
}

roe_status roe_ep_create(roe_comm *comm, const struct roe_ep_opts *o, roe_ep **out) {
    *out = NULL;
    ROE_TRY(check_opts(o));
    roe_ep *ep = roe_calloc(1, sizeof *ep);
    if (!ep) return roe_fail(ROE_ERR_NOMEM, "expert dispatch: out of memory");
    ep->o = *o;
    ep->N = roe_comm_size(comm);
    ep->me = roe_comm_rank(comm);
    ep->ws = o->wire == ROE_EP_WIRE_BF16 ? 2 : 4;
    ep->early_base = (int)((size_t)o->max_slots * (size_t)o->top_k + (size_t)o->max_recv_pairs + 1);
    ep->early_s = o->early_us * 1e-6;
    roe_status st = roe_comm_xfer_create(comm, &ep->xa);
    if (st == ROE_OK) st = roe_comm_xfer_create(comm, &ep->xb);
    if (st == ROE_OK) st = roe_comm_xfer_create(comm, &ep->xc);
    if (st != ROE_OK) {
        roe_ep_free(ep);
        return st;
    }
    int ok = alloc_layout(ep, 1);
    alloc_headers(ep, &ok);
    ok = alloc_messages(ep, ok);
    alloc_wire(ep, &ok);
    if (!ok) {
        roe_ep_free(ep);
        return roe_fail(ROE_ERR_NOMEM,
                        "expert dispatch: out of memory for buffers of %d slots, %d received rows, "
                        "%d received pairs of %d floats",
                        o->max_slots, o->max_recv_rows, o->max_recv_pairs, o->hidden);
    }
    *out = ep;
    return ROE_OK;
}

/* Checks the counts a source announced: they come from the network. */
static roe_status check_counts(roe_ep *ep, int s, int rows, int pairs, const int32_t *per_expert, int X) {
    for (int x = 0; x < X; x++)
        if (per_expert[x] < 0 || per_expert[x] > rows)
            return roe_fail(ROE_ERR_COMM, "rank %d: %s: rank %d announced %d pairs of %d rows for local expert %d",
                            ep->me, ep->what[0], s, per_expert[x], rows, x);
    if (rows < 0 || (rows == 0) != (pairs == 0) || (long)pairs > (long)rows * ep->o.top_k)
        return roe_fail(ROE_ERR_COMM, "rank %d: %s: rank %d announced %d rows with %d pairs (top-%d)", ep->me,
                        ep->what[0], s, rows, pairs, ep->o.top_k);
    return ROE_OK;
}

/* Within each local expert's entries (by source rank, then index), moves this rank's own
 * entries to the front; the order of rows inside an expert's batch does not change any
 * row's result (the kernels are batch-invariant), only where its remote part starts. */
static void own_first(roe_ep *ep, int X) {
    for (int x = 0; x < X; x++) {
        const int b = ep->task_off[x], e = ep->task_off[x + 1];
        int own_at = -1, own_n = 0;
        for (int i = b; i < e; i++)
            if (ep->task_src[i] == ep->me) {
                if (own_at < 0) own_at = i;
                own_n++;
            }
        if (own_at <= b) continue; /* none, or already first */
        /* rotate [b, own_at + own_n) right by own_n */
        for (int i = 0; i < own_n; i++) {
            ep->rot_src[i] = ep->task_src[own_at + i];
            ep->rot_idx[i] = ep->task_idx[own_at + i];
        }
        memmove(ep->task_src + b + own_n, ep->task_src + b, (size_t)(own_at - b) * sizeof(int));
        memmove(ep->task_idx + b + own_n, ep->task_idx + b, (size_t)(own_at - b) * sizeof(int));
        memcpy(ep->task_src + b, ep->rot_src, (size_t)own_n * sizeof(int));
        memcpy(ep->task_idx + b, ep->rot_idx, (size_t)own_n * sizeof(int));
    }
}

/* Tasks for before the headers arrive: each local expert on this rank's own pairs (known
 * from the layout alone: they are grouped by local expert), entries after the plan's. */
static void early_tasks(roe_ep *ep) {
    const int me = ep->me, K = ep->o.top_k, H = ep->o.hidden;
    const int first = ep->ls.pair_off[me], n = ep->ls.pairs[me];
    int at = ep->early_base;
    for (int i = 0; i < n;) {
        struct roe_ep_task *t = &ep->early[ep->n_early++];
        *t = (struct roe_ep_task){.expert = ep->sel[ep->ls.pair_id[first + i]], .first = at};
        for (; i < n && ep->sel[ep->ls.pair_id[first + i]] == t->expert; i++, at++, t->n++) {
            const int p = ep->ls.pair_id[first + i];
            ep->in[at] = ep->xin + (size_t)(p / K) * H;
            ep->out[at] = ep->outp + (size_t)p * H;
        }
    }
}

/* The local experts as tasks, once the headers are in: one whose every pair is this rank's
 * runs "now" (while the rows travel); the others after the rows arrived, each over all its
 * rows at once (one pass over its weights) - or, if it already ran early on this rank's
 * rows, over the others only. */
static void sort_tasks(roe_ep *ep) {
    const int N = ep->N, me = ep->me, K = ep->o.top_k, H = ep->o.hidden, X = ep->map->n_local[me];
    const int self_first = ep->ls.pair_off[me];
    for (int xi = 0; xi < X; xi++) {
        const int b = ep->task_off[xi], e = ep->task_off[xi + 1];
        if (b == e) continue;
        int remote = 0;
        for (int i = b; i < e; i++) {
            if (ep->task_src[i] != me) {
                remote = 1;
                continue;
            }
            const int p = ep->ls.pair_id[self_first + ep->task_idx[i]];
            ep->in[i] = ep->xin + (size_t)(p / K) * H;
            ep->out[i] = ep->outp + (size_t)p * H;
        }
        const int own = ep->from[me * X + xi];
        if (ep->early_done[xi]) { /* its own rows ran early: the others' only */
            if (e - b > own)
                ep->rest[ep->n_rest++] =
                    (struct roe_ep_task){.expert = ep->l2g[xi], .first = b + own, .n = e - b - own, .part = 1};
            continue;
        }
        const struct roe_ep_task t = {.expert = ep->l2g[xi], .first = b, .n = e - b};
        if (!remote && (ep->o.overlap || N == 1)) ep->now[ep->n_now++] = t;
        else ep->rest[ep->n_rest++] = t;
    }
}

/* The headers have arrived: checks them, plans the receive side (own rows first within each
 * expert, so that an expert computed early on them has its other rows in one run), posts
 * the rows' receives, and sorts the local experts into tasks. */
static roe_status headers_take(roe_ep *ep) {
    const int N = ep->N, me = ep->me, H = ep->o.hidden;
    const struct roe_layout_map *map = ep->map;
    const int X = map->n_local[me];
    const size_t *got = roe_comm_xfer_received(ep->xa);
    long recv_rows = 0, recv_pairs = 0;
    for (int s = 0; s < N; s++) {
        const int32_t *m = ep->hrecv + (size_t)s * ep->hcap;
        int pairs = 0;
        for (int xi = 0; xi < X; xi++) {
            ep->from[s * X + xi] = m[1 + xi];
            pairs += m[1 + xi] > 0 ? m[1 + xi] : 0;
        }
        if (s != me) {
            if (got[s] < 1 + (size_t)X)
                return roe_fail(ROE_ERR_COMM, "rank %d: %s: rank %d sent a header of %zu ints, less than 1 + %d", me,
                                ep->what[0], s, got[s], X);
            ROE_TRY(check_counts(ep, s, m[0], pairs, m + 1, X));
            /* the size that came must be the one the counts imply */
            const int inl = rows_inline(ep, m[0]);
            size_t want = 1 + (size_t)X + (size_t)pairs;
            if (inl) want = align_i32(want) + ((size_t)m[0] * H * ep->ws + 3) / 4;
            if (got[s] != want)
                return roe_fail(ROE_ERR_COMM,
                                "rank %d: %s: rank %d sent a header of %zu ints, expected %zu (1 + %d + its %d pairs%s)",
                                me, ep->what[0], s, got[s], want, X, pairs, inl ? " + its rows" : "");
            recv_rows += m[0];
            recv_pairs += pairs;
        }
        ep->src_rows[s] = m[0];
    }
    if (recv_rows > ep->o.max_recv_rows || recv_pairs > ep->o.max_recv_pairs)
        return roe_fail(ROE_ERR_COMM,
                        "rank %d: %s: other ranks send %ld rows / %ld pairs, more than the %d / %d this rank "
                        "was sized for",
                        me, ep->what[0], recv_rows, recv_pairs, ep->o.max_recv_rows, ep->o.max_recv_pairs);
    roe_layout_plan_recv(map, me, ep->from, ep->task_off, ep->task_src, ep->task_idx, ep->src_pairs);
    own_first(ep, X);
    for (int e = 0; e < map->n_experts; e++)
        if (map->owner[e] == me) ep->l2g[map->local[e]] = e;

    /* rows in, now that their sizes are known */
    if (N > 1) {
        size_t ro = 0;
        int rp = 0, rr = 0;
        for (int s = 0; s < N; s++) {
            ep->p_rc[s] = 0;
            ep->ret_off[s] = rp;
            ep->rrow_off[s] = rr;
            if (s == me || !ep->src_pairs[s]) continue;
            rp += ep->src_pairs[s];
            rr += ep->src_rows[s];
            if (rows_inline(ep, ep->src_rows[s])) { /* they came with the header */
                ep->p_rp[s] = ep->hrecv + (size_t)s * ep->hcap + align_i32(1 + (size_t)X + (size_t)ep->src_pairs[s]);
                continue;
            }
            ep->p_rp[s] = ep->rbuf + ro;
            ep->p_rc[s] = (size_t)ep->src_rows[s] * H * ep->ws;
            ro += align_up(ep->p_rc[s]);
        }
        ep->stats.remote_pairs = rp;
        if (ro > ep->rbuf_cap) /* the bounds checked above make this impossible */
            return roe_fail(ROE_ERR_INTERNAL, "rank %d: %s: %zu bytes exceed the receive buffer of %zu", me,
                            ep->what[1], ro, ep->rbuf_cap);
        ROE_TRY(roe_comm_exchange_start(ep->xc, (const void *const *)ep->nulls, ep->zeros, ep->p_rp, ep->p_rc,
                                        ROE_COMM_BYTE, ep->what[1]));
    }
    ep->stage = 1;
    sort_tasks(ep);
    return ROE_OK;
}

/* Waits for the headers and takes them; a layer that fails here is over (the communicator
 * is marked failed, the job ends), so the exchange goes back to idle. */
static roe_status headers_in(roe_ep *ep) {
    roe_status st = roe_comm_xfer_wait(ep->xa);
    if (st == ROE_OK) st = headers_take(ep);
    if (st != ROE_OK) ep->phase = 0;
    return st;
}

/* "moe header, layer 3" etc.: copied, not printed (snprintf x 3 was a tenth of a small
 * exchange's bookkeeping); the strings name the operations in errors and in the SIGTERM
 * report, so they must be in place before anything is sent. */
static void name_ops(roe_ep *ep, const char *what) {
    static const char *const prefix[3] = {"moe header, ", "moe dispatch, ", "moe combine, "};
    const size_t wl = strlen(what);
    for (int i = 0; i < 3; i++) {
        const size_t pl = strlen(prefix[i]), cap = sizeof ep->what[i] - 1 - pl, n = wl < cap ? wl : cap;
        memcpy(ep->what[i], prefix[i], pl);
        memcpy(ep->what[i] + pl, what, n);
        ep->what[i][pl + n] = '\0';
    }
}

static roe_status check_begin(const roe_ep *ep, const struct roe_layout_map *map, int n_slots, const char *what) {
    const int N = ep->N, me = ep->me;
    if (ep->phase != 0)
        return roe_fail(ROE_ERR_INTERNAL, "rank %d: dispatch of %s begun while %s is in flight", me, what, ep->what[1]);
    if (map->n_ranks != N || map->n_experts != ep->o.n_experts)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "rank %d: %s: placement for %d ranks and %d experts, but the world has %d ranks "
                        "and the exchange %d experts",
                        me, what, map->n_ranks, map->n_experts, N, ep->o.n_experts);
    if (n_slots < 0 || n_slots > ep->o.max_slots)
        return roe_fail(ROE_ERR_INVALID_ARG, "rank %d: %s: %d slots, the exchange holds %d", me, what, n_slots,
                        ep->o.max_slots);
    return ROE_OK;
}

/* Per destination, what its rows message holds: a run of slots sent as is from x, or the
 * rows packed. */
static void choose_runs(roe_ep *ep) {
    for (int d = 0; d < ep->N; d++) {
        const int nr = ep->ls.rows[d];
        ep->run_lo[d] = -1;
        ep->send_rows[d] = nr;
        if (d == ep->me || nr == 0 || ep->ws != 4 || send_inline(ep, d)) continue;
        const int lo = ep->ls.row_slot[ep->ls.row_off[d]], hi = ep->ls.row_slot[ep->ls.row_off[d] + nr - 1];
        if (4L * (hi - lo + 1) <= 5L * nr) { /* at most a quarter more rows than needed */
            ep->run_lo[d] = lo;
            ep->send_rows[d] = hi - lo + 1;
        }
    }
}

/* Writes d's header at h: rows (or the run's length), pairs per local expert, the pairs'
 * rows, and small rows themselves (64-byte aligned); returns the bytes of inline rows. */
static size_t header_fill(roe_ep *ep, int d, const float *x, int32_t *h) {
    const struct roe_layout_map *map = ep->map;
    const int np = d == ep->me ? 0 : ep->ls.pairs[d], lo = ep->run_lo[d];
    h[0] = ep->send_rows[d];
    memcpy(h + 1, ep->ls.counts + map->base[d], (size_t)map->n_local[d] * sizeof(int32_t));
    int32_t *idx = h + 1 + map->n_local[d];
    for (int i = 0; i < np; i++) {
        const int r = ep->ls.pair_row[ep->ls.pair_off[d] + i];
        idx[i] = lo >= 0 ? ep->ls.row_slot[ep->ls.row_off[d] + r] - lo : r;
    }
    ep->h_sc[d] = 1 + (size_t)map->n_local[d] + (size_t)np;
    if (!send_inline(ep, d)) return 0;
    const size_t at = align_i32(ep->h_sc[d]), rows_bytes = (size_t)ep->ls.rows[d] * (size_t)ep->o.hidden * ep->ws;
    memset(h + ep->h_sc[d], 0, (at - ep->h_sc[d]) * sizeof *h);
    if (rows_bytes % 4) h[at + rows_bytes / 4] = 0; /* an odd count of bf16 values: the tail is sent */
    pack_rows(ep, x, ep->ls.row_slot + ep->ls.row_off[d], ep->ls.rows[d], (unsigned char *)(h + at));
    ep->h_sc[d] = at + (rows_bytes + 3) / 4;
    return rows_bytes;
}

/* Headers out to every rank (each 64-byte aligned in hsend), their receives posted. */
static roe_status headers_out(roe_ep *ep, const float *x) {
    size_t ho = 0;
    for (int d = 0; d < ep->N; d++) {
        int32_t *h = ep->hsend + ho;
        const size_t rows_bytes = header_fill(ep, d, x, h);
        ep->h_sp[d] = h;
        ep->h_rp[d] = ep->hrecv + (size_t)d * ep->hcap;
        ep->h_rc[d] = ep->hcap;
        ho += align_i32(ep->h_sc[d]);
        ep->bytes_d[d] = ep->bytes_c[d] = 0;
        if (d != ep->me) {
            ep->stats.count_bytes += 4.0 * (1 + ep->map->n_local[d]);
            ep->stats.dispatch_bytes += 4.0 * ep->ls.pairs[d] + (double)rows_bytes;
            ep->bytes_d[d] = 4 * ep->h_sc[d];
        }
    }
    return roe_comm_exchange_start(ep->xa, ep->h_sp, ep->h_sc, ep->h_rp, ep->h_rc, ROE_COMM_I32, ep->what[0]);
}

/* Rows out, at the same time as the headers: they need nothing from the other ranks. */
static roe_status rows_out(roe_ep *ep, const float *x) {
    const int me = ep->me;
    const size_t H = (size_t)ep->o.hidden;
    size_t so = 0;
    int mp = 0;
    for (int d = 0; d < ep->N; d++) {
        ep->p_sc[d] = 0;
        ep->mine_off[d] = mp;
        const int np = ep->ls.pairs[d], nr = ep->ls.rows[d], lo = ep->run_lo[d];
        if (d == me || !np) continue;
        mp += np;
        ep->stats.row_sends++;
        if (send_inline(ep, d)) { /* they went with the header */
            ep->stats.inline_sends++;
            continue;
        }
        if (lo >= 0) ep->p_sp[d] = x + (size_t)lo * H;
        else {
            unsigned char *rows = ep->sbuf + so;
            pack_rows(ep, x, ep->ls.row_slot + ep->ls.row_off[d], nr, rows);
            ep->p_sp[d] = rows;
            so += (size_t)nr * H * ep->ws;
        }
        ep->p_sc[d] = (size_t)ep->send_rows[d] * H * ep->ws;
        ep->bytes_d[d] += ep->p_sc[d];
        ep->stats.dispatch_bytes += (double)ep->p_sc[d];
    }
    ep->stats.sent_pairs = mp;
    return roe_comm_exchange_start(ep->xb, ep->p_sp, ep->p_sc, ep->nulls, ep->zeros, ROE_COMM_BYTE, ep->what[1]);
}

/* Polls for the headers for up to opts.early_us; *done says whether they all came. */
static roe_status headers_poll(roe_ep *ep, int *done) {
    const double t0 = roe_now_s();
    for (;;) {
        ROE_TRY(roe_comm_xfer_test(ep->xa, done));
        const double t = roe_now_s() - t0;
        if (*done || t >= ep->early_s) return ROE_OK;
        /* headers on time come within microseconds: spin for those; past that, a rank
         * sharing this core (oversubscribed) may be the late one: give it the core */
        if (t > 20e-6) sched_yield();
    }
}

roe_status roe_ep_begin(roe_ep *ep, const struct roe_layout_map *map, const float *x, int n_slots,
                        const int32_t *sel, const uint8_t *active, float *out, const char *what) {
    const int N = ep->N, H = ep->o.hidden;
    ROE_TRY(check_begin(ep, map, n_slots, what));
    name_ops(ep, what);
    ep->map = map;
    ep->sel = sel;
    ep->stage = 0;
    ep->outp = out;
    memset(&ep->stats, 0, sizeof ep->stats);
    roe_layout_plan_send(map, n_slots, ep->o.top_k, sel, active, &ep->ls, ep->ls_scratch);
    choose_runs(ep);
    ROE_TRY(headers_out(ep, x));
    if (N > 1) ROE_TRY(rows_out(ep, x));
    /* this rank's own inputs (rounded to bf16 on that wire, as travelling ones are) */
    ep->xin = x;
    if (ep->o.wire == ROE_EP_WIRE_BF16) {
        memcpy(ep->xs, x, (size_t)n_slots * H * sizeof(float));
        roe_bf16_round(ep->xs, (size_t)n_slots * H);
        ep->xin = ep->xs;
    }
    ep->phase = 1;
    ep->n_now = ep->n_rest = ep->n_early = ep->next_early = ep->next_now = 0;
    memset(ep->early_done, 0, (size_t)map->n_local[ep->me]);
    /* headers in; a rank that waits for them longer than opts.early_us (another rank is
     * late: its attention had more rows) computes its own rows on its experts meanwhile */
    if (N > 1 && ep->o.overlap && ep->o.early_us >= 0) {
        int done = 0;
        ROE_TRY(headers_poll(ep, &done));
        if (!done) {
            early_tasks(ep);
            return ROE_OK;
        }
    }
    return headers_in(ep);
}

roe_status roe_ep_next_now(roe_ep *ep, const struct roe_ep_task **task) {
    *task = NULL;
    if (ep->phase != 1) return ROE_OK;
    if (ep->stage == 0) { /* headers pending: this rank's own rows, expert by expert */
        int done = 0;
        ROE_TRY(roe_comm_xfer_test(ep->xa, &done));
        if (!done && ep->next_early < ep->n_early) {
            const struct roe_ep_task *t = &ep->early[ep->next_early++];
            ep->early_done[ep->map->local[t->expert]] = 1;
            ep->stats.early_tasks++;
            *task = t;
            return ROE_OK;
        }
        ROE_TRY(headers_in(ep));
    }
    if (ep->N > 1) { /* MPI moves data only while someone calls it */
        int done = 1;
        ROE_TRY(roe_comm_xfer_test(ep->xb, &done));
        ROE_TRY(roe_comm_xfer_test(ep->xc, &done));
    }
    if (ep->next_now < ep->n_now) *task = &ep->now[ep->next_now++];
    return ROE_OK;
}

int roe_ep_tasks_rest(const roe_ep *ep, const struct roe_ep_task **tasks) {
    *tasks = ep->rest;
    return ep->phase == 2 ? ep->n_rest : 0;
}

const float *const *roe_ep_in(const roe_ep *ep) { return ep->in; }
float *const *roe_ep_out(const roe_ep *ep) { return ep->out; }
const float *const *roe_ep_pair_out(const roe_ep *ep) { return ep->pout; }
struct roe_ep_stats roe_ep_last_stats(const roe_ep *ep) { return ep->stats; }

void roe_ep_last_bytes(const roe_ep *ep, size_t *dispatch, size_t *combine) {
    for (int r = 0; r < ep->N; r++) {
        dispatch[r] = ep->N > 1 ? ep->bytes_d[r] : 0;
        combine[r] = ep->N > 1 ? ep->bytes_c[r] : 0;
    }
}

roe_status roe_ep_wait(roe_ep *ep) {
    const int N = ep->N, me = ep->me, H = ep->o.hidden;
    if (ep->phase != 1)
        return roe_fail(ROE_ERR_INTERNAL, "rank %d: dispatch wait without a dispatch in flight", me);
    if (ep->stage == 0) { /* the caller took no early task: headers first */
        ROE_TRY(headers_in(ep));
    }
    if (ep->next_now < ep->n_now) { /* the caller did not take them before waiting: they run after */
        const int left = ep->n_now - ep->next_now;
        memmove(ep->rest + left, ep->rest, (size_t)ep->n_rest * sizeof *ep->rest);
        memcpy(ep->rest, ep->now + ep->next_now, (size_t)left * sizeof *ep->rest);
        ep->n_rest += left;
        ep->next_now = ep->n_now;
    }
    if (N > 1) {
        ROE_TRY(roe_comm_xfer_wait(ep->xc));
        ROE_TRY(roe_comm_xfer_wait(ep->xb));
    }
    ep->phase = 2;
    if (N == 1) return ROE_OK;
    /* received rows: widen (bf16 wire) and point the remote entries at them */
    if (ep->ws == 2)
        for (int s = 0; s < N; s++)
            if (s != me && ep->src_pairs[s])
                widen(ep->p_rp[s], ep->rrows + (size_t)ep->rrow_off[s] * H, (size_t)ep->src_rows[s] * H);
    for (int t = 0; t < ep->n_rest; t++) {
        const struct roe_ep_task *tk = &ep->rest[t];
        for (int i = tk->first; i < tk->first + tk->n; i++) {
            const int s = ep->task_src[i];
            if (s == me) continue;
            const int32_t row = ep->hrecv[(size_t)s * ep->hcap + 1 + (size_t)ep->map->n_local[me] + (size_t)ep->task_idx[i]];
            if (row < 0 || row >= ep->src_rows[s])
                return roe_fail(ROE_ERR_COMM, "rank %d: %s: rank %d sent pair %d for row %d of its %d rows", me,
                                ep->what[1], s, ep->task_idx[i], row, ep->src_rows[s]);
            if (ep->ws == 4) ep->in[i] = (const float *)ep->p_rp[s] + (size_t)row * H;
            else ep->in[i] = ep->rrows + ((size_t)ep->rrow_off[s] + (size_t)row) * H;
            ep->out[i] = ep->ret + ((size_t)ep->ret_off[s] + (size_t)ep->task_idx[i]) * H;
        }
    }
    return ROE_OK;
}

roe_status roe_ep_combine(roe_ep *ep) {
    const int N = ep->N, me = ep->me, H = ep->o.hidden;
    if (ep->phase != 2)
        return roe_fail(ROE_ERR_INTERNAL, "rank %d: combine before the rows of %s arrived", me, ep->what[1]);
    ep->phase = 0;
    const int self_first = ep->ls.pair_off[me];
    for (int i = 0; i < ep->ls.pairs[me]; i++) { /* this rank's own outputs stay where they are */
        const int p = ep->ls.pair_id[self_first + i];
        float *o = ep->outp + (size_t)p * H;
        if (ep->ws == 2) roe_bf16_round(o, (size_t)H); /* ... rounded like travelling ones */
        ep->pout[p] = o;
    }
    if (N == 1) return ROE_OK;
    const void *send = ep->ret;
    if (ep->ws == 2) {
        narrow(ep->ret, ep->ret16, (size_t)ep->stats.remote_pairs * H);
        send = ep->ret16;
    }
    for (int r = 0; r < N; r++) {
        const int back = r == me ? 0 : ep->src_pairs[r], mine = r == me ? 0 : ep->ls.pairs[r];
        ep->cnt_s[r] = (size_t)back * H * ep->ws;
        ep->ptr_s[r] = (const unsigned char *)send + (size_t)ep->ret_off[r] * H * ep->ws;
        ep->cnt_r[r] = (size_t)mine * H * ep->ws;
        ep->ptr_r[r] = ep->retr + (size_t)ep->mine_off[r] * H * ep->ws;
        ep->bytes_c[r] = ep->cnt_s[r];
        ep->stats.combine_bytes += (double)ep->cnt_s[r];
    }
    ROE_TRY(roe_comm_exchange_start(ep->xb, (const void *const *)ep->ptr_s, ep->cnt_s, ep->ptr_r, ep->cnt_r,
                                    ROE_COMM_BYTE, ep->what[2]));
    ROE_TRY(roe_comm_xfer_wait(ep->xb));
    for (int d = 0; d < N; d++) {
        if (d == me) continue;
        for (int i = 0; i < ep->ls.pairs[d]; i++) {
            const int p = ep->ls.pair_id[ep->ls.pair_off[d] + i];
            const size_t at = ((size_t)ep->mine_off[d] + (size_t)i) * H;
            if (ep->ws == 4) ep->pout[p] = (const float *)(const void *)ep->retr + at; /* f32 rows, aligned */
            else {
                widen((const uint16_t *)ep->retr + at, ep->outp + (size_t)p * H, (size_t)H);
                ep->pout[p] = ep->outp + (size_t)p * H;
            }
        }
    }
    return ROE_OK;
}
