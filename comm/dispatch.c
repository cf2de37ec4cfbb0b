/*
 * dispatch.c — expert-parallel dispatch / combine; see dispatch.h.
 *
 * Buffers (sizes fixed at creation; N ranks, R = max_slots, K = top_k, H = hidden,
 * RR / RP = max_recv_rows / max_recv_pairs, w = wire bytes per element):
 *   csend [N + E] int32       count message to each destination d at d + base[d]:
 *                             rows, then pairs per d's local expert
 *   crecv [N (1 + E)] int32   the same from each source s at s (1 + X), X = my experts
 *   sbuf                      rows to other ranks: <= R K 4 + R min(K, N) H w + 128 N bytes
 *   rbuf                      rows from other ranks: <= RP 4 + RR H w + 128 N bytes
 *   ret   [RP, H] f32         outputs computed here for other ranks, by source then index
 *   retr  [R K, H] w          outputs of this rank's pairs computed elsewhere
 *   in/out [R K + RP]         one entry per (expert, row) computed here
 *   bf16 wire only: xs [R, H] f32 (local inputs rounded), rrows [RR, H] f32 (received
 *   rows widened), ret16 [RP, H] bf16 (outputs narrowed for the wire)
 */
#include "dispatch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "runtime/alloc.h"

enum { EP_ALIGN = 64 };

struct roe_ep {
    roe_comm *comm;
    struct roe_ep_opts o;
    int N, me;
    size_t ws; /* wire bytes per element */
    roe_comm_xfer *xfer;
    /* layout */
    struct roe_layout_send ls;
    int *ls_scratch;  /* [2N] */
    int *from;        /* [N * E] */
    int *task_off;    /* [E + 1] */
    int *task_src;    /* [R K + RP] */
    int *task_idx;    /* [R K + RP] */
    int *src_pairs;   /* [N] */
    int *src_rows;    /* [N] */
    int *ret_off;     /* [N] where each source's outputs start in ret (pairs) */
    int *rrow_off;    /* [N] where each source's rows start in rrows (bf16 wire) */
    int *mine_off;    /* [N] where each destination's outputs start in retr (pairs) */
    int *l2g;         /* [E] local expert -> global id */
    /* count exchange */
    int32_t *csend, *crecv;
    size_t *c_sc, *c_sd, *c_rc, *c_rd; /* [N] each */
    /* rows and outputs */
    unsigned char *sbuf, *rbuf, *retr;
    size_t sbuf_cap, rbuf_cap;
    size_t *p_sc, *p_sd, *p_rc, *p_rd; /* [N] bytes */
    size_t *r_sc, *r_sd, *r_rc, *r_rd; /* [N] bytes */
    float *ret;
    uint16_t *ret16;
    float *xs, *rrows;
    const float **in;
    float **out;
    struct roe_ep_task *now, *rest; /* [E] each */
    int n_now, n_rest, n_entries;
    /* the layer in flight */
    const struct roe_layout_map *map;
    const float *x;
    float *outp;
    int n_slots;
    int phase; /* 0 idle, 1 rows in flight, 2 rows arrived */
    char what[3][128];
    struct roe_ep_stats stats;
};

const char *roe_ep_wire_name(roe_ep_wire w) { return w == ROE_EP_WIRE_BF16 ? "bf16" : "f32"; }

static size_t align_up(size_t n) { return (n + EP_ALIGN - 1) & ~(size_t)(EP_ALIGN - 1); }

/* bytes of one rows segment: pair indices, padding, rows; a multiple of EP_ALIGN */
static size_t rows_seg(const roe_ep *ep, int pairs, int rows) {
    if (!pairs) return 0;
    return align_up((size_t)pairs * 4) + align_up((size_t)rows * ep->o.hidden * ep->ws);
}

static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static inline float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void narrow(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = to_bf16(src[i]);
}

static void widen(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = from_bf16(src[i]);
}

void roe_ep_free(roe_ep *ep) {
    if (!ep) return;
    roe_comm_xfer_free(ep->xfer);
    void *ints[] = {ep->ls.rows, ep->ls.pairs, ep->ls.row_off, ep->ls.pair_off, ep->ls.row_slot,
                    ep->ls.pair_id, ep->ls.pair_row, ep->ls.counts, ep->ls_scratch, ep->from,
                    ep->task_off, ep->task_src, ep->task_idx, ep->src_pairs, ep->src_rows,
                    ep->ret_off, ep->rrow_off, ep->mine_off, ep->l2g, ep->csend, ep->crecv,
                    ep->c_sc, ep->c_sd, ep->c_rc, ep->c_rd, ep->p_sc, ep->p_sd, ep->p_rc, ep->p_rd,
                    ep->r_sc, ep->r_sd, ep->r_rc, ep->r_rd, ep->in, ep->out, ep->now, ep->rest};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) roe_free(ints[i]);
    void *big[] = {ep->sbuf, ep->rbuf, ep->retr, ep->ret, ep->ret16, ep->xs, ep->rrows};
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

roe_status roe_ep_create(roe_comm *comm, const struct roe_ep_opts *o, roe_ep **out) {
    *out = NULL;
    if (o->hidden <= 0 || o->top_k <= 0 || o->n_experts <= 0 || o->top_k > o->n_experts ||
        o->max_slots < 0 || o->max_recv_rows < 0 || o->max_recv_pairs < 0)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "expert dispatch: hidden %d, top_k %d, experts %d, max_slots %d, receive bounds "
                        "%d rows / %d pairs",
                        o->hidden, o->top_k, o->n_experts, o->max_slots, o->max_recv_rows, o->max_recv_pairs);
    roe_ep *ep = roe_calloc(1, sizeof *ep);
    if (!ep) return roe_fail(ROE_ERR_NOMEM, "expert dispatch: out of memory");
    ep->comm = comm;
    ep->o = *o;
    ep->N = roe_comm_size(comm);
    ep->me = roe_comm_rank(comm);
    ep->ws = o->wire == ROE_EP_WIRE_BF16 ? 2 : 4;
    const size_t N = (size_t)ep->N, E = (size_t)o->n_experts, K = (size_t)o->top_k, H = (size_t)o->hidden;
    const size_t R = (size_t)o->max_slots, RR = (size_t)o->max_recv_rows, RP = (size_t)o->max_recv_pairs;
    const size_t KN = K < N ? K : N, entries = R * K + RP + 1;
    roe_status st = roe_comm_xfer_create(comm, &ep->xfer);
    if (st != ROE_OK) {
        roe_ep_free(ep);
        return st;
    }
    ep->ls.rows = roe_malloc(N * sizeof(int));
    ep->ls.pairs = roe_malloc(N * sizeof(int));
    ep->ls.row_off = roe_malloc((N + 1) * sizeof(int));
    ep->ls.pair_off = roe_malloc((N + 1) * sizeof(int));
    ep->ls.row_slot = roe_malloc((R * KN + 1) * sizeof(int));
    ep->ls.pair_id = roe_malloc((R * K + 1) * sizeof(int));
    ep->ls.pair_row = roe_malloc((R * K + 1) * sizeof(int));
    ep->ls.counts = roe_malloc(E * sizeof(int));
    ep->ls_scratch = roe_malloc(2 * N * sizeof(int));
    ep->from = roe_malloc(N * E * sizeof(int));
    ep->task_off = roe_malloc((E + 1) * sizeof(int));
    ep->task_src = roe_malloc(entries * sizeof(int));
    ep->task_idx = roe_malloc(entries * sizeof(int));
    ep->src_pairs = roe_malloc(N * sizeof(int));
    ep->src_rows = roe_malloc(N * sizeof(int));
    ep->ret_off = roe_malloc(N * sizeof(int));
    ep->rrow_off = roe_malloc(N * sizeof(int));
    ep->mine_off = roe_malloc(N * sizeof(int));
    ep->l2g = roe_malloc(E * sizeof(int));
    ep->csend = roe_malloc((N + E) * sizeof(int32_t));
    ep->crecv = roe_malloc(N * (1 + E) * sizeof(int32_t));
    size_t **sz[] = {&ep->c_sc, &ep->c_sd, &ep->c_rc, &ep->c_rd, &ep->p_sc, &ep->p_sd,
                     &ep->p_rc, &ep->p_rd, &ep->r_sc, &ep->r_sd, &ep->r_rc, &ep->r_rd};
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) *sz[i] = roe_calloc(N, sizeof(size_t));
    ep->in = roe_malloc(entries * sizeof *ep->in);
    ep->out = roe_malloc(entries * sizeof *ep->out);
    ep->now = roe_malloc(E * sizeof *ep->now);
    ep->rest = roe_malloc(E * sizeof *ep->rest);
    int ok = ep->ls.rows && ep->ls.pairs && ep->ls.row_off && ep->ls.pair_off && ep->ls.row_slot &&
             ep->ls.pair_id && ep->ls.pair_row && ep->ls.counts && ep->ls_scratch && ep->from &&
             ep->task_off && ep->task_src && ep->task_idx && ep->src_pairs && ep->src_rows &&
             ep->ret_off && ep->rrow_off && ep->mine_off && ep->l2g && ep->csend && ep->crecv &&
             ep->in && ep->out && ep->now && ep->rest;
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) ok = ok && *sz[i];
    if (ep->N > 1) { /* one rank moves nothing: no wire buffers */
        ep->sbuf_cap = R * K * 4 + R * KN * H * ep->ws + 2 * EP_ALIGN * N;
        ep->rbuf_cap = RP * 4 + RR * H * ep->ws + 2 * EP_ALIGN * N;
        ep->sbuf = big_alloc(ep->sbuf_cap, 1, 1, &ok);
        ep->rbuf = big_alloc(ep->rbuf_cap, 1, 1, &ok);
        ep->retr = big_alloc(R * K, H, ep->ws, &ok);
        ep->ret = big_alloc(RP, H, sizeof(float), &ok);
        if (o->wire == ROE_EP_WIRE_BF16) {
            ep->ret16 = big_alloc(RP, H, sizeof(uint16_t), &ok);
            ep->rrows = big_alloc(RR, H, sizeof(float), &ok);
        }
    }
    if (o->wire == ROE_EP_WIRE_BF16) ep->xs = big_alloc(R, H, sizeof(float), &ok);
    if (!ok) {
        roe_ep_free(ep);
        return roe_fail(ROE_ERR_NOMEM,
                        "expert dispatch: out of memory for buffers of %zu slots, %zu received rows, "
                        "%zu received pairs of %zu floats",
                        R, RR, RP, H);
    }
    *out = ep;
    return ROE_OK;
}

/* Checks the counts a source announced against our bounds: they come from the network. */
static roe_status check_counts(roe_ep *ep, int s, int rows, int pairs, const int *per_expert, int X) {
    for (int x = 0; x < X; x++)
        if (per_expert[x] < 0 || per_expert[x] > rows)
            return roe_fail(ROE_ERR_COMM,
                            "rank %d: %s: rank %d announced %d pairs of %d rows for local expert %d",
                            ep->me, ep->what[0], s, per_expert[x], rows, x);
    if (rows < 0 || (rows == 0) != (pairs == 0) || rows > pairs || (long)pairs > (long)rows * ep->o.top_k)
        return roe_fail(ROE_ERR_COMM, "rank %d: %s: rank %d announced %d rows with %d pairs (top-%d)",
                        ep->me, ep->what[0], s, rows, pairs, ep->o.top_k);
    return ROE_OK;
}

roe_status roe_ep_begin(roe_ep *ep, const struct roe_layout_map *map, const float *x, int n_slots,
                        const int32_t *sel, const uint8_t *active, float *out, const char *what) {
    const int N = ep->N, me = ep->me, K = ep->o.top_k, H = ep->o.hidden;
    if (ep->phase != 0)
        return roe_fail(ROE_ERR_INTERNAL, "rank %d: dispatch of %s begun while %s is in flight", me, what,
                        ep->what[1]);
    if (map->n_ranks != N || map->n_experts != ep->o.n_experts)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "rank %d: %s: placement for %d ranks and %d experts, but the world has %d ranks "
                        "and the exchange %d experts",
                        me, what, map->n_ranks, map->n_experts, N, ep->o.n_experts);
    if (n_slots < 0 || n_slots > ep->o.max_slots)
        return roe_fail(ROE_ERR_INVALID_ARG, "rank %d: %s: %d slots, the exchange holds %d", me, what,
                        n_slots, ep->o.max_slots);
    snprintf(ep->what[0], sizeof ep->what[0], "moe counts, %s", what);
    snprintf(ep->what[1], sizeof ep->what[1], "moe dispatch, %s", what);
    snprintf(ep->what[2], sizeof ep->what[2], "moe combine, %s", what);
    ep->map = map;
    ep->x = x;
    ep->outp = out;
    ep->n_slots = n_slots;
    memset(&ep->stats, 0, sizeof ep->stats);

    /* layout and count exchange */
    roe_layout_plan_send(map, n_slots, K, sel, active, &ep->ls, ep->ls_scratch);
    const int X = map->n_local[me];
    for (int d = 0; d < N; d++) {
        const int off = d + map->base[d];
        ep->csend[off] = ep->ls.rows[d];
        memcpy(ep->csend + off + 1, ep->ls.counts + map->base[d], (size_t)map->n_local[d] * sizeof(int32_t));
        ep->c_sc[d] = 1 + (size_t)map->n_local[d];
        ep->c_sd[d] = (size_t)off;
        ep->c_rc[d] = 1 + (size_t)X;
        ep->c_rd[d] = (size_t)d * (1 + (size_t)X);
        if (d != me) ep->stats.count_bytes += 4.0 * (double)ep->c_sc[d];
    }
    ROE_TRY(roe_comm_alltoallv(ep->comm, ep->csend, ep->c_sc, ep->c_sd, ep->crecv, ep->c_rc, ep->c_rd,
                               ROE_COMM_I32, ep->what[0]));
    long recv_rows = 0, recv_pairs = 0;
    for (int s = 0; s < N; s++) {
        const int32_t *m = ep->crecv + (size_t)s * (1 + X);
        int pairs = 0;
        for (int xi = 0; xi < X; xi++) {
            ep->from[s * X + xi] = m[1 + xi];
            pairs += m[1 + xi] > 0 ? m[1 + xi] : 0;
        }
        if (s != me) {
            ROE_TRY(check_counts(ep, s, m[0], pairs, m + 1, X));
            recv_rows += m[0];
            recv_pairs += pairs;
        }
        ep->src_rows[s] = m[0];
    }
    if (recv_rows > ep->o.max_recv_rows || recv_pairs > ep->o.max_recv_pairs)
        return roe_fail(ROE_ERR_COMM,
                        "rank %d: %s: other ranks send %ld rows / %ld pairs, more than the %d / %d this "
                        "rank was sized for",
                        me, ep->what[0], recv_rows, recv_pairs, ep->o.max_recv_rows, ep->o.max_recv_pairs);
    ep->n_entries = roe_layout_plan_recv(map, me, ep->from, ep->task_off, ep->task_src, ep->task_idx,
                                         ep->src_pairs);
    for (int e = 0; e < map->n_experts; e++)
        if (map->owner[e] == me) ep->l2g[map->local[e]] = e;

    /* pack and start the rows' all-to-all-v */
    if (N > 1) {
        size_t so = 0, ro = 0;
        int rp = 0, rr = 0, mp = 0;
        for (int d = 0; d < N; d++) {
            ep->p_sc[d] = ep->p_sd[d] = ep->p_rc[d] = ep->p_rd[d] = 0;
            ep->mine_off[d] = mp;
            ep->ret_off[d] = rp;
            ep->rrow_off[d] = rr;
            if (d == me) continue;
            const int np = ep->ls.pairs[d], nr = ep->ls.rows[d];
            if (np) {
                unsigned char *seg = ep->sbuf + so;
                memcpy(seg, ep->ls.pair_row + ep->ls.pair_off[d], (size_t)np * sizeof(int32_t));
                unsigned char *rows = seg + align_up((size_t)np * 4);
                for (int i = 0; i < nr; i++) {
                    const float *src = x + (size_t)ep->ls.row_slot[ep->ls.row_off[d] + i] * H;
                    if (ep->ws == 4) memcpy(rows + (size_t)i * H * 4, src, (size_t)H * 4);
                    else narrow(src, (uint16_t *)(rows + (size_t)i * H * 2), (size_t)H);
                }
                ep->p_sd[d] = so;
                ep->p_sc[d] = rows_seg(ep, np, nr);
                so += ep->p_sc[d];
                mp += np;
            }
            if (ep->src_pairs[d]) {
                ep->p_rd[d] = ro;
                ep->p_rc[d] = rows_seg(ep, ep->src_pairs[d], ep->src_rows[d]);
                ro += ep->p_rc[d];
                rp += ep->src_pairs[d];
                rr += ep->src_rows[d];
            }
            ep->stats.dispatch_bytes += (double)ep->p_sc[d];
        }
        ep->stats.sent_pairs = mp;
        ep->stats.remote_pairs = rp;
        if (so > ep->sbuf_cap || ro > ep->rbuf_cap) /* the bounds above make this impossible */
            return roe_fail(ROE_ERR_INTERNAL, "rank %d: %s: %zu / %zu bytes exceed the buffers (%zu / %zu)",
                            me, ep->what[1], so, ro, ep->sbuf_cap, ep->rbuf_cap);
        ROE_TRY(roe_comm_alltoallv_start(ep->xfer, ep->sbuf, ep->p_sc, ep->p_sd, ep->rbuf, ep->p_rc,
                                         ep->p_rd, ROE_COMM_BYTE, ep->what[1]));
    }
    ep->phase = 1;

    /* this rank's own pairs: inputs are its slots (rounded to bf16 on that wire) */
    const float *xin = x;
    if (ep->o.wire == ROE_EP_WIRE_BF16) {
        for (size_t i = 0; i < (size_t)n_slots * H; i++) ep->xs[i] = from_bf16(to_bf16(x[i]));
        xin = ep->xs;
    }
    const int self_first = ep->ls.pair_off[me];
    ep->n_now = ep->n_rest = 0;
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
            ep->in[i] = xin + (size_t)(p / K) * H;
            ep->out[i] = out + (size_t)p * H;
        }
        const struct roe_ep_task t = {.expert = ep->l2g[xi], .first = b, .n = e - b};
        if (!remote && (ep->o.overlap || N == 1)) ep->now[ep->n_now++] = t;
        else ep->rest[ep->n_rest++] = t;
    }
    return ROE_OK;
}

int roe_ep_tasks_now(const roe_ep *ep, const struct roe_ep_task **tasks) {
    *tasks = ep->now;
    return ep->n_now;
}

int roe_ep_tasks_rest(const roe_ep *ep, const struct roe_ep_task **tasks) {
    *tasks = ep->rest;
    return ep->phase == 2 ? ep->n_rest : 0;
}

const float *const *roe_ep_in(const roe_ep *ep) { return ep->in; }
float *const *roe_ep_out(const roe_ep *ep) { return ep->out; }
struct roe_ep_stats roe_ep_last_stats(const roe_ep *ep) { return ep->stats; }

roe_status roe_ep_progress(roe_ep *ep) {
    int done = 1;
    if (ep->N > 1 && ep->phase == 1) return roe_comm_xfer_test(ep->xfer, &done);
    return ROE_OK;
}

roe_status roe_ep_wait(roe_ep *ep) {
    const int N = ep->N, me = ep->me, H = ep->o.hidden;
    if (ep->phase != 1)
        return roe_fail(ROE_ERR_INTERNAL, "rank %d: dispatch wait without a dispatch in flight", me);
    if (N > 1) ROE_TRY(roe_comm_xfer_wait(ep->xfer));
    ep->phase = 2;
    if (N == 1) return ROE_OK;
    /* received rows: widen (bf16 wire) and point the remote entries at them */
    for (int s = 0; s < N; s++) {
        if (s == me || !ep->src_pairs[s]) continue;
        const unsigned char *seg = ep->rbuf + ep->p_rd[s];
        const unsigned char *rows = seg + align_up((size_t)ep->src_pairs[s] * 4);
        if (ep->ws == 2)
            widen((const uint16_t *)rows, ep->rrows + (size_t)ep->rrow_off[s] * H, (size_t)ep->src_rows[s] * H);
    }
    for (int t = 0; t < ep->n_rest; t++) {
        const struct roe_ep_task *tk = &ep->rest[t];
        for (int i = tk->first; i < tk->first + tk->n; i++) {
            const int s = ep->task_src[i];
            if (s == me) continue;
            const unsigned char *seg = ep->rbuf + ep->p_rd[s];
            int32_t row;
            memcpy(&row, seg + (size_t)ep->task_idx[i] * 4, 4);
            if (row < 0 || row >= ep->src_rows[s])
                return roe_fail(ROE_ERR_COMM, "rank %d: %s: rank %d sent pair %d for row %d of its %d rows",
                                me, ep->what[1], s, ep->task_idx[i], row, ep->src_rows[s]);
            if (ep->ws == 4)
                ep->in[i] = (const float *)(seg + align_up((size_t)ep->src_pairs[s] * 4)) + (size_t)row * H;
            else
                ep->in[i] = ep->rrows + ((size_t)ep->rrow_off[s] + (size_t)row) * H;
            ep->out[i] = ep->ret + ((size_t)ep->ret_off[s] + (size_t)ep->task_idx[i]) * H;
        }
    }
    return ROE_OK;
}

roe_status roe_ep_combine(roe_ep *ep) {
    const int N = ep->N, me = ep->me, K = ep->o.top_k, H = ep->o.hidden;
    if (ep->phase != 2)
        return roe_fail(ROE_ERR_INTERNAL, "rank %d: combine before the rows of %s arrived", me, ep->what[1]);
    ep->phase = 0;
    if (ep->ws == 2) /* this rank's own outputs take the same rounding as travelling ones */
        for (int i = 0; i < ep->ls.pairs[me]; i++) {
            float *o = ep->outp + (size_t)ep->ls.pair_id[ep->ls.pair_off[me] + i] * H;
            for (int d = 0; d < H; d++) o[d] = from_bf16(to_bf16(o[d]));
        }
    if (N == 1) return ROE_OK;
    for (int r = 0; r < N; r++) {
        const int back = r == me ? 0 : ep->src_pairs[r], mine = r == me ? 0 : ep->ls.pairs[r];
        ep->r_sc[r] = (size_t)back * H * ep->ws;
        ep->r_sd[r] = (size_t)ep->ret_off[r] * H * ep->ws;
        ep->r_rc[r] = (size_t)mine * H * ep->ws;
        ep->r_rd[r] = (size_t)ep->mine_off[r] * H * ep->ws;
        ep->stats.combine_bytes += (double)ep->r_sc[r];
    }
    const void *send = ep->ret;
    if (ep->ws == 2) {
        narrow(ep->ret, ep->ret16, (size_t)ep->stats.remote_pairs * H);
        send = ep->ret16;
    }
    ROE_TRY(roe_comm_alltoallv(ep->comm, send, ep->r_sc, ep->r_sd, ep->retr, ep->r_rc, ep->r_rd,
                               ROE_COMM_BYTE, ep->what[2]));
    for (int d = 0; d < N; d++) {
        if (d == me) continue;
        for (int i = 0; i < ep->ls.pairs[d]; i++) {
            const int p = ep->ls.pair_id[ep->ls.pair_off[d] + i];
            float *o = ep->outp + (size_t)p * H;
            const size_t at = ((size_t)ep->mine_off[d] + (size_t)i) * H;
            if (ep->ws == 4) memcpy(o, (const float *)ep->retr + at, (size_t)H * sizeof(float));
            else widen((const uint16_t *)ep->retr + at, o, (size_t)H);
        }
    }
    (void)K;
    return ROE_OK;
}
