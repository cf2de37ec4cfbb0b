/*
 * test_kv_window.c — sliding-window layers cache only their window (docs/KV.md "Sliding windows"):
 *  - the pool with a window: a sequence gives back the blocks wholly before its last `window`
 *    positions; a registered block it gave back still serves a prefix hit, which needs only the
 *    blocks of the window at the hit's length (not block 0), and no hit when one of those was
 *    evicted; a fork from positions whose window was given back is refused;
 *  - the engine: on the gpt-oss fixtures (sliding and full layers alternating, windows of 5 and 6
 *    under prompts of 20 and 32), qwen2_moe (one sliding layer, window 8) and mixtral made
 *    sliding on every layer (window 5), the logits of every prompt position (in chunks beside a
 *    second sequence), of a fork and its decode, and of generation with RoE K = 4 (adaptive
 *    included: its samples read the position before) are the same bits as an engine whose
 *    windowed layers keep every position (kv_full_windows); and the blocks a sequence holds for
 *    its windowed layers stay within window / block_size + 2 however long it grows, and the pool
 *    is smaller than a full context's per sequence.
 */
#include "fixture.h"
#include "harness.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/kv_cache.h"
#include "runtime/roster.h"

enum { CTX = 96, BS = 2 };

static roe_backend *cpu(void) {
    struct roe_backend_opts o = {.n_threads = 1, .max_cols = 64, .max_ctx = CTX};
    roe_backend *be = NULL;
    return roe_backend_create(ROE_BACKEND_CPU, &o, &be) == ROE_OK ? be : NULL;
}

static int held(const struct roe_kv_cache *c, int seq) {
    int n = 0;
    for (int i = 0; i < c->max_blocks; i++) n += c->table[(size_t)seq * c->max_blocks + i] >= 0;
    return n;
}

TEST(window_pool_gives_back_and_matches_the_window) {
    roe_backend *be = cpu();
    ASSERT_TRUE(be != NULL);
    struct roe_kv_cache c;
    const size_t blk = roe_kv_block_bytes(1, 4, 8, 2, 4);
    const struct roe_kv_cache_opts o = {.max_seqs = 3, .n_layers = 1, .max_ctx = 32, .kv_dim = 8, .n_vecs = 2,
                                        .block_size = 4, .bytes = 6 * blk, .window = 5, .min_blocks = 4};
    ASSERT_OK(roe_kv_cache_init(&c, be, &o));
    ASSERT_EQ_INT(c.n_blocks, 6); /* fewer than one context's 8: the window's pool */
    const int32_t a[13] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
    for (int p = 0; p < 13; p++) {
        ASSERT_OK(roe_kv_cache_reserve(&c, 0, p + 1));
        roe_kv_cache_note(&c, 0, p, a[p]);
        c.len[0] = p + 1;
        /* positions from len - 5 are kept: blocks wholly before go back */
        const int keep = p + 1 > 5 ? p + 1 - 5 : 0;
        ASSERT_EQ_INT(c.lo[0], keep / 4);
        ASSERT_EQ_INT(held(&c, 0), p / 4 + 1 - keep / 4);
    }
    ASSERT_EQ_INT(c.n_lru, 2); /* blocks 0 and 1, registered, given back: evictable */
    const int32_t b0 = c.lru_head;
    ASSERT_EQ_INT(roe_kv_cache_blocks_needed(&c, 0, 16), 0);
    ASSERT_EQ_INT(roe_kv_cache_blocks_needed(&c, 0, 17), 1);
    /* a hit of 12 positions needs blocks 1 and 2 (from position 12 - 5 = 7), not block 0 */
    ASSERT_EQ_INT(roe_kv_cache_match(&c, 1, a, 13), 12);
    ASSERT_EQ_INT(c.lo[1], 1);
    ASSERT_EQ_INT(held(&c, 1), 2);
    ASSERT_EQ_INT(c.table[1 * 8 + 2], c.table[0 * 8 + 2]);
    roe_kv_cache_reset(&c, 1);
    ASSERT_OK(roe_kv_cache_reserve(&c, 2, 4)); /* 2 free blocks... */
    ASSERT_OK(roe_kv_cache_reserve(&c, 2, 12)); /* ...then block 0 of a evicted (the oldest) */
    ASSERT_EQ_INT(c.evictions, 1);
    ASSERT_TRUE(c.table[2 * 8 + 0] == b0 || c.table[2 * 8 + 1] == b0 || c.table[2 * 8 + 2] == b0);
    ASSERT_EQ_INT(roe_kv_cache_match(&c, 1, a, 13), 12); /* still: block 0 is outside the window */
    roe_kv_cache_reset(&c, 1);
    ASSERT_OK(roe_kv_cache_reserve(&c, 2, 16)); /* evicts block 1 of a */
    ASSERT_EQ_INT(c.evictions, 2);
    ASSERT_EQ_INT(roe_kv_cache_match(&c, 1, a, 13), 0); /* 12 needs block 1; 8 and 4 need block 0 */
    roe_kv_cache_reset(&c, 2);
    /* a fork of all 13 positions shares the window's blocks; of 9 it would need position 5 */
    ASSERT_OK(roe_kv_cache_copy(&c, 2, 0, 13));
    ASSERT_EQ_INT(c.lo[2], 2);
    ASSERT_EQ_INT(roe_kv_cache_copy(&c, 1, 0, 9), ROE_ERR_INVALID_ARG);
    ASSERT_TRUE(strstr(roe_error_message(), "gave back") != NULL);
    ASSERT_EQ_INT(held(&c, 1), 0);
    roe_kv_cache_free(&c);
    struct roe_kv_cache_opts small = o;
    small.bytes = 3 * blk; /* below min_blocks: refused, naming the window */
    ASSERT_EQ_INT(roe_kv_cache_init(&c, be, &small), ROE_ERR_INVALID_ARG);
    ASSERT_TRUE(strstr(roe_error_message(), "window of 5") != NULL);
    be->ops->destroy(be);
}

/* 0: windowed layers keep every position, one block per context; 1: the window's pool, blocks of
 * BS handed out scrambled. */
static roe_engine *open_engine(const struct roe_model *m, int windowed) {
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = 4;
    o.max_ctx = CTX;
    o.max_rows = 64;
    o.n_threads = 2;
    o.kv_dtype = ROE_DTYPE_F32;
    o.kv_block_size = windowed ? BS : CTX;
    o.kv_scramble = windowed ? 0x5eed : 0;
    o.kv_full_windows = !windowed;
    roe_engine *e = NULL;
    return roe_engine_create(m, &o, &e) == ROE_OK ? e : NULL;
}

static int max_window(const struct roe_model_config *c) {
    int w = 0;
    for (int l = 0; l < c->n_layers; l++) w = c->layer_window[l] > w ? c->layer_window[l] : w;
    return w;
}

/* The pool that holds the windowed layers. */
static const struct roe_kv_cache *window_pool(const roe_engine *e) {
    return roe_engine_kv_window(e) ? roe_engine_kv_window(e) : roe_engine_kv(e);
}

/* The prompt on slot 0 in chunks of 5 beside slot 1; a fork of slot 0 into slot 2 at its full
 * length; 8 greedy decode rows on slots 0 and 2. Every logit into z; with `bound`, the blocks
 * each slot holds in the windowed pool checked after every step. */
static void drive(roe_engine *e, const struct fixture_case *k, float *z, int bound) {
    const int V = k->vocab, n = k->n_prompt;
    const struct roe_kv_cache *wp = window_pool(e);
    struct roe_row rows[8];
    int p1 = 0, o = 0;
    for (int p0 = 0; p0 < n; p0 += 5) {
        int m = 0;
        for (int j = p0; j < n && j < p0 + 5; j++)
            rows[m++] = (struct roe_row){.seq = 0, .pos = j, .token = k->prompt[j], .want_logits = 1};
        rows[m++] = (struct roe_row){.seq = 1, .pos = p1, .token = k->prompt[(p1 * 7) % n], .want_logits = 1};
        p1++;
        ASSERT_OK(roe_engine_step(e, rows, m, z + (size_t)o * V));
        o += m;
        for (int s = 0; s < 2 && bound; s++)
            if (held(wp, s) > bound) TEST__FAIL("slot %d holds %d blocks, window bound %d", s, held(wp, s), bound);
    }
    ASSERT_OK(roe_engine_copy_seq(e, 2, 0, n));
    int len0 = n, len2 = n;
    int32_t t0 = k->prompt[n - 1], t2 = k->prompt[n / 2];
    for (int step = 0; step < 8; step++) {
        rows[0] = (struct roe_row){.seq = 0, .pos = len0++, .token = t0, .want_logits = 1};
        rows[1] = (struct roe_row){.seq = 2, .pos = len2++, .token = t2, .want_logits = 1};
        float *zz = z + (size_t)o * V;
        ASSERT_OK(roe_engine_step(e, rows, 2, zz));
        o += 2;
        t0 = t2 = 0;
        for (int v = 1; v < V; v++) {
            if (zz[v] > zz[t0]) t0 = v;
            if (zz[V + v] > zz[V + t2]) t2 = v;
        }
        for (int s = 0; s < 3 && bound; s++)
            if (held(wp, s) > bound) TEST__FAIL("slot %d holds %d blocks, window bound %d", s, held(wp, s), bound);
    }
    for (int s = 0; s < 3; s++) roe_engine_reset_seq(e, s);
}

/* Generation, RoE K = 4 (fixed and adaptive) beside a plain request, prompts longer than the
 * window: tokens and logits of both engines. */
static void check_generation(roe_engine *e[2], const struct roe_model *m, const struct fixture_case *k) {
    struct roe_roster full, adaptive;
    ASSERT_OK(roe_roster_uniform(&full, &m->cfg, 4, 0.8f, 0, ROE_GATE_CLEAN));
    adaptive = full;
    adaptive.adaptive_entropy = 1.0f;
    const struct roe_roster *ro[3] = {&full, NULL, &adaptive};
    struct roe_request q[3];
    for (int i = 0; i < 3; i++) {
        q[i] = (struct roe_request){.prompt = k->prompt + i, .n_prompt = k->n_prompt - 2 * i, .max_tokens = 14,
                                    .sampling = roe_sampling_default(), .roster = ro[i]};
        q[i].sampling.seed = 3 + (uint64_t)i;
        q[i].sampling.temperature = 0.7f;
    }
    struct roe_result *res[2];
    roe_generator *g[2];
    struct roe_gen_timing t;
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(roe_generator_create(e[i], 4, 14, 1, &g[i]));
        ASSERT_OK(roe_generator_run(g[i], q, 3, &res[i], &t));
    }
    for (int r = 0; r < 3; r++) {
        ASSERT_EQ_INT(res[0][r].n_tokens, res[1][r].n_tokens);
        ASSERT_TRUE(memcmp(res[0][r].tokens, res[1][r].tokens, (size_t)res[0][r].n_tokens * 4) == 0);
        if (memcmp(res[0][r].logits, res[1][r].logits, (size_t)res[0][r].n_tokens * m->cfg.vocab_size * 4) != 0)
            TEST__FAIL("request %d: generation logits differ from the full cache", r);
    }
    for (int i = 0; i < 2; i++) roe_generator_free(g[i]);
}

/* all_window > 0: every layer of the model made sliding with that window. */
static void check_model(const char *dir, int all_window) {
    struct fixture fx;
    ASSERT_TRUE(fixture_load(dir, &fx) == 0);
    struct roe_model *m = NULL;
    ASSERT_OK(roe_model_load(fx.model_dir, &m));
    for (int l = 0; l < m->cfg.n_layers && all_window; l++) m->cfg.layer_window[l] = all_window;
    const int w = max_window(&m->cfg);
    ASSERT_TRUE(w > 0);
    roe_engine *e[2] = {open_engine(m, 0), open_engine(m, 1)};
    ASSERT_TRUE(e[0] && e[1]);
    ASSERT_TRUE(roe_engine_kv_window(e[0]) == NULL);
    ASSERT_TRUE((roe_engine_kv_window(e[1]) != NULL) == !all_window);
    ASSERT_EQ_INT(window_pool(e[1])->window, w);
    const int bound = (w + BS - 1) / BS + 2;
    if (roe_engine_kv_window(e[1])) /* the windowed layers' pool: far below a context per slot */
        ASSERT_TRUE(roe_kv_cache_bytes(roe_engine_kv_window(e[1])) * 2 <
                    roe_engine_kv_bytes(e[0]) - roe_kv_cache_bytes(roe_engine_kv(e[1])));
    for (int c = 0; c < fx.n_cases; c++) {
        const struct fixture_case *k = &fx.cases[c];
        ASSERT_TRUE(k->n_prompt > w + 2 * BS && k->n_prompt + 8 <= CTX);
        const size_t cnt = (size_t)(2 * k->n_prompt + 16) * k->vocab;
        float *z0 = calloc(cnt, sizeof(float)), *z1 = calloc(cnt, sizeof(float));
        drive(e[0], k, z0, 0);
        drive(e[1], k, z1, bound);
        if (memcmp(z0, z1, cnt * sizeof(float)) != 0) TEST__FAIL("%s case %d: windowed logits differ", dir, c);
        free(z0);
        free(z1);
    }
    check_generation(e, m, &fx.cases[0]);
    for (int i = 0; i < 2; i++) roe_engine_free(e[i]);
    roe_model_free(m);
    fixture_free(&fx);
}

TEST(window_cache_equals_full_cache_gpt_oss) {
    const char *dirs[] = {"tests/fixtures/gpt_oss", "tests/fixtures/gpt_oss_b", "tests/fixtures/gpt_oss_mx",
                          "tests/fixtures/gpt_oss_mx_b", "tests/fixtures/qwen2_moe"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) check_model(dirs[i], 0);
}

TEST(window_cache_equals_full_cache_every_layer_sliding) { check_model("tests/fixtures/mixtral", 5); }

int main(void) {
    RUN(window_pool_gives_back_and_matches_the_window);
    RUN(window_cache_equals_full_cache_gpt_oss);
    RUN(window_cache_equals_full_cache_every_layer_sliding);
    return test_summary();
}
