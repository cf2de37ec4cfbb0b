/*
 * mpi_comm.c — the MPI transport and the expert exchange across real ranks (run under
 * mpirun with 2 to 4 ranks; tests/CMakeLists.txt registers it):
 *  - every collective against values each rank can predict, gatherv and all-to-all-v with
 *    random counts (zeros included), the per-peer-buffer exchange;
 *  - deterministic reductions (rank order);
 *  - the expert exchange on random routings (ranks with no rows, RoE-style masks, random
 *    placements, overlap on and off, the bf16 wire), many layers back to back: every
 *    pair's output is its expert applied to its row, computed on the expert's owner;
 *  - malformed control messages from rank 0 (truncated, garbage, a step before any session, no
 *    body): every worker stops with a message naming itself and rank 0, the sender;
 *  - a bounded wait: rank 0 answers 3 s late, the others (bound 1 s) time out naming rank 0
 *    and the operation (last, since it leaves the communicator failed).
 * Exit code: 0 if every check passed on this rank.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm.h"
#include "comm/dispatch.h"
#include "harness.h"
#include "comm/control.pb-c.h"
#include "runtime/control.h"
#include "runtime/engine.h"
#include "runtime/model.h"
#include "base/philox.h"
#include "runtime/placement.h"
#include "runtime/rank.h"
#include "runtime/worker.h"

static roe_comm *C;
static int ME, N;

static uint32_t rnd(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return roe_philox4x32(a, b, c, d, 0x5EED, 1).v[0];
}

TEST(collectives) {
    int64_t v[4] = {ME, 10 * ME, -ME, 7};
    for (int root = 0; root < N; root++) {
        int64_t b[4] = {0};
        if (ME == root) memcpy(b, v, sizeof b);
        ASSERT_OK(roe_comm_bcast(C, b, 4, ROE_COMM_I64, root, "test bcast"));
        ASSERT_EQ_INT(b[1], 10 * root);
    }
    int64_t all[4 * 8];
    ASSERT_OK(roe_comm_gather(C, v, 4, all, ROE_COMM_I64, N - 1, "test gather"));
    if (ME == N - 1)
        for (int r = 0; r < N; r++) ASSERT_EQ_INT(all[r * 4 + 1], 10 * r);
    /* gatherv: rank r sends r elements (rank 0 none) */
    float send[8], recv[64];
    size_t counts[8], displs[8], off = 0;
    for (int i = 0; i < ME; i++) send[i] = (float)(100 * ME + i);
    for (int r = 0; r < N; r++) {
        counts[r] = (size_t)r;
        displs[r] = off;
        off += (size_t)r;
    }
    ASSERT_OK(roe_comm_gatherv(C, send, (size_t)ME, recv, counts, displs, ROE_COMM_F32, 0, "test gatherv"));
    if (ME == 0)
        for (int r = 0; r < N; r++)
            for (int i = 0; i < r; i++) ASSERT_TRUE(recv[displs[r] + i] == (float)(100 * r + i));
    /* allreduce: the same bits on every rank, combined in rank order */
    double x[2] = {0.1 * (ME + 1), ME == 1 ? 1e16 : 1.0}, y[2];
    ASSERT_OK(roe_comm_allreduce(C, x, y, 2, ROE_COMM_F64, ROE_COMM_SUM, "test allreduce"));
    double want0 = 0, want1 = 0;
    for (int r = 0; r < N; r++) {
        want0 += 0.1 * (r + 1);
        want1 += r == 1 ? 1e16 : 1.0;
    }
    ASSERT_TRUE(y[0] == want0 && y[1] == want1);
    int32_t mx = ME * 3, got;
    ASSERT_OK(roe_comm_allreduce(C, &mx, &got, 1, ROE_COMM_I32, ROE_COMM_MAX, "test max"));
    ASSERT_EQ_INT(got, 3 * (N - 1));
    ASSERT_OK(roe_comm_barrier(C, "test barrier"));
}

TEST(alltoallv_random) {
    enum { MAXC = 300 };
    size_t sc[8], sd[8], rc[8], rd[8];
    int32_t *s = malloc(8 * MAXC * sizeof *s), *r = malloc(8 * MAXC * sizeof *r); /* MAXC per peer */
    roe_comm_xfer *x = NULL;
    ASSERT_OK(roe_comm_xfer_create(C, &x));
    for (uint32_t it = 0; it < 50; it++) {
        size_t so = 0, ro = 0;
        for (int p = 0; p < N; p++) {
            sc[p] = rnd(it, (uint32_t)ME, (uint32_t)p, 0) % 4 == 0 ? 0 : rnd(it, (uint32_t)ME, (uint32_t)p, 1) % MAXC;
            rc[p] = rnd(it, (uint32_t)p, (uint32_t)ME, 0) % 4 == 0 ? 0 : rnd(it, (uint32_t)p, (uint32_t)ME, 1) % MAXC;
            sd[p] = so;
            rd[p] = ro;
            for (size_t i = 0; i < sc[p]; i++) s[so + i] = (int32_t)(it * 1000000 + (uint32_t)ME * 10000 + (uint32_t)p * 1000 + i);
            so += sc[p];
            ro += rc[p];
        }
        if (it % 2) ASSERT_OK(roe_comm_alltoallv(C, s, sc, sd, r, rc, rd, ROE_COMM_I32, "test alltoallv"));
        else { /* receive counts as capacities: MAXC from every peer that sends anything */
            size_t cap[8];
            for (int p = 0; p < N; p++) cap[p] = rc[p] ? MAXC : 0;
            for (int p = 0; p < N; p++) rd[p] = (size_t)p * MAXC;
            ASSERT_OK(roe_comm_alltoallv_start(x, s, sc, sd, r, cap, rd, ROE_COMM_I32, "test alltoallv"));
            int done = 0;
            ASSERT_OK(roe_comm_xfer_test(x, &done));
            ASSERT_OK(roe_comm_xfer_wait(x));
            const size_t *got = roe_comm_xfer_received(x);
            for (int p = 0; p < N; p++) ASSERT_EQ_INT(got[p], rc[p]);
        }
        for (int p = 0; p < N; p++)
            for (size_t i = 0; i < rc[p]; i++)
                ASSERT_EQ_INT(r[rd[p] + i], (int32_t)(it * 1000000 + (uint32_t)p * 10000 + (uint32_t)ME * 1000 + i));
    }
    roe_comm_xfer_free(x);
    free(s);
    free(r);
}

/* One routing per (layer, rank): slots, experts, mask; placement per layer. */
static void route(uint32_t layer, int rank, int E, int K, int *n_slots, int32_t *sel, uint8_t *active, int max_slots) {
    int n = (int)(rnd(layer, (uint32_t)rank, 99, 0) % (uint32_t)(max_slots + 1));
    if (rnd(layer, (uint32_t)rank, 98, 0) % 5 == 0) n = 0; /* a rank with no rows */
    *n_slots = n;
    for (int j = 0; j < n; j++)
        for (int k = 0; k < K; k++) {
            int e;
            for (uint32_t t = 0;; t++) {
                e = (int)(rnd(layer, (uint32_t)rank, (uint32_t)(j * K + k), t + 7) % (uint32_t)E);
                int dup = 0;
                for (int q = 0; q < k; q++) dup |= sel[j * K + q] == e;
                if (!dup) break;
            }
            sel[j * K + k] = e;
            active[j * K + k] = rnd(layer, (uint32_t)rank, (uint32_t)(j * K + k), 3) % 5 != 0;
        }
}

static float bf16r(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

enum { XH = 36 };

/* Expert e of rank r computes (e + 1) x + r: a result that names who computed it. */
static int fake_expert(roe_ep *ep, const struct roe_ep_task *t, const int *owner) {
    const float *const *in = roe_ep_in(ep);
    float *const *o = roe_ep_out(ep);
    if (owner[t->expert] != ME) {
        TEST__FAIL("rank %d computed expert %d owned by %d", ME, t->expert, owner[t->expert]);
        return 0;
    }
    for (int j = t->first; j < t->first + t->n; j++)
        for (int d = 0; d < XH; d++) o[j][d] = (float)(t->expert + 1) * in[j][d] + (float)ME;
    return 1;
}

enum { INLINE_DEFAULT = 16384, EARLY_DEFAULT = 100 }; /* roe_ep_opts_default() (test_comm checks) */

/* inline_bytes: the default (at this width every rank's rows ride in its header), 0 never,
 * 300: some ranks' rows inline and others' on their own in the same layer; early_us: < 0
 * never early tasks */
static void exchange(roe_ep_wire wire, int overlap, int inline_bytes, int early_us) {
    enum { H = XH, K = 3, E = 10, S = 24 };
    int64_t early = 0, row_sends = 0, inline_sends = 0;
    int owner[E], local[E], n_local[8], base[9];
    roe_ep *ep = NULL;
    struct roe_ep_opts o = roe_ep_opts_default();
    o.hidden = H;
    o.top_k = K;
    o.n_experts = E;
    o.max_slots = S;
    o.max_recv_rows = S * N;
    o.max_recv_pairs = S * N * K;
    o.wire = wire;
    o.overlap = overlap;
    o.inline_bytes = inline_bytes;
    o.early_us = early_us;
    ASSERT_OK(roe_ep_create(C, &o, &ep));
    float *x = malloc(S * H * sizeof(float)), *out = malloc(S * K * H * sizeof(float));
    int32_t sel[S * K];
    uint8_t active[S * K];
    for (uint32_t layer = 0; layer < 40; layer++) {
        const int kind = (int)(layer % 3); /* contiguous, random, all on the last rank */
        for (int e = 0; e < E; e++)
            owner[e] = kind == 0 ? e * N / E : kind == 1 ? (int)(rnd(layer, 5, (uint32_t)e, 5) % (uint32_t)N) : N - 1;
        struct roe_layout_map map;
        ASSERT_OK(roe_layout_map_build(N, E, owner, local, n_local, base, &map));
        int n = 0;
        route(layer, ME, E, K, &n, sel, active, S);
        for (int i = 0; i < n * H; i++) x[i] = (float)(rnd(layer, (uint32_t)ME, (uint32_t)i, 11) % 2000) * 0.001f - 1.0f;
        /* every fourth layer rank 0 comes 5 ms late: the others run their own rows early */
        if (layer % 4 == 3 && ME == 0) nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
        ASSERT_OK(roe_ep_begin(ep, &map, x, n, sel, layer % 2 ? active : NULL, out, "test layer"));
        const struct roe_ep_task *t;
        for (;;) { /* what runs before the rows arrive */
            ASSERT_OK(roe_ep_next_now(ep, &t));
            if (!t) break;
            if (!fake_expert(ep, t, owner)) return;
        }
        ASSERT_OK(roe_ep_wait(ep));
        const int nt = roe_ep_tasks_rest(ep, &t);
        for (int i = 0; i < nt; i++)
            if (!fake_expert(ep, &t[i], owner)) return;
        const struct roe_ep_stats es = roe_ep_last_stats(ep);
        early += es.early_tasks;
        row_sends += es.row_sends;
        inline_sends += es.inline_sends;
        ASSERT_OK(roe_ep_combine(ep));
        const float *const *po = roe_ep_pair_out(ep);
        for (int p = 0; p < n * K; p++) {
            if (layer % 2 && !active[p]) continue;
            const int e = sel[p];
            for (int d = 0; d < H; d++) {
                float v = x[(p / K) * H + d];
                float want = wire == ROE_EP_WIRE_BF16 ? bf16r((float)(e + 1) * bf16r(v) + (float)owner[e])
                                                      : (float)(e + 1) * v + (float)owner[e];
                if (po[p][d] != want) {
                    TEST__FAIL("rank %d layer %u pair %d (expert %d) element %d: %g, want %g", ME, layer, p, e, d,
                               po[p][d], want);
                    return;
                }
            }
        }
    }
    /* the early path ran somewhere (ranks 1.. wait 5 ms for rank 0 in 10 layers), unless
     * it is off */
    if (overlap && N > 1) {
        int64_t all = early;
        ASSERT_OK(roe_comm_allreduce(C, &all, &all, 1, ROE_COMM_I64, ROE_COMM_SUM, "early tasks"));
        ASSERT_TRUE(early_us < 0 ? all == 0 : all > 0);
    }
    /* the rows went the way inline_bytes says: all inside the headers, none, or some of each */
    if (N > 1) {
        int64_t all[2] = {row_sends, inline_sends};
        ASSERT_OK(roe_comm_allreduce(C, all, all, 2, ROE_COMM_I64, ROE_COMM_SUM, "row sends"));
        ASSERT_TRUE(all[0] > 0);
        if (inline_bytes == INLINE_DEFAULT) ASSERT_TRUE(all[1] == all[0]);
        else if (inline_bytes == 0) ASSERT_TRUE(all[1] == 0);
        else ASSERT_TRUE(all[1] > 0 && all[1] < all[0]);
    }
    free(x);
    free(out);
    roe_ep_free(ep);
}

TEST(exchange_f32_overlap) { exchange(ROE_EP_WIRE_F32, 1, INLINE_DEFAULT, EARLY_DEFAULT); }
TEST(exchange_f32_no_overlap) { exchange(ROE_EP_WIRE_F32, 0, INLINE_DEFAULT, EARLY_DEFAULT); }
TEST(exchange_bf16) { exchange(ROE_EP_WIRE_BF16, 1, INLINE_DEFAULT, EARLY_DEFAULT); }
TEST(exchange_f32_rows_apart) { exchange(ROE_EP_WIRE_F32, 1, 0, EARLY_DEFAULT); }
TEST(exchange_f32_rows_mixed) { exchange(ROE_EP_WIRE_F32, 1, 300, EARLY_DEFAULT); }
TEST(exchange_bf16_rows_mixed) { exchange(ROE_EP_WIRE_BF16, 0, 300, EARLY_DEFAULT); }
TEST(exchange_f32_early_at_once) { exchange(ROE_EP_WIRE_F32, 1, INLINE_DEFAULT, 0); }
TEST(exchange_f32_never_early) { exchange(ROE_EP_WIRE_F32, 1, INLINE_DEFAULT, -1); }

/* Rank 0 broadcasts raw bytes as a control message (the framing of roe_control_send); the
 * workers run their loop, which must stop at it with a message naming the sender. */
static void bad_control(const uint8_t *bytes, size_t n, const char *want) {
    if (ME == 0) {
        int64_t len = (int64_t)n;
        uint8_t copy[256];
        memcpy(copy, bytes, n);
        ASSERT_OK(roe_comm_bcast(C, &len, 1, ROE_COMM_I64, 0, "control length"));
        ASSERT_OK(roe_comm_bcast(C, copy, n, ROE_COMM_BYTE, 0, "control message"));
        return;
    }
    roe_status st = roe_worker_run(C);
    char me[32];
    snprintf(me, sizeof me, "rank %d:", ME);
    if (st == ROE_OK || !strstr(roe_error_message(), me) || !strstr(roe_error_message(), want) ||
        !strstr(roe_error_message(), "rank 0"))
        TEST__FAIL("worker: %s: %s (want '%s', naming rank 0)", roe_status_name(st), roe_error_message(), want);
}

TEST(workers_refuse_malformed_control) {
    Roe__Control m = ROE__CONTROL__INIT;
    Roe__StepPlan plan = ROE__STEP_PLAN__INIT;
    uint8_t buf[256];
    m.version = roe_control_version();
    m.roe_version = (char *)ROE_VERSION;
    m.body_case = ROE__CONTROL__BODY_STEP;
    m.step = &plan;
    plan.step = 3;
    size_t n = roe__control__get_packed_size(&m);
    roe__control__pack(&m, buf);
    bad_control(buf, n - 1, "cannot decode"); /* truncated inside the step */
    bad_control(buf, n, "a step arrived from rank 0 before any session was opened");
    m.body_case = ROE__CONTROL__BODY__NOT_SET;
    n = roe__control__get_packed_size(&m);
    roe__control__pack(&m, buf);
    bad_control(buf, n, "has no known body");
    memset(buf, 0xA5, 40);
    bad_control(buf, 40, "control message from rank 0");
}

/* A well-formed step plan whose binding carries a corrupt RoE roster (what a bit flip or a
 * mismatched coordinator could send): the coordinator never sends one (it validates rosters),
 * so rank 0 builds it by hand after opening a real session on the bundled model. Each worker
 * must refuse it before any row runs, naming itself, rank 0 and the sequence, stop, and tell
 * the coordinator in its step reply. */
enum { BAD_TAU_NAN, BAD_TAU_RANGE, BAD_K, BAD_TAU_COUNT };

static void bad_roster(int how, const char *want) {
    if (ME != 0) {
        roe_status st = roe_worker_run(C);
        char me[32];
        snprintf(me, sizeof me, "rank %d:", ME);
        if (st == ROE_OK || !strstr(roe_error_message(), me) || !strstr(roe_error_message(), "rank 0 gives sequence 1") ||
            !strstr(roe_error_message(), want))
            TEST__FAIL("worker: %s: %s (want '%s')", roe_status_name(st), roe_error_message(), want);
        return;
    }
    const char *dir = "models/olmoe-tiny";
    struct roe_model *model = NULL;
    struct roe_placement *pl = NULL;
    ASSERT_OK(roe_model_load(dir, &model));
    ASSERT_OK(roe_placement_contiguous(&model->cfg, N, &pl));
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = 2;
    eo.max_ctx = 16;
    eo.max_rows = 8;
    eo.n_threads = 1;
    const struct roe_session_spec spec = roe_session_spec_of(dir, &eo, pl, &model->cfg, 0);
    ASSERT_OK(roe_workers_open(C, &spec));
    ASSERT_OK(roe_workers_opened(C, NULL));
    const int L = model->cfg.n_layers;
    struct roe_roster ro;
    roe_roster_plain(&ro);
    ro.k = how == BAD_K ? 0 : 4;
    for (int l = 0; l < L; l++) ro.tau[l] = model->cfg.layer_is_moe[l] ? 0.3f : 0.0f;
    if (how == BAD_TAU_NAN) ro.tau[L - 1] = NAN;
    if (how == BAD_TAU_RANGE) ro.tau[L - 1] = 50.0f;
    /* the plan's rosters carry as many taus as the io says layers: one too few for BAD_TAU_COUNT */
    struct roe_control_io io;
    ASSERT_OK(roe_control_io_init(&io, N, 4096, 1 << 16, 1, how == BAD_TAU_COUNT ? L - 1 : L));
    const struct roe_plan_bind bind = {.seq = 1, .home = N - 1, .seed = 7, .roster = &ro};
    const struct roe_control m = {.kind = ROE_CONTROL_STEP, .step = {.step = 1, .n_bind = 1, .bind = &bind}};
    ASSERT_OK(roe_control_send(C, &m, &io)); /* no rows: the workers stop at the binding */
    /* ... and say so in their step replies, as the coordinator collects them */
    ASSERT_OK(roe_reply_collect(C, &io, "step reply"));
    for (int r = 1; r < N; r++) {
        struct roe_reply rep;
        char who[32];
        snprintf(who, sizeof who, "rank %d:", r);
        roe_status st = roe_reply_get(&io, r, &rep);
        if (st == ROE_OK || !strstr(roe_error_message(), who) || !strstr(roe_error_message(), want))
            TEST__FAIL("rank %d's reply: %s: %s (want '%s')", r, roe_status_name(st), roe_error_message(), want);
    }
    roe_control_io_free(&io);
    roe_placement_free(pl);
    roe_model_free(model);
}

TEST(workers_refuse_corrupt_roster) {
    bad_roster(BAD_TAU_NAN, "outside [0, 10]");
    bad_roster(BAD_TAU_RANGE, "= 50 is outside [0, 10]");
    bad_roster(BAD_K, "a roster of k 0");
    bad_roster(BAD_TAU_COUNT, "taus for");
}

TEST(bounded_wait) {
    int64_t v = 5;
    roe_comm_set_timeout(C, 1.0);
    if (ME == 0) {
        sleep(3); /* longer than the others' 1 s bound */
        ASSERT_OK(roe_comm_bcast(C, &v, 1, ROE_COMM_I64, 0, "late bcast"));
        return;
    }
    ASSERT_FAILS_WITH(roe_comm_bcast(C, &v, 1, ROE_COMM_I64, 0, "late bcast"), ROE_ERR_TIMEOUT,
                      "bcast 'late bcast' timed out after 1 s waiting for rank(s) 0");
    ASSERT_TRUE(roe_comm_failed(C));
    /* rank 0 is still asleep: MPI_Finalize, bounded by the timeout too, would give up on it */
    roe_comm_set_timeout(C, 60.0);
}

int main(int argc, char **argv) {
    struct roe_comm_opts o = roe_comm_opts_default();
    o.timeout_s = 60.0; /* bounded_wait lowers it to 1 s */
    if (roe_comm_mpi_create(&argc, &argv, &o, &C) != ROE_OK) {
        fprintf(stderr, "mpi_comm: %s\n", roe_error_message());
        return 1;
    }
    ME = roe_comm_rank(C);
    N = roe_comm_size(C);
    if (N > 8) {
        fprintf(stderr, "mpi_comm: at most 8 ranks\n");
        return 1;
    }
    RUN(collectives);
    RUN(alltoallv_random);
    RUN(exchange_f32_overlap);
    RUN(exchange_f32_no_overlap);
    RUN(exchange_bf16);
    RUN(exchange_f32_rows_apart);
    RUN(exchange_f32_rows_mixed);
    RUN(exchange_bf16_rows_mixed);
    RUN(exchange_f32_early_at_once);
    RUN(exchange_f32_never_early);
    if (N > 1) RUN(workers_refuse_malformed_control);
    if (N > 1) RUN(workers_refuse_corrupt_roster);
    if (N > 1) RUN(bounded_wait);
    int rc = test_summary();
    roe_comm_free(C);
    return rc;
}
