/*
 * test_mor.c — Mixture-of-Recursions and plain Llama against the PyTorch reference
 * (tools/mor/mor_ref.py, fixtures tests/fixtures/mor_*, the trained models/mor-tiny's mor_tiny_ref,
 * and llama; runtime/mor.h):
 *  - logits at every prompt position within 1e-4 x max|logit| of the reference, on every CPU
 *    kernel path this machine has;
 *  - each token's depth (recursions run) equal to the reference's, prompt and greedy tokens;
 *  - the prompt token by token, and interleaved with another sequence: the same bits;
 *  - 32 greedy tokens through the generator equal to the reference's;
 *  - continuous depth-wise batching (the tick API: tokens of several sequences at different
 *    depths in one pass of the shared block, slots refilled FIFO) gives the plain step's bits;
 *  - the block pool holds exactly the (token, recursion) entries the depths say, and no more blocks.
 */
#include "fixture.h"
#include "harness.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/mor.h"

static const char *FIXTURES[] = {"tests/fixtures/mor_ec", "tests/fixtures/mor_ec_share", "tests/fixtures/mor_tc",
                                 "tests/fixtures/mor_tc_share", "tests/fixtures/llama", "tests/fixtures/mor_tiny_ref"};

enum { MAX_DEPTHS = 2 * FIX_MAX_IDS };

/* The reference's depth of every position of a case's prompt + greedy tokens ("depths"; empty for llama). */
static int load_depths(const char *dir, int ci, int *depth) {
    char path[1024];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    char *text = NULL;
    size_t len = 0;
    if (roe_file_read_all(path, 1 << 24, &text, &len) != ROE_OK) return -1;
    cJSON *root = cJSON_Parse(text);
    roe_free(text);
    const cJSON *d = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), ci), "depths");
    const int n = cJSON_GetArraySize(d) < MAX_DEPTHS ? cJSON_GetArraySize(d) : MAX_DEPTHS;
    for (int i = 0; i < n; i++) depth[i] = (int)cJSON_GetArrayItem(d, i)->valuedouble;
    cJSON_Delete(root);
    return n;
}

static roe_status prefill(roe_engine *e, int seq, const int32_t *ids, int n, int chunk, float *logits, int V) {
    struct roe_row rows[FIX_MAX_IDS];
    for (int p0 = 0; p0 < n; p0 += chunk) {
        const int m = n - p0 < chunk ? n - p0 : chunk;
        for (int j = 0; j < m; j++)
            rows[j] = (struct roe_row){.seq = seq, .pos = p0 + j, .token = ids[p0 + j], .want_logits = 1};
        ROE_TRY(roe_engine_step(e, rows, m, logits + (size_t)p0 * V));
    }
    return ROE_OK;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

static roe_engine *open_engine(struct roe_model *m, roe_cpu_isa isa, int full_depth) {
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = 3;
    o.max_ctx = 128;
    o.max_rows = 64;
    o.isa = isa;
    o.kv_block_size = 4; /* blocks small enough that compacted pool sequences hold few */
    o.mor_full_depth = full_depth;
    roe_engine *e = NULL;
    if (roe_engine_create(m, &o, &e) != ROE_OK) TEST__FAIL("engine: %s", roe_error_message());
    return e;
}

/* 1-3: the prompt in one step against the reference, its depths, token by token, interleaved. */
static int check_prompt(roe_engine *e, const char *dir, const struct fixture_case *k, const int *depth, int nd,
                        int V) {
    const size_t nl = (size_t)k->n_prompt * V;
    float *whole = malloc(nl * sizeof(float)), *single = malloc(nl * sizeof(float));
    int bad = 0;
    roe_engine_reset_seq(e, 0);
    roe_status st = prefill(e, 0, k->prompt, k->n_prompt, 64, whole, V);
    const double diff = st == ROE_OK ? max_abs_diff(whole, k->logits, nl) : INFINITY, tol = 1e-4 * k->max_abs_logit;
    fprintf(stderr, "  %s [%s]: max|dlogit| = %.3g (tol %.3g)\n", dir, roe_engine_backend_name(e), diff, tol);
    if (!(diff <= tol)) {
        TEST__FAIL("%s: max|dlogit| %.3g exceeds %.3g %s", dir, diff, tol, st == ROE_OK ? "" : roe_error_message());
        bad = 1;
    }
    for (int p = 0; !bad && roe_engine_is_mor(e) && p < k->n_prompt; p++)
        if (p >= nd || roe_engine_mor_depth(e, 0, p) != depth[p]) {
            TEST__FAIL("%s: position %d ran %d recursions, the reference %d", dir, p, roe_engine_mor_depth(e, 0, p),
                       p < nd ? depth[p] : -1);
            bad = 1;
        }
    roe_engine_reset_seq(e, 0);
    if (!bad && (prefill(e, 0, k->prompt, k->n_prompt, 1, single, V) != ROE_OK ||
                 memcmp(whole, single, nl * sizeof(float)) != 0)) {
        TEST__FAIL("%s: token-by-token logits differ from the one-step prefill (max %.3g)", dir,
                   max_abs_diff(whole, single, nl));
        bad = 1;
    }
    if (!bad) { /* seq 1 runs the prompt reversed in the same steps, rows alternating */
        struct roe_row rows[2 * FIX_MAX_IDS];
        float *mixed = malloc(2 * nl * sizeof(float));
        roe_engine_reset_seq(e, 0);
        roe_engine_reset_seq(e, 1);
        int n = 0;
        for (int p = 0; p < k->n_prompt; p++) {
            rows[n++] = (struct roe_row){.seq = 1, .pos = p, .token = k->prompt[k->n_prompt - 1 - p], .want_logits = 1};
            rows[n++] = (struct roe_row){.seq = 0, .pos = p, .token = k->prompt[p], .want_logits = 1};
        }
        st = ROE_OK;
        for (int r0 = 0; r0 < n && st == ROE_OK; r0 += 64)
            st = roe_engine_step(e, rows + r0, n - r0 < 64 ? n - r0 : 64, mixed + (size_t)r0 * V);
        for (int p = 0; p < k->n_prompt && st == ROE_OK && !bad; p++)
            if (memcmp(mixed + (size_t)(2 * p + 1) * V, whole + (size_t)p * V, V * sizeof(float)) != 0) {
                TEST__FAIL("%s: logits at position %d change when batched with another sequence", dir, p);
                bad = 1;
            }
        if (st != ROE_OK) {
            TEST__FAIL("mixed step: %s", roe_error_message());
            bad = 1;
        }
        free(mixed);
    }
    free(whole);
    free(single);
    return bad;
}

/* 4: greedy through the generator, and the generated tokens' depths. */
static void check_greedy(roe_engine *e, const char *dir, const struct fixture_case *k, const int *depth, int nd) {
    roe_generator *g = NULL;
    if (roe_generator_create(e, 1, k->n_greedy, 0, &g) != ROE_OK) {
        TEST__FAIL("generator: %s", roe_error_message());
        return;
    }
    for (int s = 0; s < 3; s++) roe_engine_reset_seq(e, s);
    struct roe_request req = {.prompt = k->prompt, .n_prompt = k->n_prompt, .max_tokens = k->n_greedy,
                              .stop_at_eos = 0, .sampling = roe_sampling_default()};
    struct roe_result *res = NULL;
    struct roe_gen_timing tm;
    if (roe_generator_run(g, &req, 1, &res, &tm) != ROE_OK) TEST__FAIL("generate: %s", roe_error_message());
    else if (res[0].n_tokens != k->n_greedy) TEST__FAIL("generated %d tokens, want %d", res[0].n_tokens, k->n_greedy);
    else
        for (int j = 0; j < k->n_greedy; j++)
            if (res[0].tokens[j] != k->greedy[j]) {
                TEST__FAIL("%s: greedy token %d is %d, the reference says %d", dir, j, res[0].tokens[j], k->greedy[j]);
                break;
            }
    /* the generator ran the prompt and all but the last generated token, in some slot */
    for (int s = 0; s < 3 && roe_engine_is_mor(e) && !test__current_failed; s++) {
        if (roe_engine_seq_len(e, s) == 0) continue;
        for (int p = 0; p < roe_engine_seq_len(e, s) && p < nd; p++)
            if (roe_engine_mor_depth(e, s, p) != depth[p]) {
                TEST__FAIL("%s: generated position %d ran %d recursions, the reference %d", dir, p,
                           roe_engine_mor_depth(e, s, p), depth[p]);
                break;
            }
    }
    roe_generator_free(g);
}

/* 5: three sequences decode the fixture's greedy tokens by ticks of width w (w < 3: rows wait in
 * the FIFO), after a plain-step prefill; each token's logits must be the plain step's bits. */
static void check_ticks(roe_engine *e, const char *dir, const struct fixture_case *k, int V, int width) {
    const int n = k->n_greedy, S = 3;
    float *plain = malloc((size_t)n * V * sizeof(float)), *lg = malloc((size_t)S * V * sizeof(float));
    float *scratch = malloc((size_t)k->n_prompt * V * sizeof(float));
    int32_t seqtok[3][2 * FIX_MAX_IDS];
    for (int s = 0; s < S; s++) { /* sequence s: the prompt from s on, then the greedy tokens */
        for (int p = 0; p < k->n_prompt - s; p++) seqtok[s][p] = k->prompt[p + s];
        for (int j = 0; j < n; j++) seqtok[s][k->n_prompt - s + j] = k->greedy[j];
    }
    /* the plain step's logits for sequence 1's decode positions */
    const int p1 = k->n_prompt - 1;
    roe_engine_reset_seq(e, 0);
    roe_status st = prefill(e, 0, seqtok[1], p1, 64, scratch, V);
    for (int j = 0; j < n && st == ROE_OK; j++) {
        struct roe_row r = {.seq = 0, .pos = p1 + j, .token = seqtok[1][p1 + j], .want_logits = 1};
        st = roe_engine_step(e, &r, 1, plain + (size_t)j * V);
    }
    int next[3], got = 0, ticks = 0, bad = 0;
    for (int s = 0; s < S && st == ROE_OK; s++) {
        roe_engine_reset_seq(e, s);
        st = prefill(e, s, seqtok[s], k->n_prompt - s, 64, scratch, V);
        next[s] = k->n_prompt - s;
    }
    for (int s = 0; s < S && st == ROE_OK; s++) { /* no plain step while tokens are queued */
        struct roe_row r = {.seq = s, .pos = next[s], .token = seqtok[s][next[s]], .want_logits = 1};
        st = roe_engine_mor_submit(e, &r);
    }
    while (st == ROE_OK && roe_engine_mor_pending(e) > 0 && ticks++ < 100 * n) {
        struct roe_row done[3];
        int depth[3], nd = 0;
        st = roe_engine_mor_tick(e, width, done, depth, &nd, lg);
        for (int i = 0; i < nd && st == ROE_OK; i++) {
            const int s = done[i].seq;
            if (s == 1 && memcmp(lg + (size_t)i * V, plain + (size_t)(done[i].pos - p1) * V, V * sizeof(float)) != 0 &&
                !bad) {
                TEST__FAIL("%s: tick logits of position %d differ from the plain step's (max %.3g, width %d)", dir,
                           done[i].pos, max_abs_diff(lg + (size_t)i * V, plain + (size_t)(done[i].pos - p1) * V, V),
                           width);
                bad = 1;
            }
            got += s == 1;
            if (++next[s] < k->n_prompt - s + n) {
                struct roe_row r = {.seq = s, .pos = next[s], .token = seqtok[s][next[s]], .want_logits = 1};
                st = roe_engine_mor_submit(e, &r);
            }
        }
    }
    if (st != ROE_OK) TEST__FAIL("%s: ticks: %s", dir, roe_error_message());
    else if (got != n) TEST__FAIL("%s: sequence 1 finished %d of %d tokens by ticks", dir, got, n);
    free(plain);
    free(lg);
    free(scratch);
}

/* 6: what the block pool holds is what the depths say. */
static void check_kv(roe_engine *e, const char *dir, const struct roe_model_config *c) {
    const struct roe_mor_kv_stats ks = roe_engine_mor_kv_stats(e);
    long want = 0;
    for (int s = 0; s < 3; s++)
        for (int p = 0; p < roe_engine_seq_len(e, s); p++)
            want += c->mor.kv == ROE_MOR_KV_RECURSION_WISE ? roe_engine_mor_depth(e, s, p) : 1;
    if (ks.block_entries != want)
        TEST__FAIL("%s: the block pool holds %ld (token, recursion) entries, the depths say %ld", dir, ks.block_entries,
                   want);
    fprintf(stderr, "  %s: KV bytes per token %.0f (vanilla %.0f: %d layers)\n", dir,
            (ks.main_bytes + ks.block_bytes) / (double)ks.tokens, ks.entry_bytes * c->mor.n_unrolled,
            c->mor.n_unrolled);
}

static void check_fixture(const char *dir, roe_cpu_isa isa) {
    struct fixture fx;
    if (fixture_load(dir, &fx) != 0) {
        TEST__FAIL("cannot load fixture %s (tools/mor/ writes it)", dir);
        return;
    }
    struct roe_model *m = NULL;
    roe_engine *e = NULL;
    if (roe_model_load(fx.model_dir, &m) != ROE_OK) {
        TEST__FAIL("%s: %s", fx.model_dir, roe_error_message());
        goto out;
    }
    if (!(e = open_engine(m, isa, 0))) goto out;
    if ((isa == ROE_CPU_ISA_AVX512 && strcmp(roe_engine_backend_name(e), "cpu-avx512") != 0) ||
        (isa == ROE_CPU_ISA_AVX2 && strcmp(roe_engine_backend_name(e), "cpu-avx2") != 0)) {
        fprintf(stderr, "  skip %s on this path: this CPU lacks it\n", dir);
        goto out;
    }
    const int V = m->cfg.vocab_size;
    for (int ci = 0; ci < fx.n_cases && !test__current_failed; ci++) {
        const struct fixture_case *k = &fx.cases[ci];
        int depth[MAX_DEPTHS];
        const int nd = load_depths(dir, ci, depth);
        if (roe_engine_is_mor(e) && nd < k->n_prompt + k->n_greedy - 1) {
            TEST__FAIL("%s case %d: %d depths in reference.json, want %d", dir, ci, nd, k->n_prompt + k->n_greedy - 1);
            break;
        }
        if (check_prompt(e, dir, k, depth, nd, V)) break;
        check_greedy(e, dir, k, depth, nd);
        if (roe_engine_is_mor(e) && !test__current_failed) {
            check_kv(e, dir, &m->cfg);
            for (int w = 1; w <= 3 && !test__current_failed; w++) check_ticks(e, dir, k, V, w);
        }
    }
out:
    roe_engine_free(e);
    roe_model_free(m);
    fixture_free(&fx);
}

static void run_all(int i) {
    const roe_cpu_isa isas[] = {ROE_CPU_ISA_AVX512, ROE_CPU_ISA_AVX2, ROE_CPU_ISA_PORTABLE};
    for (int k = 0; k < 3 && !test__current_failed; k++) check_fixture(FIXTURES[i], isas[k]);
}

TEST(mor_expert_choice_recursion_wise) { run_all(0); }
TEST(mor_expert_choice_recursive_sharing) { run_all(1); }
TEST(mor_token_choice_recursion_wise) { run_all(2); }
TEST(mor_token_choice_recursive_sharing) { run_all(3); }
TEST(llama_dense) { run_all(4); }
TEST(trained_mor_tiny) { run_all(5); } /* models/mor-tiny: expert choice, recursion-wise, trained */

/* --mor-full-depth: every token runs every recursion, so the block pool holds N_r entries a token. */
TEST(full_depth_holds_every_recursion) {
    struct fixture fx;
    struct roe_model *m = NULL;
    if (fixture_load(FIXTURES[0], &fx) != 0 || roe_model_load(fx.model_dir, &m) != ROE_OK) {
        TEST__FAIL("cannot load %s", FIXTURES[0]);
        return;
    }
    roe_engine *e = open_engine(m, ROE_CPU_ISA_AUTO, 1);
    float *lg = malloc((size_t)fx.cases[0].n_prompt * m->cfg.vocab_size * sizeof(float));
    if (e && prefill(e, 0, fx.cases[0].prompt, fx.cases[0].n_prompt, 64, lg, m->cfg.vocab_size) == ROE_OK) {
        const struct roe_mor_kv_stats ks = roe_engine_mor_kv_stats(e);
        if (ks.block_entries != (long)fx.cases[0].n_prompt * m->cfg.mor.n_recursion)
            TEST__FAIL("full depth: %ld block pool entries for %d tokens", ks.block_entries, fx.cases[0].n_prompt);
        for (int p = 0; p < fx.cases[0].n_prompt; p++)
            if (roe_engine_mor_depth(e, 0, p) != m->cfg.mor.n_recursion)
                TEST__FAIL("full depth: position %d ran %d recursions", p, roe_engine_mor_depth(e, 0, p));
    } else
        TEST__FAIL("full depth: %s", roe_error_message());
    free(lg);
    roe_engine_free(e);
    roe_model_free(m);
    fixture_free(&fx);
}

/* roe generate with several prompts: the batching core's depth-wise batching (one tick a step,
 * tokens emitted as they leave the block) gives each request the tokens and scores it gets alone
 * (plain steps). */
TEST(generator_depth_batching_equals_alone) {
    for (int f = 0; f < 4 && !test__current_failed; f++) {
        struct fixture fx;
        struct roe_model *m = NULL;
        if (fixture_load(FIXTURES[f], &fx) != 0 || roe_model_load(fx.model_dir, &m) != ROE_OK) {
            TEST__FAIL("cannot load %s", FIXTURES[f]);
            return;
        }
        roe_engine *e = open_engine(m, ROE_CPU_ISA_AUTO, 0);
        roe_generator *many = NULL, *one = NULL;
        const int V = m->cfg.vocab_size, T = 12, N = 3;
        struct roe_request req[3];
        for (int i = 0; i < N; i++) /* three prompts of different lengths: their tokens reach different depths */
            req[i] = (struct roe_request){.prompt = fx.cases[0].prompt + i, .n_prompt = fx.cases[0].n_prompt - 5 * i,
                                          .max_tokens = T, .stop_at_eos = 0, .sampling = roe_sampling_default()};
        struct roe_result *rm = NULL, *r1 = NULL;
        struct roe_gen_timing tm;
        if (!e || roe_generator_create(e, N, T, 1, &many) != ROE_OK || roe_generator_create(e, 1, T, 1, &one) != ROE_OK ||
            roe_generator_run(many, req, N, &rm, &tm) != ROE_OK)
            TEST__FAIL("%s: %s", FIXTURES[f], roe_error_message());
        for (int i = 0; i < N && !test__current_failed; i++) {
            if (roe_generator_run(one, &req[i], 1, &r1, &tm) != ROE_OK) {
                TEST__FAIL("alone: %s", roe_error_message());
                break;
            }
            if (rm[i].n_tokens != T || r1[0].n_tokens != T ||
                memcmp(rm[i].tokens, r1[0].tokens, (size_t)T * sizeof(int32_t)) != 0 ||
                memcmp(rm[i].logits, r1[0].logits, (size_t)T * V * sizeof(float)) != 0)
                TEST__FAIL("%s: request %d's tokens or scores differ batched by depth and alone", FIXTURES[f], i);
        }
        roe_generator_free(many);
        roe_generator_free(one);
        roe_engine_free(e);
        roe_model_free(m);
        fixture_free(&fx);
    }
}

int main(void) {
    RUN(mor_expert_choice_recursion_wise);
    RUN(mor_expert_choice_recursive_sharing);
    RUN(mor_token_choice_recursion_wise);
    RUN(mor_token_choice_recursive_sharing);
    RUN(llama_dense);
    RUN(trained_mor_tiny);
    RUN(full_depth_holds_every_recursion);
    RUN(generator_depth_batching_equals_alone);
    return test_summary();
}
