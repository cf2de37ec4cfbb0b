/*
 * test_scheduler.c — continuous batching (runtime/scheduler.h) on the OLMoE fixture:
 *  - requests submitted together, more than the slots, with prompts longer than a step, give
 *    each exactly the tokens the batch generator gives it alone (greedy, RoE K=4, sampling);
 *  - adaptive K with a threshold below every entropy gives the tokens of full K (the samples
 *    run at the position of their clean row), and with a huge one the plain model's;
 *  - admission by KV blocks: with a --kv-blocks cap, never more blocks reserved than it; by the
 *    pool's free blocks (roe_batch_fits: prompt blocks, forks, prefix hits, running sequences'
 *    needs, a watermark); on a pool too small for the requests together, sequences are preempted
 *    and recomputed, and every request ends with the tokens (and, through roe generate's path,
 *    the scores, bit for bit) it gets alone or on a pool that holds everything;
 *  - refusals, each with its status: a full queue (overloaded), a request that can never fit
 *    or K above the step (invalid, naming the field), a stopping scheduler;
 *  - a cancelled request (running or waiting) frees its slot and blocks at once;
 *  - stop: waiting requests fail (ROE_ERR_STOPPING), running ones finish; abort fails them;
 *  - n choices compute the prompt once and each gives what the request alone with seed + i
 *    gives (plain and RoE K=4);
 *  - log-probabilities: each token's is log softmax of the scores it was picked from, the
 *    top alternatives in order, and the prompt's (echo) are roe_score's, bit for bit;
 *  - non-finite scores (a checkpoint with NaN in it) fail the request with a clear message
 *    instead of emitting tokens.
 */
#include <pthread.h>
#include <time.h>

#include "harness.h"
#include "base/alloc.h"
#include "base/json.h"
#include "runtime/aggregate.h"
#include "runtime/engine.h"
#include "runtime/eval.h"
#include "runtime/generate.h"
#include "runtime/roster.h"
#include "runtime/scheduler.h"

static const char *MODEL = "tests/fixtures/olmoe/model";

struct rig {
    struct roe_model *m;
    roe_engine *e;
    roe_sched *s;
    pthread_t thread;
    int running;
    roe_status result;
};

static void *run_thread(void *arg) {
    struct rig *r = arg;
    r->result = roe_sched_run(r->s);
    return NULL;
}

/* > 0: the engine's KV pool holds this many blocks of 8 positions (docs/KV.md), else the default */
static int rig_pool_blocks = 0;

static int rig_open_ctx(struct rig *r, int slots, int rows, int ctx,
                        const struct roe_sched_opts *so, int start) {
    memset(r, 0, sizeof *r);
    if (roe_model_load(MODEL, &r->m) != ROE_OK) return -1;
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = slots;
    o.max_ctx = ctx;
    o.max_rows = rows;
    o.n_threads = 1;
    if (rig_pool_blocks > 0) {
        const struct roe_model_config *c = &r->m->cfg;
        o.kv_block_size = 8;
        o.kv_bytes = (size_t)rig_pool_blocks * roe_kv_block_bytes(c->n_layers, 8, c->n_kv_heads * c->head_dim, 2, 4);
    }
    if (roe_engine_create(r->m, &o, &r->e) != ROE_OK) return -1;
    struct roe_sched_opts d = roe_sched_opts_default();
    if (roe_sched_create(r->e, so ? so : &d, &r->s) != ROE_OK) return -1;
    if (start) {
        if (pthread_create(&r->thread, NULL, run_thread, r) != 0) return -1;
        r->running = 1;
    }
    return 0;
}

static int rig_open(struct rig *r, int slots, int rows, const struct roe_sched_opts *so,
                    int start) {
    return rig_open_ctx(r, slots, rows, 96, so, start);
}

static roe_status rig_close(struct rig *r) {
    if (r->running) {
        roe_sched_stop(r->s, 0);
        pthread_join(r->thread, NULL);
    }
    roe_sched_free(r->s);
    roe_engine_free(r->e);
    roe_model_free(r->m);
    return r->running ? r->result : ROE_OK;
}

/* The tokens of q alone, from the batch generator on an engine of its own (z: the scores of
 * each, [max_tokens, vocab], unless NULL). */
static int alone_z(const struct roe_model *m, const struct roe_request *q, int32_t *out, float *z) {
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = 1;
    o.max_ctx = 96;
    o.max_rows = 64;
    o.n_threads = 1;
    roe_engine *e = NULL;
    roe_generator *g = NULL;
    struct roe_result *res;
    struct roe_gen_timing t;
    int n = -1;
    if (roe_engine_create(m, &o, &e) == ROE_OK &&
        roe_generator_create(e, 1, q->max_tokens, z != NULL, &g) == ROE_OK &&
        roe_generator_run(g, q, 1, &res, &t) == ROE_OK) {
        n = res[0].n_tokens;
        memcpy(out, res[0].tokens, (size_t)n * sizeof *out);
        if (z) memcpy(z, res[0].logits, (size_t)n * m->cfg.vocab_size * sizeof *z);
    }
    roe_generator_free(g);
    roe_engine_free(e);
    return n;
}

static int alone(const struct roe_model *m, const struct roe_request *q, int32_t *out) {
    return alone_z(m, q, out, NULL);
}

static struct roe_sreq_params params_of(const struct roe_request *q) {
    return (struct roe_sreq_params){.prompt = q->prompt,
                                    .n_prompt = q->n_prompt,
                                    .max_tokens = q->max_tokens,
                                    .stop_at_eos = q->stop_at_eos,
                                    .sampling = q->sampling,
                                    .roster = q->roster};
}

/* Waits for r's end (bounded: 60 s). */
static void wait_end(roe_sreq *r, struct roe_sreq_view *v) {
    for (int i = 0; i < 600; i++) {
        roe_sreq_wait(r, 1 << 30, 0.1, v);
        if (v->end != ROE_SREQ_RUNNING) return;
    }
}

static int32_t prompt_buf[8][64];

static struct roe_request make_req(int i, int n, int max_tokens, const struct roe_roster *ro,
                                   float temp) {
    for (int j = 0; j < n; j++)
        prompt_buf[i][j] = (int32_t)((i * 31 + j * 7 + 3) % 250 + 1);
    struct roe_request q = {.prompt = prompt_buf[i],
                            .n_prompt = n,
                            .max_tokens = max_tokens,
                            .stop_at_eos = 0,
                            .sampling = roe_sampling_default(),
                            .roster = ro};
    q.sampling.temperature = temp;
    q.sampling.seed = (uint64_t)i + 5;
    return q;
}

TEST(concurrent_equals_alone) {
    struct rig r;
    ASSERT_TRUE(rig_open(&r, 4, 16, NULL, 1) == 0);
    struct roe_roster k4, plain;
    roe_roster_plain(&plain);
    ASSERT_OK(roe_roster_uniform(&k4, &r.m->cfg, 4, 0.7f, 0, ROE_GATE_CLEAN));
    struct roe_request q[8];
    roe_sreq *h[8];
    for (int i = 0; i < 8; i++) /* prompts up to 40 tokens: several steps of 16 rows each */
        q[i] = make_req(i, 3 + i * 5, 10 + i, i % 3 == 1 ? &k4 : &plain, i % 3 == 2 ? 0.9f : 0.0f);
    for (int i = 0; i < 8; i++) {
        struct roe_sreq_params p = params_of(&q[i]);
        ASSERT_OK(roe_sched_submit(r.s, &p, &h[i], NULL));
    }
    for (int i = 0; i < 8; i++) {
        struct roe_sreq_view v;
        wait_end(h[i], &v);
        ASSERT_EQ_INT(v.end, ROE_SREQ_FINISHED);
        int32_t want[64];
        const int n = alone(r.m, &q[i], want);
        ASSERT_EQ_INT(v.n_tokens, n);
        for (int j = 0; j < n; j++)
            if (v.tokens[j] != want[j])
                TEST__FAIL("request %d token %d: %d, alone %d", i, j, v.tokens[j], want[j]);
        ASSERT_TRUE(v.t_first >= v.t_arrival && v.t_end >= v.t_first);
        roe_sreq_release(h[i]);
    }
    struct roe_sched_stats st;
    roe_sched_get_stats(r.s, &st);
    ASSERT_EQ_INT(st.requests_finished, 8);
    ASSERT_EQ_INT(st.kv_blocks_used, 0);
    ASSERT_EQ_INT(st.running, 0);
    long tokens = 0, samples = 0, prompt = 0;
    for (int i = 0; i < 8; i++) {
        tokens += q[i].max_tokens;
        samples += (long)q[i].max_tokens * (q[i].roster->k);
        prompt += q[i].n_prompt;
    }
    ASSERT_EQ_INT(st.generation_tokens, tokens);
    ASSERT_EQ_INT(st.roe_samples, samples);
    ASSERT_EQ_INT(st.prompt_tokens, prompt);
    ASSERT_EQ_INT(st.ttft.total, 8);
    ASSERT_EQ_INT(st.itl.total, tokens - 8);
    ASSERT_TRUE(st.steps < (uint64_t)tokens); /* batched */
    ASSERT_OK(rig_close(&r));
}

TEST(adaptive_k_at_the_clean_position) {
    struct rig r;
    ASSERT_TRUE(rig_open(&r, 2, 16, NULL, 1) == 0);
    struct roe_roster full, low, high;
    ASSERT_OK(roe_roster_uniform(&full, &r.m->cfg, 4, 0.8f, 0, ROE_GATE_NOISY));
    low = full;
    low.adaptive_entropy = 1e-6f; /* every position's entropy is above: samples always follow */
    high = full;
    high.adaptive_entropy = 1e5f; /* never: the clean row alone, the plain model */
    struct roe_roster plain;
    roe_roster_plain(&plain);
    const struct roe_roster *ro[3] = {&low, &high, NULL};
    const struct roe_roster *ref[3] = {&full, &plain, NULL};
    for (int c = 0; c < 2; c++) {
        struct roe_request q = make_req(c, 9, 16, ro[c], 0.0f),
                           qr = make_req(c, 9, 16, ref[c], 0.0f);
        roe_sreq *h;
        struct roe_sreq_params p = params_of(&q);
        ASSERT_OK(roe_sched_submit(r.s, &p, &h, NULL));
        struct roe_sreq_view v;
        wait_end(h, &v);
        int32_t want[64];
        const int n = alone(r.m, &qr, want);
        ASSERT_EQ_INT(v.n_tokens, n);
        for (int j = 0; j < n; j++)
            if (v.tokens[j] != want[j])
                TEST__FAIL("adaptive case %d token %d: %d, want %d", c, j, v.tokens[j], want[j]);
        roe_sreq_release(h);
    }
    struct roe_sched_stats st;
    roe_sched_get_stats(r.s, &st);
    ASSERT_EQ_INT(st.roe_samples, 16 * 4 + 16 * 1); /* low: 1 + 3 per token; high: the clean row */
    ASSERT_OK(rig_close(&r));
}

/* An engine pool of 10 blocks of 8 positions (--kv-memory) behind 4 slots, 8 requests of 20
 * positions (3 blocks each: 12 for 4 at once), all queued before the scheduler starts: admission
 * by free blocks lets 4 run (each prompt is 1 block), decoding runs short, the youngest are
 * preempted and recomputed, and every request finishes with the tokens it gets alone, on an
 * engine of its own (greedy, sampled, RoE K = 4, adaptive K, and two choices). */
TEST(small_pool_preempts_and_loses_no_request) {
    rig_pool_blocks = 10;
    struct rig r;
    const int ok = rig_open_ctx(&r, 4, 16, 32, NULL, 0) == 0;
    rig_pool_blocks = 0;
    ASSERT_TRUE(ok);
    struct roe_roster k4, ad;
    ASSERT_OK(roe_roster_uniform(&k4, &r.m->cfg, 4, 0.7f, 0, ROE_GATE_CLEAN));
    ad = k4;
    ad.adaptive_entropy = 2.0f;
    struct roe_request q[8];
    roe_sreq *h[8];
    for (int i = 0; i < 8; i++) {
        const struct roe_roster *ro = i % 4 == 2 ? &k4 : i % 4 == 3 ? &ad : NULL;
        q[i] = make_req(i, 6, 14, ro, i % 4 == 0 ? 0.0f : 0.9f); /* 20 positions: 3 blocks of 8 */
        struct roe_sreq_params p = params_of(&q[i]);
        if (i == 5) p.n = 2;
        ASSERT_OK(roe_sched_submit(r.s, &p, &h[i], NULL));
    }
    ASSERT_TRUE(pthread_create(&r.thread, NULL, run_thread, &r) == 0);
    r.running = 1;
    int max_running = 0;
    for (int i = 0; i < 8; i++) {
        struct roe_sreq_view v;
        for (int k = 0; k < 60000; k++) {
            struct roe_sched_stats st;
            roe_sched_get_stats(r.s, &st);
            ASSERT_EQ_INT(st.pool_blocks, 10);
            if (st.running > max_running) max_running = st.running;
            roe_sreq_wait(h[i], 1 << 30, 0.001, &v);
            if (v.end != ROE_SREQ_RUNNING) break;
        }
        ASSERT_EQ_INT(v.end, ROE_SREQ_FINISHED);
        for (int c = 0; c < v.n_choices; c++) {
            struct roe_request qc = q[i];
            qc.sampling.seed += (uint64_t)c;
            int32_t want[64];
            ASSERT_EQ_INT(alone(r.m, &qc, want), v.choice[c].n_tokens);
            if (memcmp(want, v.choice[c].tokens, (size_t)v.choice[c].n_tokens * sizeof *want) != 0)
                TEST__FAIL("request %d choice %d: tokens differ from the request alone", i, c);
        }
        roe_sreq_release(h[i]);
    }
    struct roe_sched_stats st;
    roe_sched_get_stats(r.s, &st);
    ASSERT_TRUE(st.preemptions > 0);     /* the pool was short: sequences were preempted */
    ASSERT_EQ_INT(max_running, 4);        /* the former worst-case admission ran 3 at most */
    ASSERT_EQ_INT(st.requests_failed, 0);
    ASSERT_EQ_INT(st.pool_held, 0);       /* every block came back */
    ASSERT_OK(rig_close(&r));
}

/* Collects a batch's tokens per sequence (user: the index). */
struct collect {
    int32_t tok[8][32];
    int n[8];
};

static void collect_token(void *ctx, struct roe_batch_seq *s, int32_t token, const float *z, int ended,
                          roe_finish finish) {
    (void)z, (void)ended, (void)finish;
    struct collect *c = ctx;
    const int i = (int)(intptr_t)s->user;
    c->tok[i][c->n[i]++] = token;
}

/* roe_batch_fits, on a pool of 10 blocks of 8 (watermark: 1 block): a prompt's blocks, one per
 * fork, what running sequences still need, cached prefix blocks a running sequence holds (free
 * to share) and cached ones nobody holds (they leave the evictable pool); and none while a
 * preempted sequence waits. Then sequences admitted beyond the pool are preempted and all end
 * with the tokens each gets alone. */
TEST(admission_by_free_blocks) {
    rig_pool_blocks = 10;
    struct rig r;
    const int ok = rig_open_ctx(&r, 5, 32, 40, NULL, 0) == 0;
    rig_pool_blocks = 0;
    ASSERT_TRUE(ok);
    struct collect col = {0};
    struct roe_batch_opts bo = roe_batch_opts_default();
    bo.hooks = (struct roe_batch_hooks){.ctx = &col, .on_token = collect_token};
    roe_batch *b = NULL;
    ASSERT_OK(roe_batch_create(r.e, &bo, &b));
    int32_t px[25], pb[25], pc[25];
    for (int j = 0; j < 25; j++) {
        px[j] = (int32_t)(j * 13 % 200 + 1);
        pb[j] = j < 24 ? px[j] : px[j] + 1; /* X's first 3 blocks */
        pc[j] = (int32_t)(j * 17 % 190 + 3);
    }
    struct roe_sampling greedy = roe_sampling_default();
    greedy.temperature = 0.0f;
    struct roe_batch_seq x = {.prompt = px, .n_prompt = 25, .max_tokens = 4, .sampling = greedy, .user = (void *)0};
    const struct roe_batch_seq sb = {.prompt = pb, .n_prompt = 25, .max_tokens = 4, .sampling = greedy};
    const struct roe_batch_seq sc = {.prompt = pc, .n_prompt = 25, .max_tokens = 4, .sampling = greedy};
    /* empty pool: 4 blocks + 1 per fork + 1 watermark <= 10 */
    ASSERT_TRUE(roe_batch_fits(b, &sc, 6, -1));
    ASSERT_TRUE(!roe_batch_fits(b, &sc, 7, -1));
    /* X admitted, not run: its 4 blocks are counted as needed */
    ASSERT_OK(roe_batch_admit(b, &x, -1));
    ASSERT_TRUE(roe_batch_fits(b, &sc, 2, -1));
    ASSERT_TRUE(!roe_batch_fits(b, &sc, 3, -1));
    /* X's prompt and first token: it holds 4 blocks, 3 of them full and cached; B shares them */
    ASSERT_OK(roe_batch_step(b, NULL));
    ASSERT_EQ_INT(col.n[0], 1);
    ASSERT_TRUE(roe_batch_fits(b, &sb, 5, -1)); /* 1 block + 4 forks + 1 <= 6 */
    ASSERT_TRUE(!roe_batch_fits(b, &sb, 6, -1));
    ASSERT_TRUE(roe_batch_fits(b, &sc, 2, -1)); /* no hit: 4 + 1 + 1 */
    ASSERT_TRUE(!roe_batch_fits(b, &sc, 3, -1));
    while (roe_batch_count(b) > 0) ASSERT_OK(roe_batch_step(b, NULL));
    /* X ended: its blocks are back, the 3 full ones cached; B would take them from the
     * evictable pool, so it needs as many blocks as C */
    ASSERT_EQ_INT(roe_engine_kv(r.e)->n_lru, 3);
    ASSERT_TRUE(roe_batch_fits(b, &sb, 6, -1));
    ASSERT_TRUE(!roe_batch_fits(b, &sb, 7, -1));
    /* 5 sequences of 4 prompt blocks and 29 positions in all, admitted at once: preempted, never lost */
    static int32_t pp[5][25];
    struct roe_batch_seq s[5];
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 25; j++) pp[i][j] = (int32_t)((i * 37 + j * 11) % 230 + 1);
        s[i] = (struct roe_batch_seq){.prompt = pp[i], .n_prompt = 25, .max_tokens = 5, .sampling = greedy,
                                      .user = (void *)(intptr_t)(i + 1)};
        s[i].sampling.seed = (uint64_t)i;
        if (i % 2) s[i].sampling.temperature = 0.8f;
        ASSERT_OK(roe_batch_admit(b, &s[i], -1));
    }
    ASSERT_TRUE(roe_batch_fits(b, &sc, 1, -1) == 0); /* 20 blocks wanted of 10 */
    ASSERT_OK(roe_batch_step(b, NULL));
    ASSERT_TRUE(roe_batch_parked(b) > 0);
    ASSERT_TRUE(!roe_batch_fits(b, &sb, 1, -1)); /* preempted sequences go first */
    for (int k = 0; k < 200 && roe_batch_count(b) > 0; k++) ASSERT_OK(roe_batch_step(b, NULL));
    ASSERT_EQ_INT(roe_batch_count(b), 0);
    for (int i = 0; i < 5; i++) {
        struct roe_request q = {.prompt = pp[i], .n_prompt = 25, .max_tokens = 5, .sampling = s[i].sampling};
        int32_t want[8];
        ASSERT_EQ_INT(alone(r.m, &q, want), col.n[i + 1]);
        if (memcmp(want, col.tok[i + 1], sizeof(int32_t) * 5) != 0) TEST__FAIL("sequence %d: tokens differ", i);
    }
    ASSERT_TRUE(roe_batch_preemptions(b) == 0); /* parked before they ran: no work lost */
    roe_batch_free(b);
    ASSERT_OK(rig_close(&r));
}

/* roe generate's path (runtime/generate.h): 6 requests on a pool of 8 blocks of 8 that holds
 * about 2 of them at once give the same tokens and the same scores, bit for bit, as on a pool
 * that holds them all (greedy, sampled, RoE K = 4, adaptive K), with sequences preempted after
 * they had tokens. */
TEST(generate_preempts_with_the_same_tokens_and_scores) {
    struct roe_model *m = NULL;
    ASSERT_OK(roe_model_load(MODEL, &m));
    const int V = m->cfg.vocab_size, n = 6, T = 20;
    struct roe_roster k4, ad;
    ASSERT_OK(roe_roster_uniform(&k4, &m->cfg, 4, 0.7f, 0, ROE_GATE_CLEAN));
    ad = k4;
    ad.adaptive_entropy = 2.0f;
    struct roe_request q[6];
    for (int i = 0; i < n; i++)
        q[i] = make_req(i, 7 + 3 * i, T, i % 3 == 1 ? &k4 : i == 5 ? &ad : NULL, i % 2 ? 0.9f : 0.0f);
    int32_t tok[2][6][20];
    int nt[2][6];
    float *z[2] = {roe_malloc((size_t)n * T * V * sizeof(float)), roe_malloc((size_t)n * T * V * sizeof(float))};
    ASSERT_TRUE(z[0] && z[1]);
    long preempted[2];
    for (int run = 0; run < 2; run++) {
        struct roe_engine_opts o = roe_engine_opts_default();
        o.max_seqs = n;
        o.max_ctx = 48;
        o.max_rows = 16;
        o.n_threads = 1;
        o.kv_block_size = 8;
        if (run == 1)
            o.kv_bytes = 8 * roe_kv_block_bytes(m->cfg.n_layers, 8, m->cfg.n_kv_heads * m->cfg.head_dim, 2, 4);
        roe_engine *e = NULL;
        roe_generator *g = NULL;
        struct roe_result *res;
        struct roe_gen_timing t;
        ASSERT_OK(roe_engine_create(m, &o, &e));
        ASSERT_OK(roe_generator_create(e, n, T, 1, &g));
        ASSERT_OK(roe_generator_run(g, q, n, &res, &t));
        for (int i = 0; i < n; i++) {
            nt[run][i] = res[i].n_tokens;
            memcpy(tok[run][i], res[i].tokens, (size_t)res[i].n_tokens * sizeof(int32_t));
            memcpy(z[run] + (size_t)i * T * V, res[i].logits, (size_t)res[i].n_tokens * V * sizeof(float));
        }
        preempted[run] = t.preemptions;
        ASSERT_EQ_INT(roe_engine_kv(e)->n_blocks - roe_engine_kv(e)->n_free - roe_engine_kv(e)->n_lru, 0);
        roe_generator_free(g);
        roe_engine_free(e);
    }
    ASSERT_TRUE(preempted[0] == 0 && preempted[1] > 0);
    for (int i = 0; i < n; i++) {
        ASSERT_EQ_INT(nt[0][i], T);
        ASSERT_EQ_INT(nt[1][i], nt[0][i]);
        if (memcmp(tok[0][i], tok[1][i], (size_t)T * sizeof(int32_t)) != 0) TEST__FAIL("request %d: tokens differ", i);
        if (memcmp(z[0] + (size_t)i * T * V, z[1] + (size_t)i * T * V, (size_t)T * V * sizeof(float)) != 0)
            TEST__FAIL("request %d: scores differ", i);
    }
    roe_free(z[0]);
    roe_free(z[1]);
    roe_model_free(m);
}

TEST(admission_by_blocks) {
    struct roe_sched_opts so = roe_sched_opts_default();
    so.block_size = 8;
    so.kv_blocks = 7; /* each request below needs 3 blocks: two at a time */
    struct rig r;
    ASSERT_TRUE(rig_open(&r, 4, 16, &so, 1) == 0);
    struct roe_request q[6];
    roe_sreq *h[6];
    for (int i = 0; i < 6; i++) {
        q[i] = make_req(i, 6, 14, NULL, 0.0f); /* 20 positions: 3 blocks of 8 */
        struct roe_sreq_params p = params_of(&q[i]);
        ASSERT_OK(roe_sched_submit(r.s, &p, &h[i], NULL));
    }
    int max_running = 0, max_blocks = 0;
    for (int i = 0; i < 6; i++) {
        struct roe_sreq_view v;
        for (int k = 0; k < 6000; k++) {
            struct roe_sched_stats st;
            roe_sched_get_stats(r.s, &st);
            if (st.running > max_running) max_running = st.running;
            if (st.kv_blocks_used > max_blocks) max_blocks = st.kv_blocks_used;
            roe_sreq_wait(h[i], 1 << 30, 0.001, &v);
            if (v.end != ROE_SREQ_RUNNING) break;
        }
        ASSERT_EQ_INT(v.end, ROE_SREQ_FINISHED);
        int32_t want[64];
        ASSERT_EQ_INT(alone(r.m, &q[i], want), v.n_tokens);
        ASSERT_TRUE(memcmp(want, v.tokens, (size_t)v.n_tokens * sizeof *want) == 0);
        roe_sreq_release(h[i]);
    }
    ASSERT_TRUE(max_running <= 2);
    ASSERT_TRUE(max_blocks <= 6);
    ASSERT_OK(rig_close(&r));
}

TEST(refusals) {
    struct roe_sched_opts so = roe_sched_opts_default();
    so.max_queue = 1;
    so.block_size = 16;
    so.kv_blocks = 4;
    struct rig r;
    ASSERT_TRUE(rig_open(&r, 2, 8, &so, 0) == 0); /* not running: requests stay queued */
    struct roe_request q = make_req(0, 5, 10, NULL, 0.0f);
    struct roe_sreq_params p = params_of(&q);
    roe_sreq *a = NULL, *b = NULL;
    roe_sreq_field bad = ROE_SREQ_FIELD_PROMPT;
    ASSERT_OK(roe_sched_submit(r.s, &p, &a, &bad));
    ASSERT_EQ_INT(bad, ROE_SREQ_FIELD_NONE);
    /* the queue is full: retry later, nobody's fault */
    ASSERT_FAILS_WITH(roe_sched_submit(r.s, &p, &b, &bad), ROE_ERR_OVERLOADED, "at capacity");
    ASSERT_TRUE(!b);
    ASSERT_EQ_INT(roe_status_kind(ROE_ERR_OVERLOADED), ROE_KIND_OVERLOADED);
    ASSERT_EQ_INT(bad, ROE_SREQ_FIELD_NONE);
    /* requests that can never fit: bad requests, naming the field at fault */
    p.max_tokens = 80; /* 85 positions: 6 blocks of 16, the pool has 4 */
    ASSERT_FAILS_WITH(roe_sched_submit(r.s, &p, &b, &bad), ROE_ERR_INVALID_ARG, "KV blocks");
    ASSERT_EQ_INT(bad, ROE_SREQ_FIELD_MAX_TOKENS);
    p.max_tokens = 95; /* beyond the context of 96 */
    ASSERT_FAILS_WITH(roe_sched_submit(r.s, &p, &b, &bad), ROE_ERR_INVALID_ARG, "context holds 96");
    ASSERT_EQ_INT(bad, ROE_SREQ_FIELD_MAX_TOKENS);
    p.max_tokens = 5;
    const int32_t outside[] = {1, 9999};
    p.prompt = outside;
    p.n_prompt = 2;
    ASSERT_FAILS_WITH(roe_sched_submit(r.s, &p, &b, &bad), ROE_ERR_INVALID_ARG, "vocabulary");
    ASSERT_EQ_INT(bad, ROE_SREQ_FIELD_PROMPT);
    p = params_of(&q);
    p.max_tokens = 5;
    struct roe_roster big;
    ASSERT_OK(roe_roster_uniform(&big, &r.m->cfg, 9, 0.5f, 0, ROE_GATE_CLEAN));
    p.roster = &big; /* 9 rows, the step holds 8 */
    ASSERT_FAILS_WITH(roe_sched_submit(r.s, &p, &b, &bad), ROE_ERR_INVALID_ARG, "rows per step");
    ASSERT_EQ_INT(bad, ROE_SREQ_FIELD_ROSTER);
    /* stopping: unavailable, and the queued request fails the same way */
    roe_sched_stop(r.s, 0);
    p.roster = NULL;
    ASSERT_FAILS_WITH(roe_sched_submit(r.s, &p, &b, NULL), ROE_ERR_STOPPING, "shutting down");
    ASSERT_EQ_INT(roe_status_kind(ROE_ERR_STOPPING), ROE_KIND_UNAVAILABLE);
    ASSERT_OK(roe_sched_run(r.s)); /* stopping: the queued one fails, nothing runs */
    struct roe_sreq_view v;
    roe_sreq_wait(a, 0, 0.0, &v);
    ASSERT_EQ_INT(v.end, ROE_SREQ_FAILED);
    ASSERT_EQ_INT(v.code, ROE_ERR_STOPPING);
    ASSERT_TRUE(strstr(v.error, "shutting down") != NULL);
    roe_sreq_release(a);
    ASSERT_OK(rig_close(&r));
}

TEST(cancel_frees_the_slot) {
    struct rig r;
    ASSERT_TRUE(rig_open_ctx(&r, 1, 16, 256, NULL, 1) == 0); /* a: 240 steps, still running */
    struct roe_request qa = make_req(0, 4, 240, NULL, 0.0f), qb = make_req(1, 4, 6, NULL, 0.0f),
                       qc = make_req(2, 4, 6, NULL, 0.0f);
    struct roe_sreq_params pa = params_of(&qa), pb = params_of(&qb), pc = params_of(&qc);
    roe_sreq *a, *b, *c;
    ASSERT_OK(roe_sched_submit(r.s, &pa, &a, NULL));
    struct roe_sreq_view v;
    for (int i = 0; i < 600 && roe_sreq_wait(a, 0, 0.1, &v) == 0;)
        i++; /* a runs */
    ASSERT_OK(roe_sched_submit(r.s, &pb, &b, NULL));
    ASSERT_OK(roe_sched_submit(r.s, &pc, &c, NULL));
    roe_sreq_cancel(c); /* waiting: leaves the queue */
    roe_sreq_cancel(a); /* running: leaves the batch, b gets the slot */
    wait_end(a, &v);
    ASSERT_EQ_INT(v.end, ROE_SREQ_CANCELLED);
    ASSERT_TRUE(v.n_tokens < 240);
    wait_end(c, &v);
    ASSERT_EQ_INT(v.end, ROE_SREQ_CANCELLED);
    ASSERT_EQ_INT(v.n_tokens, 0);
    wait_end(b, &v);
    ASSERT_EQ_INT(v.end, ROE_SREQ_FINISHED);
    ASSERT_EQ_INT(v.n_tokens, 6);
    roe_sreq_release(a);
    roe_sreq_release(b);
    roe_sreq_release(c);
    struct roe_sched_stats st;
    roe_sched_get_stats(r.s, &st);
    ASSERT_EQ_INT(st.requests_cancelled, 2);
    ASSERT_EQ_INT(st.kv_blocks_used, 0);
    ASSERT_EQ_INT(st.waiting, 0);
    ASSERT_OK(rig_close(&r));
}

TEST(stop_finishes_running_and_abort_fails_them) {
    for (int abort = 0; abort < 2; abort++) {
        struct rig r;
        /* a long request (250 steps), so that it is still running when the stop comes */
        ASSERT_TRUE(rig_open_ctx(&r, 1, 16, 256, NULL, 1) == 0);
        struct roe_request qa = make_req(0, 4, 250, NULL, 0.0f), qb = make_req(1, 4, 6, NULL, 0.0f);
        struct roe_sreq_params pa = params_of(&qa), pb = params_of(&qb);
        roe_sreq *a, *b;
        ASSERT_OK(roe_sched_submit(r.s, &pa, &a, NULL));
        struct roe_sreq_view v;
        for (int i = 0; i < 600 && roe_sreq_wait(a, 0, 0.1, &v) == 0;)
            i++;
        ASSERT_OK(roe_sched_submit(r.s, &pb, &b, NULL));
        roe_sched_stop(r.s, abort);
        wait_end(a, &v);
        ASSERT_EQ_INT(v.end, abort ? ROE_SREQ_FAILED : ROE_SREQ_FINISHED);
        ASSERT_EQ_INT(v.code, abort ? ROE_ERR_STOPPING : ROE_OK);
        if (!abort) ASSERT_EQ_INT(v.n_tokens, 250);
        wait_end(b, &v);
        ASSERT_EQ_INT(v.end, ROE_SREQ_FAILED);
        ASSERT_EQ_INT(v.code, ROE_ERR_STOPPING);
        ASSERT_TRUE(strstr(v.error, "shutting down") != NULL);
        roe_sreq_release(a);
        roe_sreq_release(b);
        ASSERT_OK(rig_close(&r));
    }
}

TEST(choices_share_the_prompt) {
    struct rig r;
    ASSERT_TRUE(rig_open(&r, 6, 16, NULL, 1) == 0);
    struct roe_roster k4, plain;
    roe_roster_plain(&plain);
    ASSERT_OK(roe_roster_uniform(&k4, &r.m->cfg, 4, 0.7f, 0, ROE_GATE_CLEAN));
    for (int variant = 0; variant < 2; variant++) {
        struct roe_sched_stats st0, st1;
        roe_sched_get_stats(r.s, &st0);
        /* a prompt of several steps; three choices, sampled */
        struct roe_request q = make_req(variant, 37, 9, variant ? &k4 : &plain, 0.9f);
        struct roe_sreq_params p = params_of(&q);
        p.n = 3;
        roe_sreq *h;
        ASSERT_OK(roe_sched_submit(r.s, &p, &h, NULL));
        struct roe_sreq_view v;
        wait_end(h, &v);
        ASSERT_EQ_INT(v.end, ROE_SREQ_FINISHED);
        ASSERT_EQ_INT(v.n_choices, 3);
        for (int i = 0; i < 3; i++) {
            struct roe_request qi = q;
            qi.sampling.seed += (uint64_t)i;
            int32_t want[64];
            const int n = alone(r.m, &qi, want);
            ASSERT_EQ_INT(v.choice[i].n_tokens, n);
            for (int j = 0; j < n; j++)
                if (v.choice[i].tokens[j] != want[j])
                    TEST__FAIL("variant %d choice %d token %d: %d, alone with seed + %d: %d", variant, i, j,
                               v.choice[i].tokens[j], i, want[j]);
        }
        roe_sched_get_stats(r.s, &st1);
        /* the prompt ran once; each other choice ran only its last position */
        ASSERT_EQ_INT(st1.prompt_tokens - st0.prompt_tokens, q.n_prompt + 2);
        ASSERT_EQ_INT(st1.generation_tokens - st0.generation_tokens, 27);
        roe_sreq_release(h);
    }
    ASSERT_OK(rig_close(&r));
}

TEST(log_probabilities) {
    struct rig r;
    ASSERT_TRUE(rig_open(&r, 2, 16, NULL, 1) == 0);
    const int V = r.m->cfg.vocab_size;
    struct roe_roster k4;
    ASSERT_OK(roe_roster_uniform(&k4, &r.m->cfg, 4, 0.7f, 0, ROE_GATE_CLEAN));
    for (int variant = 0; variant < 2; variant++) {
        struct roe_request q = make_req(3, 23, 6, variant ? &k4 : NULL, 0.0f);
        struct roe_sreq_params p = params_of(&q);
        p.logprobs = 1;
        p.top_logprobs = 3;
        p.prompt_logprobs = 1;
        roe_sreq *h;
        ASSERT_OK(roe_sched_submit(r.s, &p, &h, NULL));
        struct roe_sreq_view v;
        wait_end(h, &v);
        ASSERT_EQ_INT(v.end, ROE_SREQ_FINISHED);
        static float z[64 * 4096];
        int32_t want[64];
        ASSERT_TRUE(V <= 4096);
        ASSERT_EQ_INT(alone_z(r.m, &q, want, z), 6);
        for (int j = 0; j < 6; j++) {
            const float *zj = z + (size_t)j * V;
            const float lp = (float)roe_log_prob(zj, V, want[j]);
            if (v.choice[0].logprobs[j] != lp)
                TEST__FAIL("variant %d token %d: log-probability %.9g, want %.9g", variant, j, v.choice[0].logprobs[j], lp);
            const int32_t *ti = v.choice[0].top_ids + j * 3;
            const float *tl = v.choice[0].top_logprobs + j * 3;
            /* greedy: the token is the most likely; the alternatives come in order */
            if (ti[0] != want[j] || tl[0] != lp || !(tl[1] <= tl[0] && tl[2] <= tl[1]))
                TEST__FAIL("variant %d token %d: top %d %d %d (%g %g %g)", variant, j, ti[0], ti[1], ti[2], tl[0], tl[1], tl[2]);
        }
        /* the prompt's: what roe eval's scorer gives, position by position */
        struct roe_engine_opts o = roe_engine_opts_default();
        o.max_seqs = 1;
        o.max_ctx = 96;
        o.max_rows = 16;
        o.n_threads = 1;
        roe_engine *e;
        roe_scorer *sc;
        ASSERT_OK(roe_engine_create(r.m, &o, &e));
        ASSERT_OK(roe_scorer_create(e, &sc));
        ASSERT_EQ_INT(v.prompt_scored, q.n_prompt);
        for (int pos = 1; pos < q.n_prompt; pos++) {
            double want_lp = 0;
            struct roe_score_stats ss = {0};
            ASSERT_OK(roe_score(sc, q.prompt, pos + 1, pos, q.roster, q.sampling.seed, &want_lp, &ss));
            if (v.prompt_logprobs[pos] != (float)want_lp)
                TEST__FAIL("variant %d prompt token %d: %.9g, roe_score %.9g", variant, pos, v.prompt_logprobs[pos],
                           want_lp);
        }
        roe_scorer_free(sc);
        roe_engine_free(e);
        roe_sreq_release(h);
    }
    ASSERT_OK(rig_close(&r));
}

/* A copy of the fixture whose final norm is NaN: every logit is NaN. */
static int nan_model(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s && cp %s/config.json %s/model.safetensors %s/", dir, dir, MODEL,
             MODEL, dir);
    if (system(cmd) != 0) return -1;
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "r+b");
    if (!f) return -1;
    uint64_t hl = 0;
    char hdr[65536];
    if (fread(&hl, 8, 1, f) != 1 || hl >= sizeof hdr || fread(hdr, 1, hl, f) != hl) return fclose(f), -1;
    hdr[hl] = '\0';
    cJSON *h = cJSON_Parse(hdr), *t = cJSON_GetObjectItem(h, "model.norm.weight");
    cJSON *off = cJSON_GetObjectItem(t, "data_offsets");
    const char *dt = cJSON_GetStringValue(cJSON_GetObjectItem(t, "dtype"));
    if (!off || !dt) return cJSON_Delete(h), fclose(f), -1;
    const long a = (long)cJSON_GetArrayItem(off, 0)->valuedouble, b = (long)cJSON_GetArrayItem(off, 1)->valuedouble;
    const int f32 = strcmp(dt, "F32") == 0;
    cJSON_Delete(h);
    fseek(f, 8 + (long)hl + a, SEEK_SET);
    for (long x = a; x < b; x += f32 ? 4 : 2) {
        const uint32_t nan32 = 0x7fc00000u;
        const uint16_t nan16 = 0x7fc0u;
        if (fwrite(f32 ? (const void *)&nan32 : (const void *)&nan16, f32 ? 4 : 2, 1, f) != 1) return fclose(f), -1;
    }
    return fclose(f);
}

TEST(non_finite_scores_fail_the_request) {
    const char *dir = "/tmp/roe_test_nan_model";
    ASSERT_TRUE(nan_model(dir) == 0);
    struct rig r;
    memset(&r, 0, sizeof r);
    ASSERT_OK(roe_model_load(dir, &r.m));
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = 2;
    o.max_ctx = 64;
    o.max_rows = 16;
    o.n_threads = 1;
    ASSERT_OK(roe_engine_create(r.m, &o, &r.e));
    struct roe_sched_opts so = roe_sched_opts_default();
    ASSERT_OK(roe_sched_create(r.e, &so, &r.s));
    ASSERT_TRUE(pthread_create(&r.thread, NULL, run_thread, &r) == 0);
    struct roe_request q = make_req(1, 5, 4, NULL, 0.0f);
    struct roe_sreq_params p = params_of(&q);
    roe_sreq *h;
    ASSERT_OK(roe_sched_submit(r.s, &p, &h, NULL));
    struct roe_sreq_view v;
    wait_end(h, &v);
    ASSERT_EQ_INT(v.end, ROE_SREQ_FAILED);
    ASSERT_EQ_INT(v.n_tokens, 0);
    ASSERT_EQ_INT(roe_status_kind(v.code), ROE_KIND_INTERNAL);
    ASSERT_TRUE(strstr(v.error, "non-finite") && strstr(v.error, "NaN"));
    roe_sreq_release(h);
    /* the server goes on: the next request fails the same way, cleanly */
    ASSERT_OK(roe_sched_submit(r.s, &p, &h, NULL));
    wait_end(h, &v);
    ASSERT_EQ_INT(v.end, ROE_SREQ_FAILED);
    roe_sreq_release(h);
    /* the batch generator (roe generate) fails the run with the same words */
    roe_generator *g;
    struct roe_result *res;
    struct roe_gen_timing t;
    ASSERT_OK(roe_generator_create(r.e, 1, 4, 0, &g));
    roe_sched_stop(r.s, 0);
    pthread_join(r.thread, NULL);
    ASSERT_EQ_INT(roe_generator_run(g, &q, 1, &res, &t), ROE_ERR_INTERNAL);
    ASSERT_TRUE(strstr(roe_error_message(), "non-finite") != NULL);
    roe_generator_free(g);
    rig_close(&r);
}

/* Every id of a list-valued eos_token_id ends a sequence (and generation_config.json's join
 * them at load). */
TEST(every_eos_id) {
    /* the loader: a config's list and generation_config.json's ids, together */
    ASSERT_TRUE(system("rm -rf /tmp/roe_test_eos && mkdir -p /tmp/roe_test_eos && cp tests/fixtures/olmoe/model/* "
                       "/tmp/roe_test_eos/ && sed -i 's/\"eos_token_id\": 383/\"eos_token_id\": [383, 5]/' "
                       "/tmp/roe_test_eos/config.json && echo '{\"eos_token_id\": [9, 383]}' > "
                       "/tmp/roe_test_eos/generation_config.json") == 0);
    struct roe_model_config c;
    ASSERT_OK(roe_config_load("/tmp/roe_test_eos", &c));
    ASSERT_EQ_INT(c.n_eos, 3);
    ASSERT_TRUE(c.eos_ids[0] == 383 && c.eos_ids[1] == 5 && c.eos_ids[2] == 9);
    /* the core: a request ends at the second id as at the first */
    struct rig r;
    ASSERT_TRUE(rig_open(&r, 2, 16, NULL, 0) == 0);
    struct roe_request q = make_req(2, 6, 5, NULL, 0.0f);
    int32_t want[8];
    ASSERT_EQ_INT(alone(r.m, &q, want), 5);
    roe_sched_free(r.s);
    r.m->cfg.eos_ids[1] = want[2]; /* the third greedy token is now an end id */
    r.m->cfg.n_eos = 2;
    struct roe_sched_opts so = roe_sched_opts_default();
    ASSERT_OK(roe_sched_create(r.e, &so, &r.s));
    ASSERT_TRUE(pthread_create(&r.thread, NULL, run_thread, &r) == 0);
    r.running = 1;
    struct roe_sreq_params p = params_of(&q);
    p.stop_at_eos = 1;
    roe_sreq *h;
    ASSERT_OK(roe_sched_submit(r.s, &p, &h, NULL));
    struct roe_sreq_view v;
    wait_end(h, &v);
    const int first = want[0] == want[2] ? 1 : want[1] == want[2] ? 2 : 3; /* where it first appears */
    ASSERT_EQ_INT(v.n_tokens, first);
    ASSERT_EQ_INT(v.finish, ROE_FINISH_EOS);
    roe_sreq_release(h);
    ASSERT_OK(rig_close(&r));
}

int main(void) {
    RUN(concurrent_equals_alone);
    RUN(adaptive_k_at_the_clean_position);
    RUN(admission_by_blocks);
    RUN(small_pool_preempts_and_loses_no_request);
    RUN(admission_by_free_blocks);
    RUN(generate_preempts_with_the_same_tokens_and_scores);
    RUN(refusals);
    RUN(cancel_frees_the_slot);
    RUN(stop_finishes_running_and_abort_fails_them);
    RUN(choices_share_the_prompt);
    RUN(log_probabilities);
    RUN(non_finite_scores_fail_the_request);
    RUN(every_eos_id);
    return test_summary();
}
