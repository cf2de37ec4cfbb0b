/*
 * test_golden.c — the C engine against Hugging Face transformers (tests/fixtures/):
 *  - logits at every prompt position within 1e-4 * max|logit| of transformers' fp32 forward,
 *    for each CPU kernel path this machine has (portable, AVX2, AVX-512);
 *  - the 32 greedy tokens after the prompt identical;
 *  - batch invariance: the prompt fed in one step, token by token, and together with
 *    another sequence gives bit-identical logits.
 */
#include "fixture.h"
#include "harness.h"
#include "kernels/cpu/cpu_impl.h"
#include "runtime/engine.h"
#include "runtime/generate.h"

static const char *FAMILIES[] = {"tests/fixtures/olmoe",       "tests/fixtures/mixtral",
                                 "tests/fixtures/qwen3_moe",   "tests/fixtures/olmoe-tiny-ref",
                                 "tests/fixtures/qwen2_moe",   "tests/fixtures/qwen2_moe_b",
                                 "tests/fixtures/glm4_moe",    "tests/fixtures/glm4_moe_b",
                                 "tests/fixtures/gpt_oss",     "tests/fixtures/gpt_oss_b",
                                 "tests/fixtures/deepseek_v3", "tests/fixtures/deepseek_v3_b",
                                 "tests/fixtures/deepseek_v3_fp8", "tests/fixtures/glm4_moe_fp8",
                                 "tests/fixtures/gpt_oss_mx",  "tests/fixtures/gpt_oss_mx_b",
                                 "tests/fixtures/deepseek_v3_fp8_b", "tests/fixtures/glm4_moe_fp8_b"};

static int n_checked_paths = 0;

/* Feeds a prompt to sequence slot `seq` in steps of `chunk` rows; logits of every position. */
static roe_status prefill(roe_engine *e, int seq, const int32_t *ids, int n, int chunk, float *logits,
                          int vocab) {
    struct roe_row rows[256];
    for (int p0 = 0; p0 < n; p0 += chunk) {
        int m = n - p0 < chunk ? n - p0 : chunk;
        for (int j = 0; j < m; j++)
            rows[j] = (struct roe_row){.seq = seq, .pos = p0 + j, .token = ids[p0 + j], .want_logits = 1};
        roe_status st = roe_engine_step(e, rows, m, logits + (size_t)p0 * vocab);
        if (st != ROE_OK) return st;
    }
    return ROE_OK;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

static void check_family(const char *dir, roe_cpu_isa isa) {
    struct fixture fx;
    if (fixture_load(dir, &fx) != 0) {
        TEST__FAIL("cannot load fixture %s", dir);
        return;
    }
    struct roe_model *m = NULL;
    roe_status st = roe_model_load(fx.model_dir, &m);
    if (st != ROE_OK) {
        TEST__FAIL("%s: %s", fx.model_dir, roe_error_message());
        fixture_free(&fx);
        return;
    }
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = 2;
    o.max_ctx = 128;
    o.max_rows = 64;
    o.isa = isa;
    roe_engine *e = NULL;
    if (roe_engine_create(m, &o, &e) != ROE_OK) {
        TEST__FAIL("engine: %s", roe_error_message());
        goto out;
    }
    if ((isa == ROE_CPU_ISA_AVX512 && strcmp(roe_engine_backend_name(e), "cpu-avx512") != 0) ||
        (isa == ROE_CPU_ISA_AVX2 && strcmp(roe_engine_backend_name(e), "cpu-avx2") != 0)) {
        fprintf(stderr, "  skip %s on %s: this CPU lacks it\n", dir, isa == ROE_CPU_ISA_AVX512 ? "avx512" : "avx2");
        goto out;
    }
    n_checked_paths++;
    const int V = m->cfg.vocab_size;
    for (int ci = 0; ci < fx.n_cases; ci++) {
        const struct fixture_case *k = &fx.cases[ci];
        if (k->vocab != V) {
            TEST__FAIL("%s case %d: fixture vocab %d != model vocab %d", dir, ci, k->vocab, V);
            goto out;
        }
        size_t nl = (size_t)k->n_prompt * V;
        float *whole = malloc(nl * sizeof(float)), *single = malloc(nl * sizeof(float));
        /* 1. the whole prompt in one step vs transformers */
        roe_engine_reset_seq(e, 0);
        st = prefill(e, 0, k->prompt, k->n_prompt, 64, whole, V);
        double diff = max_abs_diff(whole, k->logits, nl);
        double tol = 1e-4 * k->max_abs_logit;
        fprintf(stderr, "  %s case %d [%s]: max|dlogit| = %.3g (tol %.3g, max|logit| %.3g)\n", dir, ci,
                roe_engine_backend_name(e), diff, tol, k->max_abs_logit);
        int bad = st != ROE_OK || !(diff <= tol);
        /* 2. token by token (the decode path) must be bit-identical to the one-step prefill */
        roe_engine_reset_seq(e, 0);
        if (!bad) st = prefill(e, 0, k->prompt, k->n_prompt, 1, single, V);
        if (!bad && (st != ROE_OK || memcmp(whole, single, nl * sizeof(float)) != 0)) {
            TEST__FAIL("%s case %d: token-by-token logits differ from one-step prefill (max %.3g)", dir,
                       ci, max_abs_diff(whole, single, nl));
            bad = 2;
        }
        /* 3. with another sequence interleaved in the same steps: still bit-identical */
        if (!bad) {
            const struct fixture_case *k2 = &fx.cases[(ci + 1) % fx.n_cases];
            struct roe_row rows[2 * FIX_MAX_IDS];
            float *mixed = malloc((size_t)(k->n_prompt + k2->n_prompt) * V * sizeof(float));
            roe_engine_reset_seq(e, 0);
            roe_engine_reset_seq(e, 1);
            int n = 0, a = 0, b = 0;
            while (a < k->n_prompt || b < k2->n_prompt) { /* alternate the two sequences' rows */
                if (b < k2->n_prompt)
                    rows[n++] = (struct roe_row){.seq = 1, .pos = b, .token = k2->prompt[b], .want_logits = 1}, b++;
                if (a < k->n_prompt)
                    rows[n++] = (struct roe_row){.seq = 0, .pos = a, .token = k->prompt[a], .want_logits = 1}, a++;
            }
            st = ROE_OK;
            for (int r0 = 0; r0 < n && st == ROE_OK; r0 += 64)
                st = roe_engine_step(e, rows + r0, n - r0 < 64 ? n - r0 : 64, mixed + (size_t)r0 * V);
            for (int j = 0, p = 0; j < n && st == ROE_OK; j++)
                if (rows[j].seq == 0 && memcmp(mixed + (size_t)j * V, whole + (size_t)p++ * V, V * sizeof(float)) != 0) {
                    TEST__FAIL("%s case %d: logits at position %d change when batched with another sequence", dir, ci, p - 1);
                    bad = 3;
                    break;
                }
            if (st != ROE_OK) TEST__FAIL("mixed step: %s", roe_error_message());
            free(mixed);
        }
        free(whole);
        free(single);
        if (bad == 1) {
            TEST__FAIL("%s case %d: max|dlogit| %.3g exceeds %.3g (%s)", dir, ci, diff, tol,
                       st == ROE_OK ? "" : roe_error_message());
            goto out;
        }
        if (bad) goto out;
        /* 4. greedy continuation through the generator */
        roe_generator *g = NULL;
        if (roe_generator_create(e, 1, k->n_greedy, 0, &g) != ROE_OK) {
            TEST__FAIL("generator: %s", roe_error_message());
            goto out;
        }
        struct roe_request req = {.prompt = k->prompt, .n_prompt = k->n_prompt,
                                  .max_tokens = k->n_greedy, .stop_at_eos = 0,
                                  .sampling = roe_sampling_default()};
        struct roe_result *res = NULL;
        struct roe_gen_timing tm;
        st = roe_generator_run(g, &req, 1, &res, &tm);
        if (st != ROE_OK) TEST__FAIL("generate: %s", roe_error_message());
        else if (res[0].n_tokens != k->n_greedy) TEST__FAIL("generated %d tokens, want %d", res[0].n_tokens, k->n_greedy);
        else
            for (int j = 0; j < k->n_greedy; j++)
                if (res[0].tokens[j] != k->greedy[j]) {
                    TEST__FAIL("%s case %d: greedy token %d is %d, transformers says %d", dir, ci, j,
                               res[0].tokens[j], k->greedy[j]);
                    break;
                }
        roe_generator_free(g);
    }
out:
    roe_engine_free(e);
    roe_model_free(m);
    fixture_free(&fx);
}

/* Every ISA path; on AVX-512 each bf16 matmul path this host runs (ROE_CPU_BF16: AMX tiles,
 * AVX512-BF16, fp32 FMAs; kernels/cpu/matmul_bf16.c), each within the fixtures' tolerance and
 * batch-invariant on its own. */
static void run_all(int family) {
    const char *bf16[] = {"amx", "avx512bf16", "off"};
    const int bf16_ok[] = {roe_cpu_amx_usable(), roe_cpu_has_avx512bf16(), 1};
    const char *had = getenv("ROE_CPU_BF16");
    for (int b = 0; b < 3 && !test__current_failed; b++) {
        if (!bf16_ok[b]) continue;
        setenv("ROE_CPU_BF16", bf16[b], 1);
        fprintf(stderr, "  %s: avx512, bf16 matmul %s\n", FAMILIES[family], bf16[b]);
        check_family(FAMILIES[family], ROE_CPU_ISA_AVX512);
    }
    if (had) setenv("ROE_CPU_BF16", had, 1);
    else unsetenv("ROE_CPU_BF16");
    const roe_cpu_isa isas[] = {ROE_CPU_ISA_AVX2, ROE_CPU_ISA_PORTABLE};
    for (int i = 0; i < 2 && !test__current_failed; i++) check_family(FAMILIES[family], isas[i]);
}

TEST(olmoe) { run_all(0); }
TEST(mixtral) { run_all(1); }
TEST(qwen3_moe_sharded_f16) { run_all(2); }
TEST(bundled_model) {
    if (!roe_is_dir(FAMILIES[3])) {
        TEST__FAIL("missing %s (tools/eval_bundled.py writes it)", FAMILIES[3]);
        return;
    }
    run_all(3);
}

/* the newer families, two shapes each (tests/fixtures/README.md) */
TEST(qwen2_moe_sharded_bf16_window) { run_all(4); }
TEST(qwen2_moe_b_f32_sparse_step) { run_all(5); }
TEST(glm4_moe_groups_qk_norm_bf16) { run_all(6); }
TEST(glm4_moe_b_sharded_f32) { run_all(7); }
TEST(gpt_oss_yarn_sinks_bf16) { run_all(8); }
TEST(gpt_oss_b_sharded_f32) { run_all(9); }
TEST(deepseek_v3_mla_q_lora_yarn_bf16) { run_all(10); }
TEST(deepseek_v3_b_no_q_lora_sharded_f32) { run_all(11); }
/* block-scaled FP8 (e4m3, 128 x 128 tiles; partial tiles, heads crossing a tile), against the
 * fp32 forward of the dequantized weights */
TEST(deepseek_v3_fp8_block_scaled) { run_all(12); }
TEST(glm4_moe_fp8_block_scaled) { run_all(13); }
/* gpt-oss with MXFP4 experts (kept as stored; kernels/cpu/matmul_mxfp4.c) */
TEST(gpt_oss_mx_gqa_7_experts_bf16) { run_all(14); }
TEST(gpt_oss_mx_b_33_experts_sharded_f32) { run_all(15); }
/* FP8, second shapes: no q LoRA, partial tiles in both dimensions, odd expert counts; the first in
 * two shards whose index puts a weight_scale_inv in the other shard from its weight */
TEST(deepseek_v3_fp8_b_sharded_no_q_lora_9_experts) { run_all(16); }
TEST(glm4_moe_fp8_b_7_experts_gqa_3_to_1) { run_all(17); }

int main(void) {
    RUN(olmoe);
    RUN(mixtral);
    RUN(qwen3_moe_sharded_f16);
    RUN(bundled_model);
    RUN(qwen2_moe_sharded_bf16_window);
    RUN(qwen2_moe_b_f32_sparse_step);
    RUN(glm4_moe_groups_qk_norm_bf16);
    RUN(glm4_moe_b_sharded_f32);
    RUN(gpt_oss_yarn_sinks_bf16);
    RUN(gpt_oss_b_sharded_f32);
    RUN(deepseek_v3_mla_q_lora_yarn_bf16);
    RUN(deepseek_v3_b_no_q_lora_sharded_f32);
    RUN(deepseek_v3_fp8_block_scaled);
    RUN(glm4_moe_fp8_block_scaled);
    RUN(gpt_oss_mx_gqa_7_experts_bf16);
    RUN(gpt_oss_mx_b_33_experts_sharded_f32);
    RUN(deepseek_v3_fp8_b_sharded_no_q_lora_9_experts);
    RUN(glm4_moe_fp8_b_7_experts_gqa_3_to_1);
    fprintf(stderr, "checked %d (fixture, kernel path) pairs\n", n_checked_paths);
    return test_summary();
}
