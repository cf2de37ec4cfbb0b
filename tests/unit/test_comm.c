/*
 * test_comm.c — the parts of expert parallelism that run in one process:
 *  - the self transport's collectives and transfers;
 *  - placement: contiguous blocks (uneven), files (every rule), the owner table;
 *  - control-plane messages: a StepPlan survives encoding, a foreign version is refused
 *    with both versions named, garbage is refused; every truncation and single-byte
 *    corruption of a plan or reply is refused naming the sender (or lacks the body);
 *  - the expert exchange on one rank: every active pair's output is its expert applied to
 *    its row, masked pairs are left out, bf16 rounding applies to local rows too;
 *  - the cluster's plan validation (the coordinator's check before a plan leaves rank 0).
 * The multi-rank versions of these run under mpirun in tests/mpi/.
 */
#include <stdint.h>

#include "comm/comm.h"
#include "comm/dispatch.h"
#include "harness.h"
#include "base/alloc.h"
#include "runtime/cluster.h"
#include "comm/control.pb-c.h"
#include "runtime/control.h"
#include "runtime/engine.h"
#include "runtime/model.h"
#include "runtime/placement.h"

TEST(self_transport) {
    roe_comm *c = NULL;
    ASSERT_OK(roe_comm_self_create(NULL, &c));
    ASSERT_EQ_INT(roe_comm_size(c), 1);
    ASSERT_EQ_INT(roe_comm_rank(c), 0);
    ASSERT_EQ_STR(roe_comm_transport(c), "self");
    int32_t a[3] = {1, 2, 3}, b[3] = {0};
    ASSERT_OK(roe_comm_bcast(c, a, 3, ROE_COMM_I32, 0, "t"));
    ASSERT_OK(roe_comm_gather(c, a, 3, b, ROE_COMM_I32, 0, "t"));
    ASSERT_EQ_INT(b[2], 3);
    double x[2] = {1.5, 2.5}, y[2];
    ASSERT_OK(roe_comm_allreduce(c, x, y, 2, ROE_COMM_F64, ROE_COMM_SUM, "t"));
    ASSERT_NEAR(y[1], 2.5, 0);
    ASSERT_OK(roe_comm_barrier(c, "t"));
    size_t sc[1] = {2}, sd[1] = {1}, rc[1] = {2}, rd[1] = {0};
    int32_t r[2] = {0};
    ASSERT_OK(roe_comm_alltoallv(c, a, sc, sd, r, rc, rd, ROE_COMM_I32, "t"));
    ASSERT_EQ_INT(r[0], 2);
    ASSERT_EQ_INT(r[1], 3);
    rc[0] = 1; /* receive counts are capacities: less is fine, more is an error */
    ASSERT_FAILS_WITH(roe_comm_alltoallv(c, a, sc, sd, r, rc, rd, ROE_COMM_I32, "mismatch"), ROE_ERR_INVALID_ARG,
                      "sends 2 elements to itself but accepts 1");
    rc[0] = 5;
    ASSERT_OK(roe_comm_alltoallv(c, a, sc, sd, r, rc, rd, ROE_COMM_I32, "capacity"));
    ASSERT_FAILS_WITH(roe_comm_bcast(c, a, 3, ROE_COMM_I32, 1, "bad root"), ROE_ERR_INVALID_ARG, "root 1");
    roe_comm_xfer *xf = NULL;
    ASSERT_OK(roe_comm_xfer_create(c, &xf));
    rc[0] = 2;
    ASSERT_OK(roe_comm_alltoallv_start(xf, a, sc, sd, r, rc, rd, ROE_COMM_I32, "t"));
    int done = 0;
    ASSERT_OK(roe_comm_xfer_test(xf, &done));
    ASSERT_EQ_INT(done, 1);
    ASSERT_OK(roe_comm_xfer_wait(xf));
    roe_comm_xfer_free(xf);
    ASSERT_EQ_INT(roe_comm_failed(c), 0);
    roe_comm_free(c);
    if (!roe_comm_have_mpi())
        ASSERT_FAILS_WITH(roe_comm_mpi_create(NULL, NULL, NULL, &c), ROE_ERR_UNSUPPORTED, "without MPI");
}

static struct roe_model_config cfg_with(int layers, int experts, int top_k) {
    struct roe_model_config c = {.n_layers = layers, .n_experts = experts, .top_k = top_k};
    for (int l = 0; l < layers; l++) c.layer_is_moe[l] = 1;
    return c;
}

TEST(placement) {
    struct roe_model_config c = cfg_with(3, 8, 2);
    c.layer_is_moe[1] = 0; /* a dense layer in the middle (Qwen3 mlp_only_layers) */
    struct roe_placement *p = NULL;
    ASSERT_OK(roe_placement_contiguous(&c, 3, &p));
    char buf[128];
    roe_placement_describe(p, 0, 0, buf, sizeof buf);
    ASSERT_EQ_STR(buf, "0-2");
    roe_placement_describe(p, 2, 2, buf, sizeof buf);
    ASSERT_EQ_STR(buf, "6-7");
    ASSERT_EQ_INT(roe_placement_owner(p, 1, 0), -1);
    ASSERT_EQ_INT(roe_placement_count(p, 1), 6);
    ASSERT_EQ_INT(p->maps[2].n_local[2], 2);
    ASSERT_TRUE(roe_placement_uniform(p, &c));
    roe_placement_free(p);
    /* more ranks than experts: some own none */
    ASSERT_OK(roe_placement_contiguous(&c, 10, &p));
    roe_placement_describe(p, 0, 9, buf, sizeof buf);
    ASSERT_EQ_STR(buf, "none");
    roe_placement_free(p);
    /* files */
    ASSERT_OK(roe_placement_parse("{\"ranks\": 2, \"experts\": [[0,2,4,6],[1,3,5,7]],"
                                  " \"layers\": {\"2\": [[0,1,2,3,4,5,6,7],[]]}}", "p.json", &c, 2, &p));
    ASSERT_EQ_INT(roe_placement_owner(p, 0, 3), 1);
    ASSERT_EQ_INT(roe_placement_owner(p, 2, 7), 0);
    ASSERT_EQ_INT(roe_placement_uniform(p, &c), 0);
    roe_placement_describe(p, 0, 1, buf, sizeof buf);
    ASSERT_EQ_STR(buf, "1, 3, 5, 7");
    roe_placement_free(p);
    ASSERT_FAILS_WITH(roe_placement_parse("{\"ranks\": 3, \"experts\": [[0],[1],[2]]}", "p.json", &c, 2, &p),
                      ROE_ERR_INVALID_ARG, "placement is for 3 ranks, but the job has 2");
    ASSERT_FAILS_WITH(roe_placement_parse("{\"ranks\": 2, \"experts\": [[0,1,2,3],[3,4,5,6,7]]}", "p.json", &c, 2, &p),
                      ROE_ERR_FORMAT, "expert 3 is placed on both rank 0 and rank 1");
    ASSERT_FAILS_WITH(roe_placement_parse("{\"ranks\": 2, \"experts\": [[0,1,2],[3,4,5,6]]}", "p.json", &c, 2, &p),
                      ROE_ERR_FORMAT, "expert 7 is placed on no rank");
    ASSERT_FAILS_WITH(roe_placement_parse("{\"ranks\": 2, \"experts\": [[0,1,2,3],[4,5,6,8]]}", "p.json", &c, 2, &p),
                      ROE_ERR_FORMAT, "expert id 8 is not an integer in [0, 8)");
    ASSERT_FAILS_WITH(roe_placement_parse("{\"ranks\": 2, \"layers\": {\"0\": [[0,1,2,3],[4,5,6,7]]}}", "p.json", &c, 2, &p),
                      ROE_ERR_FORMAT, "MoE layer 2 has no map");
    ASSERT_FAILS_WITH(roe_placement_parse("{\"ranks\": 2, \"experts\": [[0,1,2,3],[4,5,6,7]], \"layers\": {\"1\": []}}",
                                          "p.json", &c, 2, &p),
                      ROE_ERR_FORMAT, "layers[\"1\"] is not a MoE layer");
    ASSERT_FAILS_WITH(roe_placement_parse("[]", "p.json", &c, 2, &p), ROE_ERR_FORMAT, "not a JSON object");
    ASSERT_FAILS_WITH(roe_placement_load("/nonexistent/p.json", &c, 2, &p), ROE_ERR_IO, "/nonexistent/p.json");
    int owner[24];
    for (int i = 0; i < 24; i++) owner[i] = i % 8 < 5 ? 0 : 1;
    ASSERT_OK(roe_placement_from_owner(&c, 2, owner, 24, "wire", &p));
    ASSERT_EQ_INT(roe_placement_owner(p, 1, 0), -1); /* dense layer: whatever the table says */
    roe_placement_free(p);
    owner[3] = 5;
    ASSERT_FAILS_WITH(roe_placement_from_owner(&c, 2, owner, 24, "wire", &p), ROE_ERR_INVALID_ARG,
                      "expert 3 is placed on rank 5");
    ASSERT_FAILS_WITH(roe_placement_from_owner(&c, 2, owner, 23, "wire", &p), ROE_ERR_FORMAT, "23 owners");
}

TEST(control_messages) {
    uint32_t seq[3] = {0, 0, 2}, pos[3] = {4, 5, 0}, sample[3] = {0, 1, 0}, flags[3] = {1, 1, 0};
    int32_t tok[3] = {7, 7, 9};
    uint32_t gf[1] = {0}, gn[1] = {2}, gm[1] = {ROE_GROUP_MEAN};
    float tau[4] = {0, 0.5f, 0.5f, 0};
    Roe__Roster ro = ROE__ROSTER__INIT;
    ro.k = 2;
    ro.n_tau = 4;
    ro.tau = tau;
    Roe__SeqBind b = ROE__SEQ_BIND__INIT, *bp = &b;
    b.seq = 2;
    b.home = 1;
    b.seed = 0xFFFFFFFFFFULL;
    b.roster = &ro;
    b.reset = 1;
    Roe__StepPlan plan = ROE__STEP_PLAN__INIT;
    plan.step = 42;
    plan.n_bind = 1;
    plan.bind = &bp;
    plan.n_row_seq = plan.n_row_pos = plan.n_row_token = plan.n_row_sample = plan.n_row_flags = 3;
    plan.row_seq = seq;
    plan.row_pos = pos;
    plan.row_token = tok;
    plan.row_sample = sample;
    plan.row_flags = flags;
    plan.n_group_first = plan.n_group_n = plan.n_group_mode = 1;
    plan.group_first = gf;
    plan.group_n = gn;
    plan.group_mode = gm;
    Roe__Control ctl = ROE__CONTROL__INIT;
    ctl.version = roe_control_version();
    ctl.roe_version = (char *)ROE_VERSION;
    ctl.body_case = ROE__CONTROL__BODY_STEP;
    ctl.step = &plan;
    uint8_t buf[1024];
    size_t n = roe__control__get_packed_size(&ctl);
    ASSERT_TRUE(n < sizeof buf);
    roe__control__pack(&ctl, buf);
    struct roe_control_io a;
    ASSERT_OK(roe_control_io_init(&a, 4, 1024, 1 << 20, 0, 0));
    struct roe_control m;
    uint64_t before = roe_alloc_count();
    ASSERT_OK(roe_control_decode(buf, n, 1, &a, &m));
    ASSERT_EQ_INT(roe_alloc_count() - before, 0); /* decoding uses the arena only */
    ASSERT_EQ_INT(m.kind, ROE_CONTROL_STEP);
    ASSERT_EQ_INT(m.step.step, 42);
    ASSERT_EQ_INT(m.step.n_rows, 3);
    ASSERT_EQ_INT(m.step.row_pos[1], 5);
    ASSERT_EQ_INT(m.step.row_token[2], 9);
    ASSERT_EQ_INT(m.step.n_bind, 1);
    struct roe_plan_bind pb;
    struct roe_roster pr;
    ASSERT_OK(roe_step_plan_bind(&m.step, 0, 4, 1, &pb, &pr));
    ASSERT_EQ_INT(pb.seed, 0xFFFFFFFFFFULL);
    ASSERT_EQ_INT(pb.seq, 2);
    ASSERT_EQ_INT(pb.home, 1);
    ASSERT_EQ_INT(pb.reset, 1);
    ASSERT_TRUE(pb.roster == &pr);
    ASSERT_NEAR(pb.roster->tau[2], 0.5, 0);
    /* a roster of the wrong length for the model is refused, naming both ranks */
    ASSERT_FAILS_WITH(roe_step_plan_bind(&m.step, 0, 5, 1, &pb, &pr), ROE_ERR_FORMAT, "rank 1: the plan from rank 0");
    /* row fields of different lengths: refused before anyone reads them */
    plan.n_row_token = 2;
    n = roe__control__get_packed_size(&ctl);
    roe__control__pack(&ctl, buf);
    ASSERT_FAILS_WITH(roe_control_decode(buf, n, 1, &a, &m), ROE_ERR_FORMAT, "rank 1: malformed plan of step 42");
    /* another version: refused, naming both */
    ctl.version = roe_control_version() + 7;
    n = roe__control__get_packed_size(&ctl);
    roe__control__pack(&ctl, buf);
    char want[64];
    snprintf(want, sizeof want, "speaks control version %u", roe_control_version() + 7);
    ASSERT_FAILS_WITH(roe_control_decode(buf, n, 1, &a, &m), ROE_ERR_UNSUPPORTED, want);
    ASSERT_FAILS_WITH(roe_control_decode(buf, n, 1, &a, &m), ROE_ERR_UNSUPPORTED, "run the same roe build on every rank");
    /* garbage */
    memset(buf, 0xff, 64);
    ASSERT_FAILS_WITH(roe_control_decode(buf, 64, 3, &a, &m), ROE_ERR_FORMAT, "rank 3: cannot decode");
    /* no body: refused */
    ctl.version = roe_control_version();
    ctl.body_case = ROE__CONTROL__BODY__NOT_SET;
    n = roe__control__get_packed_size(&ctl);
    roe__control__pack(&ctl, buf);
    ASSERT_FAILS_WITH(roe_control_decode(buf, n, 1, &a, &m), ROE_ERR_FORMAT, "has no known body");
    /* a reply: version, rank and status are checked */
    Roe__Reply rep = ROE__REPLY__INIT;
    rep.version = roe_control_version();
    rep.rank = 2;
    rep.status = ROE_ERR_IO;
    rep.error = (char *)"cannot open /x/model.safetensors";
    n = roe__reply__get_packed_size(&rep);
    roe__reply__pack(&rep, buf);
    struct roe_reply got;
    ASSERT_FAILS_WITH(roe_reply_decode(buf, n, 2, &a, &got), ROE_ERR_IO, "rank 2: cannot open /x/model.safetensors");
    ASSERT_FAILS_WITH(roe_reply_decode(buf, n, 3, &a, &got), ROE_ERR_FORMAT, "says it is rank 2");
    rep.status = 0;
    rep.version = 99;
    rep.roe_version = (char *)"9.9.9";
    n = roe__reply__get_packed_size(&rep);
    roe__reply__pack(&rep, buf);
    ASSERT_FAILS_WITH(roe_reply_decode(buf, n, 2, &a, &got), ROE_ERR_UNSUPPORTED, "rank 2 (roe 9.9.9) speaks version 99");
    roe_control_io_free(&a);
}

/* Truncated and corrupted control messages (as a rank would receive them from a broken
 * peer): every prefix of a step plan and of a reply, and every single-byte corruption of the
 * plan, is either refused with a message naming the sender, or (a prefix ending between two
 * fields) decodes to a message that lacks the body. Nothing decodes as the whole step. */
TEST(control_truncated) {
    uint32_t seq[2] = {0, 0}, pos[2] = {3, 3}, sample[2] = {0, 1}, flags[2] = {1, 1};
    int32_t tok[2] = {11, 11};
    uint32_t gf[1] = {0}, gn[1] = {2}, gm[1] = {ROE_GROUP_MEAN};
    Roe__StepPlan plan = ROE__STEP_PLAN__INIT;
    plan.step = 9;
    plan.n_row_seq = plan.n_row_pos = plan.n_row_token = plan.n_row_sample = plan.n_row_flags = 2;
    plan.row_seq = seq;
    plan.row_pos = pos;
    plan.row_token = tok;
    plan.row_sample = sample;
    plan.row_flags = flags;
    plan.n_group_first = plan.n_group_n = plan.n_group_mode = 1;
    plan.group_first = gf;
    plan.group_n = gn;
    plan.group_mode = gm;
    Roe__Control ctl = ROE__CONTROL__INIT;
    ctl.version = roe_control_version();
    ctl.roe_version = (char *)ROE_VERSION;
    ctl.body_case = ROE__CONTROL__BODY_STEP;
    ctl.step = &plan;
    uint8_t buf[512], cut[512];
    const size_t n = roe__control__get_packed_size(&ctl);
    ASSERT_TRUE(n < sizeof buf);
    roe__control__pack(&ctl, buf);
    struct roe_control_io a;
    ASSERT_OK(roe_control_io_init(&a, 4, 1024, 1 << 16, 0, 0));
    int refused = 0;
    for (size_t k = 0; k < n; k++) {
        memcpy(cut, buf, k); /* a copy of exactly k bytes: ASan sees any read past the cut */
        struct roe_control m;
        roe_error_clear();
        roe_status st = roe_control_decode(cut, k, 1, &a, &m);
        if (st == ROE_OK) {
            if (m.kind == ROE_CONTROL_STEP)
                TEST__FAIL("a %zu-byte prefix of a %zu-byte plan decodes as a step", k, n);
            continue;
        }
        refused++;
        if (!strstr(roe_error_message(), "rank 1:") || !strstr(roe_error_message(), "rank 0"))
            TEST__FAIL("prefix %zu: the message names neither the receiver nor the sender: %s", k,
                       roe_error_message());
    }
    ASSERT_TRUE(refused > (int)n / 2);
    /* the reply of rank 2, cut short */
    float outv[3] = {1, 2, 3};
    Roe__Reply rep = ROE__REPLY__INIT;
    rep.version = roe_control_version();
    rep.roe_version = (char *)ROE_VERSION;
    rep.rank = 2;
    rep.step = 9;
    rep.n_out = 3;
    rep.out = outv;
    const size_t rn = roe__reply__get_packed_size(&rep);
    roe__reply__pack(&rep, buf);
    for (size_t k = 0; k < rn; k++) {
        memcpy(cut, buf, k);
        struct roe_reply got;
        roe_error_clear();
        roe_status st = roe_reply_decode(cut, k, 2, &a, &got);
        if (st == ROE_OK) {
            if (got.n_out == 3) TEST__FAIL("a %zu-byte prefix of a %zu-byte reply decodes whole", k, rn);
            continue;
        }
        if (!strstr(roe_error_message(), "rank 2"))
            TEST__FAIL("reply prefix %zu: the message does not name rank 2: %s", k, roe_error_message());
    }
    /* one corrupted byte at every offset, every bit: never a crash, a refusal names rank 0 */
    for (size_t k = 0; k < n; k++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(cut, buf, n);
            cut[k] ^= (uint8_t)(1u << bit);
            struct roe_control m;
            roe_error_clear();
            if (roe_control_decode(cut, n, 1, &a, &m) != ROE_OK && !strstr(roe_error_message(), "rank 0"))
                TEST__FAIL("corrupt byte %zu: the message does not name rank 0: %s", k, roe_error_message());
        }
    roe_control_io_free(&a);
}

/* The exchange on one rank: outputs of "expert e" = (e + 1) * row. */
static void run_exchange(roe_ep_wire wire, int overlap, const uint8_t *active) {
    enum { H = 40, K = 3, E = 8, S = 5 };
    roe_comm *c = NULL;
    if (roe_comm_self_create(NULL, &c) != ROE_OK) return;
    int owner[E] = {0}, local[E], n_local[1], base[2];
    struct roe_layout_map map;
    roe_ep *ep = NULL;
    struct roe_ep_opts o = roe_ep_opts_default();
    o.hidden = H;
    o.top_k = K;
    o.n_experts = E;
    o.max_slots = S;
    o.wire = wire;
    o.overlap = overlap;
    float x[S * H], out[S * K * H];
    int32_t sel[S * K] = {0, 1, 2, 3, 4, 5, 7, 6, 5, 1, 3, 7, 2, 4, 0};
    for (int i = 0; i < S * H; i++) x[i] = 0.01f * (float)i + 0.003f;
    if (roe_layout_map_build(1, E, owner, local, n_local, base, &map) != ROE_OK || roe_ep_create(c, &o, &ep) != ROE_OK) {
        TEST__FAIL("exchange setup: %s", roe_error_message());
        goto out;
    }
    for (int rep = 0; rep < 2; rep++) { /* twice: the exchange is reusable */
        ASSERT_OK(roe_ep_begin(ep, &map, x, S, sel, active, out, "unit"));
        const struct roe_ep_task *t;
        const float *const *in = roe_ep_in(ep);
        float *const *o2 = roe_ep_out(ep);
        int seen = 0;
        for (;;) { /* one rank: every task runs "now" (or, overlap off, after the wait) */
            ASSERT_OK(roe_ep_next_now(ep, &t));
            if (!t) break;
            for (int j = t->first; j < t->first + t->n; j++, seen++)
                for (int d = 0; d < H; d++) o2[j][d] = (float)(t->expert + 1) * in[j][d];
        }
        ASSERT_OK(roe_ep_wait(ep));
        const int nt = roe_ep_tasks_rest(ep, &t);
        for (int i = 0; i < nt; i++)
            for (int j = t[i].first; j < t[i].first + t[i].n; j++, seen++)
                for (int d = 0; d < H; d++) o2[j][d] = (float)(t[i].expert + 1) * in[j][d];
        ASSERT_OK(roe_ep_combine(ep));
        int want = 0;
        const float *const *po = roe_ep_pair_out(ep);
        for (int p = 0; p < S * K; p++) {
            if (active && !active[p]) continue;
            want++;
            for (int d = 0; d < H; d++) {
                float xin = x[(p / K) * H + d];
                if (wire == ROE_EP_WIRE_BF16) { /* input and output both rounded to bf16 */
                    uint32_t u;
                    memcpy(&u, &xin, 4);
                    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
                    memcpy(&xin, &u, 4);
                    float y = (float)(sel[p] + 1) * xin;
                    memcpy(&u, &y, 4);
                    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
                    memcpy(&y, &u, 4);
                    ASSERT_TRUE(po[p][d] == y);
                } else
                    ASSERT_TRUE(po[p][d] == (float)(sel[p] + 1) * xin);
            }
        }
        ASSERT_EQ_INT(seen, want);
    }
out:
    roe_ep_free(ep);
    roe_comm_free(c);
}

TEST(exchange_one_rank) {
    run_exchange(ROE_EP_WIRE_F32, 1, NULL);
    run_exchange(ROE_EP_WIRE_F32, 0, NULL);
    uint8_t active[15] = {1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1};
    run_exchange(ROE_EP_WIRE_F32, 1, active);
    run_exchange(ROE_EP_WIRE_BF16, 1, active);
}

TEST(exchange_opts) {
    const struct roe_ep_opts d = roe_ep_opts_default();
    ASSERT_EQ_INT(d.early_us, 100);
    ASSERT_EQ_INT(d.inline_bytes, 16384);
    roe_comm *c = NULL;
    ASSERT_OK(roe_comm_self_create(NULL, &c));
    struct roe_ep_opts o = d;
    o.hidden = 8;
    o.top_k = 1;
    o.n_experts = 2;
    o.max_slots = 1;
    o.inline_bytes = -1; /* 0 is "never"; there is no negative limit */
    roe_ep *ep = NULL;
    ASSERT_FAILS_WITH(roe_ep_create(c, &o, &ep), ROE_ERR_INVALID_ARG, "inline_bytes -1");
    o.inline_bytes = 0;
    ASSERT_OK(roe_ep_create(c, &o, &ep));
    roe_ep_free(ep);
    roe_comm_free(c);
}

TEST(cluster_validates_plans) {
    struct roe_model *m = NULL;
    ASSERT_OK(roe_model_load("tests/fixtures/olmoe/model", &m));
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = 2;
    o.max_ctx = 16;
    o.max_rows = 4;
    roe_engine *e = NULL;
    roe_cluster *cl = NULL;
    ASSERT_OK(roe_engine_create(m, &o, &e));
    ASSERT_OK(roe_cluster_create(e, &cl));
    const int V = m->cfg.vocab_size;
    float *out = malloc((size_t)4 * V * sizeof(float));
    struct roe_row r0 = {.seq = 0, .pos = 0, .token = 1, .want_logits = 1};
    struct roe_group g = {.first = 0, .n = 1, .mode = ROE_GROUP_LOGITS};
    ASSERT_OK(roe_cluster_reset_seq(cl, 0, 0));
    ASSERT_FAILS_WITH(roe_cluster_reset_seq(cl, 0, 1), ROE_ERR_INVALID_ARG, "home rank 1");
    ASSERT_FAILS_WITH(roe_cluster_step(cl, &r0, 1, NULL, 0, out, NULL), ROE_ERR_INVALID_ARG, "in no group");
    struct roe_row bad = r0;
    bad.pos = 2;
    ASSERT_FAILS_WITH(roe_cluster_step(cl, &bad, 1, &g, 1, out, NULL), ROE_ERR_INVALID_ARG, "its cache holds 0");
    struct roe_group g2 = {.first = 0, .n = 2, .mode = ROE_GROUP_MEAN};
    struct roe_row two[2] = {r0, {.seq = 1, .pos = 0, .token = 2, .want_logits = 1}};
    ASSERT_FAILS_WITH(roe_cluster_step(cl, two, 2, &g2, 1, out, NULL), ROE_ERR_INVALID_ARG, "another sequence");
    // cppcheck-suppress badBitmaskCheck ; LOGITS is 0, spelled out: the pair is what is refused
    struct roe_group g3 = {.first = 0, .n = 1, .mode = ROE_GROUP_LOGITS | ROE_GROUP_WITH_CLEAN};
    ASSERT_FAILS_WITH(roe_cluster_step(cl, &r0, 1, &g3, 1, out, NULL), ROE_ERR_INVALID_ARG, "not a valid group");
    /* a good step, then its logits equal the engine's own */
    struct roe_step_stats ss;
    ASSERT_OK(roe_cluster_step(cl, &r0, 1, &g, 1, out, &ss));
    ASSERT_EQ_INT(ss.rows, 1);
    ASSERT_TRUE(ss.distinct_experts > 0);
    roe_engine_reset_seq(e, 0);
    float *direct = malloc((size_t)V * sizeof(float));
    ASSERT_OK(roe_engine_step(e, &r0, 1, direct));
    ASSERT_TRUE(memcmp(direct, out, (size_t)V * sizeof(float)) == 0);
    roe_home_policy hp;
    ASSERT_OK(roe_home_policy_parse("least-loaded", &hp));
    /* least-loaded: costs 10, 1, 7, 3, 3 on 3 ranks -> 10 | 7 | 3 + 3 + 1 */
    const double cost[5] = {10, 1, 7, 3, 3};
    int home[5];
    double load[8]; /* [ranks]: the largest call below has 8 */
    roe_plan_homes(hp, 3, cost, 5, home, load);
    ASSERT_EQ_INT(home[0], 0);
    ASSERT_EQ_INT(home[2], 1);
    ASSERT_EQ_INT(home[3], 2);
    ASSERT_EQ_INT(home[4], 2);
    ASSERT_EQ_INT(home[1], 2);
    roe_plan_homes(ROE_HOME_ROUND_ROBIN, 4, cost, 5, home, load); /* rank 3 home to 1, rank 0 to 2 */
    ASSERT_EQ_INT(home[4], 0);
    ASSERT_EQ_INT(home[3], 3);
    roe_plan_homes(hp, 8, cost, 5, home, load); /* more ranks than sequences: one each */
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < i; j++) ASSERT_TRUE(home[i] != home[j]);
    ASSERT_FAILS_WITH(roe_home_policy_parse("random", &hp), ROE_ERR_INVALID_ARG, "round-robin or least-loaded");
    free(direct);
    free(out);
    roe_cluster_free(cl);
    roe_engine_free(e);
    roe_model_free(m);
}

int main(void) {
    RUN(self_transport);
    RUN(placement);
    RUN(control_messages);
    RUN(control_truncated);
    RUN(exchange_one_rank);
    RUN(exchange_opts);
    RUN(cluster_validates_plans);
    return test_summary();
}
