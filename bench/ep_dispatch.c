/*
 * ep_dispatch.c — dispatch + combine of expert parallelism (comm/dispatch.h) against a raw
 * MPI_Alltoallv of the same bytes, measured in the same run (PERFORMANCE-GOALS.md).
 *
 *   mpirun -np N build/ep_dispatch [--hidden 2048] [--top-k 8] [--experts 64]
 *                                  [--max-rows 4096] [--wire f32|bf16] [--compute US] [--skew US]
 *                                  [--hot P] [--early-us US] [--inline-bytes B] [--cold]
 *                                  [--budget S (seconds of iterations per size, 0.6)] [--json]
 *
 * For rows = 1, 2, 4, ... max-rows per rank, every rank routes its rows to top-k of the
 * experts uniformly at random (distinct per row; Philox, fixed seed), the experts placed in
 * contiguous blocks. One iteration is a whole layer's exchange: headers (counts, pair
 * indices) and rows out, outputs back; the "experts" copy their input to their output
 * (checked once per size) and are not timed, and the ranks line up (untimed) before the
 * combine, so that what is timed is the communication and its bookkeeping, not expert
 * work or its imbalance. The raw baseline
 * is two MPI_Alltoallv calls (rows out, outputs back) moving exactly the per-peer bytes the
 * exchange moved, from ready-packed buffers. Both sides send bytes written just before, as in
 * a real layer (attention writes the rows, the experts their outputs): before each iteration
 * the rows are rewritten, and the raw send buffer too (untimed). Data a core has just written
 * sits dirty in its cache, and another core reads it slower than memory nobody wrote since
 * (measured: 128 KB over shared memory, 9.9 us clean, 15.7 us just written) — so the raw
 * baseline is also timed from clean buffers (raw_clean), the flattering bound.
 *
 * --compute US adds a synthetic expert costing US microseconds per expert task (a spin), and
 * measures the whole layer with overlap on and off: what computing the experts fed only by
 * local rows while the other rows travel buys. --skew US makes rank 0 reach the layer US
 * microseconds late (as when its attention has more rows): the others can use the wait.
 * In these modes the time columns are the layer's (experts included), not the exchange's.
 * --hot P sends each pick to an expert of the last rank with probability P (else uniformly
 * to any): its experts are the hot ones, so it has the most expert work, and, at few rows,
 * many of its experts are chosen by its own rows only (local-only tasks, which overlap can run
 * before the other ranks' rows arrive). --early-us sets how long a rank waits for a late
 * rank's headers before running its own rows early (comm/dispatch.h; default 100, 0 at once,
 * -1 never). --inline-bytes sets up to how many bytes of rows for one rank ride in its header
 * message (comm/dispatch.h; default 16384, 0 never).
 *
 * Prints one line per size and, with --json, one JSON object per size. Times are the
 * median over iterations of the slowest rank.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef ROE_HAVE_MPI
#include <mpi.h>

#include "comm/comm.h"
#include "comm/dispatch.h"
#include "comm/layout.h"
#include "base/clock.h"
#include "base/env.h"
#include "base/philox.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    if (n <= 0) return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void spin(double us) {
    const double t = roe_now_s() + us * 1e-6;
    while (roe_now_s() < t) {
    }
}

static roe_comm *roe__bench_comm;

/* Cache state before every timed exchange, ours and raw alike. Warm (the default): as the
 * previous iteration left it, every side's buffers touched once per iteration, so none is
 * favoured (a buffer touched more recently is: two 2 MB exchanges between 2 ranks through the
 * same Isend/Irecv code took 460 us into buffers touched one measurement earlier, 350 us into
 * buffers touched just before). --cold: evicted before each measurement (a buffer of 1.5x
 * the last-level cache read through), as in a real layer, where the experts' weights stream
 * through the caches between one exchange and the next: then the transfer's and MPI's own
 * memory come from DRAM, and bookkeeping costs by the cache lines it touches. */
static const unsigned char *evict_buf;
static size_t evict_n;
static volatile unsigned evict_sink;

static void evict(void) {
    unsigned acc = 0;
    for (size_t i = 0; i < evict_n; i += 64) acc += evict_buf[i];
    evict_sink += acc;
}

static void evict_init(int cold) {
    if (!cold) return;
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    evict_n = (size_t)(l3 > 0 ? l3 : 32L << 20) * 3 / 2;
    unsigned char *b = malloc(evict_n);
    if (!b) {
        evict_n = 0;
        return;
    }
    memset(b, 1, evict_n);
    evict_buf = b;
}

struct cfg {
    int hidden, top_k, experts, max_rows, json, cold;
    roe_ep_wire wire;
    double compute_us, skew_us, budget_s, hot;
    int early_us, inline_bytes;
};

/* One layer's exchange; returns (dispatch, combine) seconds. */
static roe_status layer(roe_ep *ep, const struct roe_layout_map *map, const float *x, int rows,
                        const int32_t *sel, float *out, const struct cfg *c, double *t_disp, double *t_comb) {
    const int H = c->hidden;
    const double t0 = roe_now_s();
    if (c->skew_us > 0 && roe_comm_rank(roe__bench_comm) == 0) spin(c->skew_us);
    roe_status st = roe_ep_begin(ep, map, x, rows, sel, NULL, out, "bench");
    if (st != ROE_OK) return st;
    double busy = 0;
    const struct roe_ep_task *t;
    const float *const *in = roe_ep_in(ep);
    float *const *o = roe_ep_out(ep);
    for (;;) {
        if ((st = roe_ep_next_now(ep, &t)) != ROE_OK) return st;
        if (!t) break;
        const double a = roe_now_s();
        for (int j = t->first; j < t->first + t->n; j++) memcpy(o[j], in[j], (size_t)H * sizeof(float));
        if (c->compute_us > 0) spin(c->compute_us);
        busy += roe_now_s() - a;
    }
    if ((st = roe_ep_wait(ep)) != ROE_OK) return st;
    const double tw = roe_now_s();
    const int layer_mode = c->compute_us > 0 || c->skew_us > 0;
    /* timing the exchange alone: no rank may copy expert outputs while another is still in
     * its timed dispatch (the copy would take its memory bandwidth, or, oversubscribed, its
     * core), so the ranks line up first (untimed); the raw baseline has nothing in between */
    if (!layer_mode) MPI_Barrier(MPI_COMM_WORLD);
    const int nt = roe_ep_tasks_rest(ep, &t);
    for (int i = 0; i < nt; i++) {
        for (int j = t[i].first; j < t[i].first + t[i].n; j++) memcpy(o[j], in[j], (size_t)H * sizeof(float));
        if (c->compute_us > 0) spin(c->compute_us);
    }
    /* the same before the combine: the ranks' uneven expert work must not show up as waiting */
    if (!layer_mode) MPI_Barrier(MPI_COMM_WORLD);
    const double t1 = roe_now_s();
    if ((st = roe_ep_combine(ep)) != ROE_OK) return st;
    const double t2 = roe_now_s();
    /* with --compute / --skew the experts are part of the layer; without, only the exchange */
    *t_disp = layer_mode ? t1 - t0 : tw - t0 - busy;
    *t_comb = t2 - t1;
    return ROE_OK;
}

static int run(const struct cfg *c, roe_comm *comm) {
    const int N = roe_comm_size(comm), me = roe_comm_rank(comm);
    const int H = c->hidden, K = c->top_k, E = c->experts, R = c->max_rows;
    int *owner = malloc((size_t)E * sizeof *owner), *local = malloc((size_t)E * sizeof *local);
    int *n_local = malloc((size_t)N * sizeof *n_local), *base = malloc((size_t)(N + 1) * sizeof *base);
    for (int e = 0; e < E; e++) owner[e] = (int)((long)e * N / E);
    struct roe_layout_map map;
    if (roe_layout_map_build(N, E, owner, local, n_local, base, &map) != ROE_OK) return 1;
    float *x = malloc((size_t)R * H * sizeof(float)), *x0 = malloc((size_t)R * H * sizeof(float));
    float *out = malloc((size_t)R * K * H * sizeof(float));
    int32_t *sel = malloc((size_t)R * K * sizeof *sel);
    for (size_t i = 0; i < (size_t)R * H; i++) {
        struct roe_philox_out r = roe_philox4x32((uint32_t)i, (uint32_t)me, 1, 2, 0xD15, 0);
        x0[i] = x[i] = roe_u32_to_unit(r.v[0]) - 0.5f;
    }
    /* layout arrays to size the raw baseline */
    struct roe_layout_send ls = {
        malloc((size_t)N * sizeof(int)), malloc((size_t)N * sizeof(int)), malloc((size_t)(N + 1) * sizeof(int)),
        malloc((size_t)(N + 1) * sizeof(int)), malloc((size_t)R * K * sizeof(int)), malloc((size_t)R * K * sizeof(int)),
        malloc((size_t)R * K * sizeof(int)), malloc((size_t)E * sizeof(int))};
    int *scratch = malloc(2 * (size_t)N * sizeof(int));
    int *sc_d = malloc((size_t)N * sizeof(int)), *sd_d = malloc((size_t)N * sizeof(int));
    int *rc_d = malloc((size_t)N * sizeof(int)), *rd_d = malloc((size_t)N * sizeof(int));
    int *sc_c = malloc((size_t)N * sizeof(int)), *sd_c = malloc((size_t)N * sizeof(int));
    int *rc_c = malloc((size_t)N * sizeof(int)), *rd_c = malloc((size_t)N * sizeof(int));
    int *mine = malloc(2 * (size_t)N * sizeof(int)), *theirs = malloc(2 * (size_t)N * sizeof(int));
    size_t *bd = malloc((size_t)N * sizeof *bd), *bc = malloc((size_t)N * sizeof *bc);
    const int layer_mode = c->compute_us > 0 || c->skew_us > 0;
    if (me == 0 && !c->json) {
        if (layer_mode)
            printf("# ranks %d, hidden %d, top-%d of %d experts, wire %s, experts of %.0f us, rank 0 late by %.0f us, "
                   "picks to rank %d's experts with p %.2f\n"
                   "# rows/rank  layer_us(overlap)  layer_us(no overlap)  gain\n",
                   N, H, K, E, roe_ep_wire_name(c->wire), c->compute_us, c->skew_us, N - 1, c->hot);
        else
            printf("# ranks %d, hidden %d, top-%d of %d experts, wire %s, caches %s\n"
                   "# rows/rank  exchange_us  raw_us  ratio(raw/ours)  MB/rank  ours_GB/s  raw_GB/s  raw_clean_us  ratio(clean)\n",
                   N, H, K, E, roe_ep_wire_name(c->wire), c->cold ? "cold" : "warm");
    }
    for (int rows = 1; rows <= R; rows *= 2) {
        for (int j = 0; j < rows; j++)
            for (int k = 0; k < K; k++) {
                int e;
                for (int tries = 0;; tries++) {
                    struct roe_philox_out r = roe_philox4x32((uint32_t)j, (uint32_t)k, (uint32_t)tries,
                                                             (uint32_t)rows, 0xE9 + (uint32_t)me, 7);
                    e = (int)(r.v[0] % (uint32_t)E);
                    if (roe_u32_to_unit(r.v[1]) < c->hot) { /* one of the last rank's experts */
                        const int lo = map.base[N - 1], n_hot = map.n_local[N - 1];
                        e = lo + (int)(r.v[2] % (uint32_t)n_hot);
                    }
                    int dup = 0;
                    for (int q = 0; q < k; q++) dup |= sel[j * K + q] == e;
                    if (!dup) break;
                }
                sel[j * K + k] = e;
            }
        roe_layout_plan_send(&map, rows, K, sel, NULL, &ls, scratch);
        for (int d = 0; d < N; d++) {
            mine[2 * d] = ls.rows[d];
            mine[2 * d + 1] = ls.pairs[d];
        }
        MPI_Alltoall(mine, 2, MPI_INT, theirs, 2, MPI_INT, MPI_COMM_WORLD);
        long recv_rows = 0, recv_pairs = 0; /* bounds: a run of slots may add rows */
        for (int p = 0; p < N; p++)
            if (p != me) {
                recv_rows += theirs[2 * p] ? rows : 0;
                recv_pairs += theirs[2 * p + 1];
            }
        /* raw: [0] just written, [1] clean (written once); each side touches its own buffers
         * once per iteration, as ours does */
        char *rbuf_s[2] = {NULL, NULL}, *rbuf_r[2] = {NULL, NULL};
        struct roe_ep_opts eo = roe_ep_opts_default();
        eo.hidden = H;
        eo.top_k = K;
        eo.n_experts = E;
        eo.max_slots = rows;
        eo.max_recv_rows = (int)recv_rows;
        eo.max_recv_pairs = (int)recv_pairs;
        eo.wire = c->wire;
        eo.overlap = layer_mode;
        eo.early_us = c->early_us;
        eo.inline_bytes = c->inline_bytes;
        roe_ep *ep = NULL, *ep_no = NULL;
        if (roe_ep_create(comm, &eo, &ep) != ROE_OK) goto fail;
        eo.overlap = 0;
        if ((c->compute_us > 0 || c->skew_us > 0) && roe_ep_create(comm, &eo, &ep_no) != ROE_OK) goto fail;
        const double budget = c->budget_s; /* seconds of timed iterations per size */
        int iters = 0;
        enum { MAXIT = 200 };
        double td[MAXIT], tc[MAXIT], traw[MAXIT], traw1[MAXIT], tclean[MAXIT], tno[MAXIT];
        /* warm-up and check: every pair's output is its row */
        double a, b;
        if (layer(ep, &map, x, rows, sel, out, c, &a, &b) != ROE_OK) goto fail;
        const float *const *po = roe_ep_pair_out(ep);
        for (int p = 0; p < rows * K && c->wire == ROE_EP_WIRE_F32; p++) /* bf16 rounds: f32 only */
            for (int d = 0; d < H; d += 97) {
                const float want = x[(size_t)(p / K) * H + d];
                if (po[p][d] != want) {
                    fprintf(stderr, "ep_dispatch: rank %d rows %d: pair %d element %d is %g, want %g\n", me, rows,
                            p, d, po[p][d], want);
                    goto fail;
                }
            }
        /* the raw baseline moves exactly the bytes this exchange sent to each peer */
        roe_ep_last_bytes(ep, bd, bc);
        for (int p = 0; p < N; p++) {
            mine[2 * p] = (int)bd[p];
            mine[2 * p + 1] = (int)bc[p];
        }
        MPI_Alltoall(mine, 2, MPI_INT, theirs, 2, MPI_INT, MPI_COMM_WORLD);
        size_t sd = 0, rd = 0, sc = 0, rcb = 0;
        for (int p = 0; p < N; p++) {
            sc_d[p] = mine[2 * p];
            rc_d[p] = theirs[2 * p];
            sc_c[p] = mine[2 * p + 1];
            rc_c[p] = theirs[2 * p + 1];
        }
        for (int p = 0; p < N; p++) {
            sd_d[p] = (int)sd;
            rd_d[p] = (int)rd;
            sd += (size_t)sc_d[p];
            rd += (size_t)rc_d[p];
        }
        for (int p = 0; p < N; p++) {
            sd_c[p] = (int)(sd + sc);
            rd_c[p] = (int)(rd + rcb);
            sc += (size_t)sc_c[p];
            rcb += (size_t)rc_c[p];
        }
        for (int k = 0; k < 2; k++) {
            rbuf_s[k] = malloc(sd + sc + 64);
            rbuf_r[k] = malloc(rd + rcb + 64);
            if (!rbuf_s[k] || !rbuf_r[k]) {
                roe_fail(ROE_ERR_NOMEM, "raw buffers of %zu + %zu bytes", sd + sc, rd + rcb);
                goto fail;
            }
            memset(rbuf_s[k], 1, sd + sc + 64);
            memset(rbuf_r[k], 0, rd + rcb + 64);
        }
        const double t_start = roe_now_s();
        for (;;) {
            evict();
            memcpy(x, x0, (size_t)rows * H * sizeof(float)); /* the rows, just written */
            MPI_Barrier(MPI_COMM_WORLD);
            if (layer(ep, &map, x, rows, sel, out, c, &td[iters], &tc[iters]) != ROE_OK) goto fail;
            for (int fresh = 1; fresh >= 0; fresh--) {
                evict();
                char *bs = rbuf_s[1 - fresh], *br = rbuf_r[1 - fresh];
                if (fresh) memset(bs, 1 + iters % 2, sd + sc);
                MPI_Barrier(MPI_COMM_WORLD);
                double t0 = roe_now_s();
                MPI_Alltoallv(bs, sc_d, sd_d, MPI_BYTE, br, rc_d, rd_d, MPI_BYTE, MPI_COMM_WORLD);
                if (fresh) traw1[iters] = roe_now_s() - t0;
                MPI_Alltoallv(bs, sc_c, sd_c, MPI_BYTE, br, rc_c, rd_c, MPI_BYTE, MPI_COMM_WORLD);
                const double dt = roe_now_s() - t0;
                if (fresh) traw[iters] = dt;
                else tclean[iters] = dt;
            }
            if (ep_no) {
                evict();
                MPI_Barrier(MPI_COMM_WORLD);
                double x1, x2;
                if (layer(ep_no, &map, x, rows, sel, out, c, &x1, &x2) != ROE_OK) goto fail;
                tno[iters] = x1 + x2;
            }
            iters++;
            int stop = iters >= MAXIT || (iters >= 15 && roe_now_s() - t_start > budget);
            MPI_Bcast(&stop, 1, MPI_INT, 0, MPI_COMM_WORLD); /* every rank runs the same count */
            if (stop) break;
        }
        if (getenv("EPD_DEBUG") && me == 0) /* where the time goes, iteration by iteration */
            for (int i = 0; i < iters && i < 8; i++)
                fprintf(stderr, "rows %d it %d: dispatch %.1f us, combine %.1f us, raw %.1f us (out %.1f), clean %.1f us\n",
                        rows, i, td[i] * 1e6, tc[i] * 1e6, traw[i] * 1e6, traw1[i] * 1e6, tclean[i] * 1e6);
        /* an iteration lasts as long as its slowest rank; the ratio is paired, iteration by
         * iteration (ours and raw ran back to back), so that the VM's slow spells cancel */
        for (int i = 0; i < iters; i++) td[i] += tc[i];
        MPI_Allreduce(MPI_IN_PLACE, td, iters, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, traw, iters, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, tclean, iters, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (ep_no) MPI_Allreduce(MPI_IN_PLACE, tno, iters, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        double ratio[MAXIT], ratio_clean[MAXIT];
        for (int i = 0; i < iters; i++) {
            ratio[i] = ep_no ? tno[i] / td[i] : traw[i] / td[i];
            ratio_clean[i] = tclean[i] / td[i];
        }
        const double r_med = median(ratio, iters), rc_med = median(ratio_clean, iters);
        const double vmax[4] = {median(td, iters), median(traw, iters), ep_no ? median(tno, iters) : 0,
                                median(tclean, iters)};
        const struct roe_ep_stats es = roe_ep_last_stats(ep);
        double bytes = es.count_bytes + es.dispatch_bytes + es.combine_bytes, bmax;
        MPI_Reduce(&bytes, &bmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        if (me == 0) {
            const double mb = bmax / 1e6;
            if (layer_mode && c->json)
                printf("{\"ranks\": %d, \"rows_per_rank\": %d, \"hidden\": %d, \"top_k\": %d, \"experts\": %d, "
                       "\"compute_us_per_task\": %.1f, \"skew_us\": %.1f, \"hot\": %.2f, \"layer_us_overlap\": %.2f, "
                       "\"layer_us_no_overlap\": %.2f, \"overlap_gain\": %.3f, \"iters\": %d}\n",
                       N, rows, H, K, E, c->compute_us, c->skew_us, c->hot, vmax[0] * 1e6, vmax[2] * 1e6, r_med, iters);
            else if (layer_mode)
                printf("%10d  %17.1f  %20.1f  %5.3f\n", rows, vmax[0] * 1e6, vmax[2] * 1e6, r_med);
            else if (c->json)
                printf("{\"ranks\": %d, \"rows_per_rank\": %d, \"hidden\": %d, \"top_k\": %d, \"experts\": %d, "
                       "\"wire\": \"%s\", \"caches\": \"%s\", \"exchange_us\": %.2f, \"raw_alltoallv_us\": %.2f, \"ratio_raw_over_ours\": %.3f, "
                       "\"mb_sent_per_rank\": %.3f, \"ours_gbs\": %.3f, \"raw_gbs\": %.3f, \"raw_clean_us\": %.2f, "
                       "\"ratio_raw_clean_over_ours\": %.3f, \"iters\": %d}\n",
                       N, rows, H, K, E, roe_ep_wire_name(c->wire), c->cold ? "cold" : "warm", vmax[0] * 1e6,
                       vmax[1] * 1e6, r_med, mb,
                       bmax / vmax[0] / 1e9, bmax / vmax[1] / 1e9, vmax[3] * 1e6, rc_med, iters);
            else
                printf("%10d  %11.1f  %6.1f  %15.3f  %7.3f  %9.3f  %8.3f  %12.1f  %12.3f\n", rows, vmax[0] * 1e6,
                       vmax[1] * 1e6, r_med, mb, bmax / vmax[0] / 1e9, bmax / vmax[1] / 1e9, vmax[3] * 1e6, rc_med);
            fflush(stdout);
        }
        roe_ep_free(ep);
        roe_ep_free(ep_no);
        for (int k = 0; k < 2; k++) {
            free(rbuf_s[k]);
            free(rbuf_r[k]);
        }
        continue;
    fail:
        fprintf(stderr, "ep_dispatch: rank %d: %s\n", me, roe_error_message());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct cfg c = {.hidden = 2048, .top_k = 8, .experts = 64, .max_rows = 4096, .wire = ROE_EP_WIRE_F32,
                    .budget_s = 0.6, .early_us = roe_ep_opts_default().early_us,
                    .inline_bytes = roe_ep_opts_default().inline_bytes};
    roe_comm *comm = NULL;
    struct roe_comm_opts o = roe_comm_opts_default();
    o.yield_when_idle = roe_env_cores_shared();
    if (roe_comm_mpi_create(&argc, &argv, &o, &comm) != ROE_OK) {
        fprintf(stderr, "ep_dispatch: %s\n", roe_error_message());
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--hidden")) c.hidden = atoi(v), i++;
        else if (!strcmp(a, "--top-k")) c.top_k = atoi(v), i++;
        else if (!strcmp(a, "--experts")) c.experts = atoi(v), i++;
        else if (!strcmp(a, "--max-rows")) c.max_rows = atoi(v), i++;
        else if (!strcmp(a, "--compute")) c.compute_us = atof(v), i++;
        else if (!strcmp(a, "--skew")) c.skew_us = atof(v), i++;
        else if (!strcmp(a, "--hot")) c.hot = atof(v), i++;
        else if (!strcmp(a, "--early-us")) c.early_us = atoi(v), i++;
        else if (!strcmp(a, "--inline-bytes")) c.inline_bytes = atoi(v), i++;
        else if (!strcmp(a, "--budget")) c.budget_s = atof(v), i++;
        else if (!strcmp(a, "--wire")) c.wire = !strcmp(v, "bf16") ? ROE_EP_WIRE_BF16 : ROE_EP_WIRE_F32, i++;
        else if (!strcmp(a, "--json")) c.json = 1;
        else if (!strcmp(a, "--cold")) c.cold = 1;
        else {
            fprintf(stderr, "ep_dispatch: unknown option '%s' (see the comment at the top of bench/ep_dispatch.c)\n", a);
            roe_comm_abort(comm, 2);
        }
    }
    if (c.hidden <= 0 || c.top_k <= 0 || c.experts < c.top_k || c.max_rows <= 0 || !(c.hot >= 0 && c.hot < 1)) {
        fprintf(stderr, "ep_dispatch: bad sizes\n");
        roe_comm_abort(comm, 2);
    }
    roe__bench_comm = comm;
    evict_init(c.cold);
    int rc = run(&c, comm);
    if (rc) roe_comm_abort(comm, rc);
    roe_comm_free(comm);
    return 0;
}

#else
int main(void) {
    fprintf(stderr, "ep_dispatch: this build has no MPI (-DROE_WITH_MPI=OFF)\n");
    return 0;
}
#endif
