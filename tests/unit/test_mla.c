/*
 * test_mla.c — DeepSeek-V3's multi-head latent attention below the fixtures of test_golden:
 *  - config: DeepseekV3Config's defaults, the published DeepSeek-V3 and Kimi K2 RoPE (YaRN with
 *    mscale: the cos/sin factor and the softmax scale), every malformed MLA field refused naming it;
 *  - the CPU kernels: mla_attention against a float64 reference and bit-identical across thread
 *    counts and batches (its parallel path: these shapes are above the team threshold, the
 *    fixtures are not); matmul_heads against a reference, one row or many alike; RoPE with an
 *    offset and interleaved pairs against the formula, the dimensions outside it untouched;
 *  - the model and engine: wuk_t is each head's W_uk transposed, the cache holds one vector of
 *    kv_lora_rank + qk_rope_head_dim floats per position and layer, decode allocates nothing.
 */
#include <math.h>

#include "harness.h"
#include "base/alloc.h"
#include "base/philox.h"
#include "kernels/backend.h"
#include "runtime/config.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/rope.h"

static uint32_t rng_ctr;

static void fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        struct roe_philox_out r = roe_philox4x32(rng_ctr, (uint32_t)i, (uint32_t)(i >> 32), 11u, 0x4D4Cu, 0u);
        x[i] = lo + (hi - lo) * roe_u32_to_unit(r.v[0]);
    }
    rng_ctr++;
}

static const char *DS =
    "{\"model_type\": \"deepseek_v3\", \"vocab_size\": 100, \"hidden_size\": 64, \"num_hidden_layers\": 4,"
    " \"num_attention_heads\": 4, \"n_routed_experts\": 16, \"num_experts_per_tok\": 4,"
    " \"moe_intermediate_size\": 8, \"intermediate_size\": 32%s}";

static roe_status parse_ds(const char *extra, struct roe_model_config *c) {
    char buf[2048];
    snprintf(buf, sizeof buf, DS, extra);
    return roe_config_parse(buf, "config.json", c);
}

TEST(config_defaults_and_refusals) {
    struct roe_model_config c;
    ASSERT_OK(parse_ds("", &c)); /* DeepseekV3Config's defaults */
    ASSERT_EQ_INT(c.family, ROE_FAMILY_DEEPSEEK_V3);
    ASSERT_EQ_INT(c.mla, 1);
    ASSERT_EQ_INT(c.mla_cfg.q_lora_rank, 1536);
    ASSERT_EQ_INT(c.mla_cfg.kv_lora_rank, 512);
    ASSERT_EQ_INT(c.mla_cfg.nope_dim, 128);
    ASSERT_EQ_INT(c.mla_cfg.rope_dim, 64);
    ASSERT_EQ_INT(c.mla_cfg.v_dim, 128);
    ASSERT_EQ_INT(c.head_dim, 64);
    ASSERT_EQ_INT(c.rope.dim, 64);
    ASSERT_EQ_INT(c.rope.interleave, 1);
    ASSERT_EQ_INT(c.router, ROE_ROUTER_SIGMOID_GROUP);
    ASSERT_EQ_INT(c.n_group, 8);
    ASSERT_EQ_INT(c.topk_group, 4);
    ASSERT_NEAR(c.routed_scaling, 2.5, 0);
    ASSERT_EQ_INT(c.shared_intermediate, 8);
    ASSERT_EQ_INT(c.layer_is_moe[2], 0); /* first_k_dense_replace 3 */
    ASSERT_EQ_INT(c.layer_is_moe[3], 1);
    ASSERT_EQ_INT(roe_config_kv_width(&c), 576);
    ASSERT_EQ_INT((int)roe_config_kv_width_full(&c), 4 * (128 + 64 + 128));
    ASSERT_OK(parse_ds(", \"q_lora_rank\": null, \"rope_interleave\": false, \"head_dim\": 999, \"attention_bias\": true,"
                       " \"scoring_func\": \"sigmoid\", \"topk_method\": \"noaux_tc\", \"qk_head_dim\": 192", &c));
    ASSERT_EQ_INT(c.mla_cfg.q_lora_rank, 0);
    ASSERT_EQ_INT(c.rope.interleave, 0);
    ASSERT_EQ_INT(c.head_dim, 64); /* the file's head_dim is ignored, as DeepseekV3Config ignores it */
    ASSERT_EQ_INT(c.qkv_bias && c.o_bias, 1);
    ASSERT_FAILS_WITH(parse_ds(", \"num_key_value_heads\": 2", &c), ROE_ERR_FORMAT,
                      "num_key_value_heads 2 must equal num_attention_heads 4 for deepseek_v3");
    ASSERT_FAILS_WITH(parse_ds(", \"qk_rope_head_dim\": 7", &c), ROE_ERR_FORMAT, "qk_rope_head_dim 7 must be even");
    ASSERT_FAILS_WITH(parse_ds(", \"qk_rope_head_dim\": 2048", &c), ROE_ERR_FORMAT,
                      "'qk_rope_head_dim' = 2048 is out of range [2, 1024]");
    ASSERT_FAILS_WITH(parse_ds(", \"qk_head_dim\": 100", &c), ROE_ERR_FORMAT,
                      "qk_head_dim 100 is not qk_nope_head_dim 128 + qk_rope_head_dim 64");
    ASSERT_FAILS_WITH(parse_ds(", \"kv_lora_rank\": 0", &c), ROE_ERR_FORMAT, "'kv_lora_rank' = 0 is out of range");
    ASSERT_FAILS_WITH(parse_ds(", \"q_lora_rank\": 0", &c), ROE_ERR_FORMAT, "'q_lora_rank' = 0 is out of range");
    ASSERT_FAILS_WITH(parse_ds(", \"v_head_dim\": \"wide\"", &c), ROE_ERR_FORMAT, "'v_head_dim' must be an integer");
    ASSERT_FAILS_WITH(parse_ds(", \"topk_group\": 9", &c), ROE_ERR_FORMAT, "topk_group 9 exceeds n_group 8");
    ASSERT_FAILS_WITH(parse_ds(", \"n_group\": 3", &c), ROE_ERR_FORMAT, "n_group 3 must divide the 16 experts");
    ASSERT_FAILS_WITH(parse_ds(", \"scoring_func\": \"softmax\"", &c), ROE_ERR_UNSUPPORTED,
                      "scoring_func 'softmax' is not supported for deepseek_v3");
    ASSERT_FAILS_WITH(parse_ds(", \"topk_method\": \"greedy\"", &c), ROE_ERR_UNSUPPORTED,
                      "topk_method 'greedy' is not supported for deepseek_v3");
    ASSERT_FAILS_WITH(parse_ds(", \"rope_interleave\": 1", &c), ROE_ERR_FORMAT, "'rope_interleave' must be true or false");
    ASSERT_FAILS_WITH(parse_ds(", \"partial_rotary_factor\": 0.5", &c), ROE_ERR_UNSUPPORTED,
                      "partial_rotary_factor 0.5 is not supported for deepseek_v3");
}

/* The published configs' RoPE: DeepSeek-V3 (YaRN x40, mscale = mscale_all_dim = 1: cos/sin
 * unscaled, the softmax scale 192^-0.5 (0.1 ln 40 + 1)^2) and Kimi K2 (x32, beta_fast = beta_slow
 * = 1, theta 50000). */
TEST(published_rope) {
    struct roe_model_config c;
    ASSERT_OK(parse_ds(", \"max_position_embeddings\": 163840, \"rope_theta\": 10000, \"rope_scaling\": {\"type\": "
                       "\"yarn\", \"factor\": 40, \"beta_fast\": 32, \"beta_slow\": 1, \"mscale\": 1.0, \"mscale_all_dim\":"
                       " 1.0, \"original_max_position_embeddings\": 4096}", &c));
    float inv[32];
    ASSERT_NEAR(roe_rope_table(&c, inv), 1.0, 0);
    const double m = 0.1 * log(40.0) + 1.0, want = pow(192.0, -0.5) * m * m;
    fprintf(stderr, "  DeepSeek-V3 softmax scale %.9g (want %.9g)\n", roe_rope_mla_softmax_scale(&c), want);
    ASSERT_NEAR(roe_rope_mla_softmax_scale(&c), want, 1e-7 * want);
    ASSERT_NEAR(inv[0], 1.0, 0); /* the fastest pair extrapolates, the slowest interpolates by 1/40 */
    ASSERT_NEAR(inv[31], 1.0 / pow(10000.0, 62.0 / 64.0) / 40.0, 1e-6 * inv[31]);
    ASSERT_OK(parse_ds(", \"max_position_embeddings\": 131072, \"rope_theta\": 50000.0, \"rope_scaling\": {\"type\": "
                       "\"yarn\", \"factor\": 32.0, \"beta_fast\": 1.0, \"beta_slow\": 1.0, \"mscale\": 1.0, "
                       "\"mscale_all_dim\": 1.0, \"original_max_position_embeddings\": 4096}", &c));
    ASSERT_NEAR(roe_rope_table(&c, inv), 1.0, 0);
    for (int j = 0; j < 32; j++) ASSERT_TRUE(isfinite(inv[j]) && inv[j] > 0.0f);
    const double mk = 0.1 * log(32.0) + 1.0;
    ASSERT_NEAR(roe_rope_mla_softmax_scale(&c), pow(192.0, -0.5) * mk * mk, 1e-7);
    ASSERT_OK(parse_ds("", &c)); /* default RoPE: no correction */
    ASSERT_NEAR(roe_rope_mla_softmax_scale(&c), pow(192.0, -0.5), 1e-8);
}

static roe_backend *cpu_backend(int threads) {
    struct roe_backend_opts o = {.n_threads = threads, .max_cols = 4096, .max_ctx = 512};
    roe_backend *be = NULL;
    if (roe_backend_cpu_create(&o, &be) != ROE_OK) return NULL;
    return be;
}

enum { NH = 16, LAT = 64, ROPE = 16, W = LAT + ROPE, CTX = 400, NR = 5, QS = 24 };

/* float64 MLA of one (row, head) */
static void mla_ref(const struct roe_mla_args *a, int r, int h, double *o) {
    const int begin = a->hist_begin[r], len = a->hist_end[r] - begin;
    double s[CTX + 1], mx = -INFINITY, sum = 0.0;
    const float *ql = a->q_lat + ((size_t)r * NH + h) * LAT, *qr = a->q_rope + ((size_t)r * NH + h) * a->q_rope_stride;
    for (int j = 0; j <= len; j++) {
        const float *kv = j < len ? (const float *)a->kv_cache + roe_kv_page_off(&a->pages, r, begin + j, W) : a->kv_self + (size_t)r * W;
        double d = 0.0;
        for (int i = 0; i < LAT; i++) d += (double)ql[i] * kv[i];
        for (int i = 0; i < ROPE; i++) d += (double)qr[i] * kv[LAT + i];
        s[j] = d * a->scale;
        mx = s[j] > mx ? s[j] : mx;
    }
    for (int j = 0; j <= len; j++) sum += (s[j] = exp(s[j] - mx));
    for (int i = 0; i < LAT; i++) o[i] = 0.0;
    for (int j = 0; j <= len; j++) {
        const float *kv = j < len ? (const float *)a->kv_cache + roe_kv_page_off(&a->pages, r, begin + j, W) : a->kv_self + (size_t)r * W;
        for (int i = 0; i < LAT; i++) o[i] += s[j] / sum * kv[i];
    }
}

TEST(mla_attention_kernel) {
    roe_backend *one = cpu_backend(1), *two = cpu_backend(2);
    ASSERT_TRUE(one && two);
    /* an empty history, a short one, a window start (hist_begin > 0), long ones; rows 3 and 4
     * share a sequence */
    const int seq[NR] = {0, 1, 2, 3, 3}, hb[NR] = {0, 0, 20, 0, 0}, he[NR] = {0, 1, 150, 300, 399};
    float *cache = malloc((size_t)4 * CTX * W * sizeof(float)), *self = malloc((size_t)NR * W * sizeof(float));
    float *ql = malloc((size_t)NR * NH * LAT * sizeof(float)), *qr = malloc((size_t)NR * NH * QS * sizeof(float));
    float *o1 = malloc((size_t)NR * NH * LAT * sizeof(float)), *o2 = malloc((size_t)NR * NH * LAT * sizeof(float));
    fill(cache, (size_t)4 * CTX * W, -1.0f, 1.0f);
    fill(self, (size_t)NR * W, -1.0f, 1.0f);
    fill(ql, (size_t)NR * NH * LAT, -0.5f, 0.5f);
    fill(qr, (size_t)NR * NH * QS, -0.5f, 0.5f);
    int32_t table[NR]; /* one block of a whole context per sequence: the contiguous layout */
    for (int r = 0; r < NR; r++) table[r] = seq[r];
    struct roe_mla_args a = {.n_rows = NR, .n_heads = NH, .latent = LAT, .rope_dim = ROPE, .scale = 0.3f,
                             .q_lat = ql, .q_rope = qr + 3, .q_rope_stride = QS, .kv_self = self, .kv_cache = cache,
                             .pages = {.table = table, .stride = 1, .block_size = CTX, .block_elems = (int64_t)CTX * W},
                             .hist_begin = hb, .hist_end = he, .out = o1};
    one->ops->mla_attention(one, &a);
    a.out = o2;
    two->ops->mla_attention(two, &a);
    ASSERT_TRUE(memcmp(o1, o2, (size_t)NR * NH * LAT * sizeof(float)) == 0); /* 1 and 2 threads */
    double err = 0.0, mx = 0.0, ref[LAT];
    for (int r = 0; r < NR; r++)
        for (int h = 0; h < NH; h++) {
            mla_ref(&a, r, h, ref);
            for (int i = 0; i < LAT; i++) {
                err = fmax(err, fabs(ref[i] - o1[((size_t)r * NH + h) * LAT + i]));
                mx = fmax(mx, fabs(ref[i]));
            }
        }
    fprintf(stderr, "  mla_attention: max|err| / max|ref| = %.3g\n", err / mx);
    ASSERT_TRUE(err / mx < 1e-5);
    /* each row alone gives its bits in the batch */
    float one_row[NH * LAT];
    for (int r = 0; r < NR; r++) {
        struct roe_mla_args b = a;
        b.n_rows = 1;
        b.q_lat = ql + (size_t)r * NH * LAT;
        b.q_rope = qr + 3 + (size_t)r * NH * QS;
        b.kv_self = self + (size_t)r * W;
        b.pages.table = table + r;
        b.hist_begin = hb + r;
        b.hist_end = he + r;
        b.out = one_row;
        two->ops->mla_attention(two, &b);
        ASSERT_TRUE(memcmp(one_row, o1 + (size_t)r * NH * LAT, sizeof one_row) == 0);
    }
    free(cache);
    free(self);
    free(ql);
    free(qr);
    free(o1);
    free(o2);
    roe_backend_free(one);
    roe_backend_free(two);
}

TEST(matmul_heads_kernel) {
    roe_backend *be = cpu_backend(2);
    ASSERT_TRUE(be != NULL);
    enum { N = 4, H = 3, ROWS = 7, R0 = 2, OUT = 5, COLS = 24, XS = 30, YS = 9 };
    float wf[H * ROWS * COLS], x[N * H * XS], y[N * H * YS], y1[H * YS], scratch[N * (COLS + OUT)];
    uint16_t wb[H * ROWS * COLS];
    fill(wf, sizeof wf / sizeof wf[0], -1.0f, 1.0f);
    for (size_t i = 0; i < sizeof wb / sizeof wb[0]; i++) wb[i] = roe_f32_to_bf16(wf[i]);
    fill(x, sizeof x / sizeof x[0], -1.0f, 1.0f);
    memset(y, 0, sizeof y);
    const struct roe_mat w = {.dtype = ROE_DTYPE_BF16, .data = wb, .rows = H * ROWS, .cols = COLS};
    struct roe_matmul_heads_args a = {.n_rows = N, .n_heads = H, .x = x, .x_stride = XS, .w = &w, .head_rows = ROWS,
                                      .row0 = R0, .out = OUT, .y = y, .y_stride = YS, .scratch = scratch};
    be->ops->matmul_heads(be, &a);
    double err = 0.0;
    for (int r = 0; r < N; r++)
        for (int h = 0; h < H; h++)
            for (int o = 0; o < OUT; o++) {
                double d = 0.0;
                for (int i = 0; i < COLS; i++)
                    d += (double)x[(r * H + h) * XS + i] * roe_bf16_to_f32(wb[(h * ROWS + R0 + o) * COLS + i]);
                err = fmax(err, fabs(d - y[(r * H + h) * YS + o]));
            }
    fprintf(stderr, "  matmul_heads: max|err| = %.3g\n", err);
    ASSERT_TRUE(err < 1e-5);
    for (int r = 0; r < N; r++) { /* one row at a time: the same bits */
        struct roe_matmul_heads_args b = a;
        b.n_rows = 1;
        b.x = x + (size_t)r * H * XS;
        b.y = y1;
        be->ops->matmul_heads(be, &b);
        for (int h = 0; h < H; h++)
            ASSERT_TRUE(memcmp(y1 + h * YS, y + (r * H + h) * YS, OUT * sizeof(float)) == 0);
    }
    roe_backend_free(be);
}

TEST(rope_offset_interleaved) {
    roe_backend *be = cpu_backend(1);
    ASSERT_TRUE(be != NULL);
    enum { N = 3, H = 2, HD = 24, OFF = 8, D = 12 }; /* dimensions before and after the rotated ones */
    const int pos[N] = {0, 5, 300};
    float x[N * H * HD], x0[N * H * HD], inv[D / 2];
    fill(x, sizeof x / sizeof x[0], -1.0f, 1.0f);
    memcpy(x0, x, sizeof x);
    for (int j = 0; j < D / 2; j++) inv[j] = 1.0f / powf(100.0f, (float)(2 * j) / D);
    for (int il = 0; il < 2; il++) {
        memcpy(x, x0, sizeof x);
        const struct roe_rope_args r = {.dim = D, .scale = 0.9f, .inv_freq = inv, .offset = OFF, .interleave = il};
        be->ops->rope(be, x, N, H, HD, pos, &r);
        double err = 0.0;
        for (int i = 0; i < N * H; i++) {
            const float *in = x0 + i * HD, *out = x + i * HD;
            for (int d = 0; d < HD; d++)
                if (d < OFF || d >= OFF + D) ASSERT_TRUE(out[d] == in[d]);
            for (int j = 0; j < D / 2; j++) {
                const double ang = (double)((float)pos[i / H] * inv[j]);
                const double c = cos(ang) * 0.9, s = sin(ang) * 0.9;
                const double a = in[OFF + (il ? 2 * j : j)], b = in[OFF + (il ? 2 * j + 1 : j + D / 2)];
                err = fmax(err, fabs(out[OFF + j] - (a * c - b * s)));
                err = fmax(err, fabs(out[OFF + j + D / 2] - (b * c + a * s)));
            }
        }
        fprintf(stderr, "  rope (offset %d, %s): max|err| = %.3g\n", OFF, il ? "interleaved" : "rotate half", err);
        ASSERT_TRUE(err < 1e-5);
    }
    roe_backend_free(be);
}

TEST(model_and_cache) {
    struct roe_model *m = NULL;
    ASSERT_OK(roe_model_load("tests/fixtures/deepseek_v3/model", &m));
    const struct roe_mla_config *a = &m->cfg.mla_cfg;
    const int nh = m->cfg.n_heads, R = a->kv_lora_rank;
    for (int l = 0; l < m->cfg.n_layers; l++) { /* wuk_t[h R + i][d] = kv_b_proj[h (nope + v) + d][i] */
        const struct roe_layer_weights *L = &m->layers[l];
        const uint16_t *t = L->wuk_t.data, *b = L->wkv_b.data;
        ASSERT_TRUE(L->wuk_t.dtype == ROE_DTYPE_BF16 && L->wuk_t.rows == nh * R && L->wuk_t.cols == a->nope_dim);
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < R; i++)
                for (int d = 0; d < a->nope_dim; d++)
                    ASSERT_TRUE(t[((size_t)h * R + i) * a->nope_dim + d] ==
                                b[((size_t)h * (a->nope_dim + a->v_dim) + d) * R + i]);
    }
    struct roe_engine_opts o = roe_engine_opts_default();
    o.max_seqs = 3;
    o.max_ctx = 96;
    o.max_rows = 16;
    roe_engine *e = NULL;
    ASSERT_OK(roe_engine_create(m, &o, &e));
    ASSERT_EQ_INT((long)roe_engine_kv_bytes(e), 3L * m->cfg.n_layers * 96 * (R + a->rope_dim) * 4);
    roe_generator *g = NULL;
    ASSERT_OK(roe_generator_create(e, 3, 40, 1, &g));
    int32_t p0[] = {1, 2, 3, 4, 5}, p1[] = {9, 8, 7};
    struct roe_request reqs[2] = {
        {.prompt = p0, .n_prompt = 5, .max_tokens = 40, .sampling = roe_sampling_default()},
        {.prompt = p1, .n_prompt = 3, .max_tokens = 30, .sampling = {.temperature = 0.8f, .top_k = 50, .top_p = 1.0f, .seed = 7}},
    };
    struct roe_result *res;
    struct roe_gen_timing tm;
    ASSERT_OK(roe_generator_run(g, reqs, 2, &res, &tm)); /* warm-up run */
    const uint64_t before = roe_alloc_count();
    ASSERT_OK(roe_generator_run(g, reqs, 2, &res, &tm));
    ASSERT_EQ_INT((int)(roe_alloc_count() - before), 0);
    ASSERT_EQ_INT(res[0].n_tokens, 40);
    roe_generator_free(g);
    roe_engine_free(e);
    /* roe_model_open makes no absorbed copy: an engine on it is refused, not run on NULL weights */
    roe_model_free(m);
    ASSERT_OK(roe_model_open("tests/fixtures/deepseek_v3/model", &m));
    ASSERT_TRUE(m->layers[0].wuk_t.data == NULL);
    ASSERT_FAILS_WITH(roe_engine_create(m, &o, &e), ROE_ERR_INVALID_ARG, "absorbed kv_b_proj is not made");
    ASSERT_OK(roe_model_materialize(m));
    ASSERT_OK(roe_engine_create(m, &o, &e));
    roe_engine_free(e);
    roe_model_free(m);
}

int main(void) {
    RUN(config_defaults_and_refusals);
    RUN(published_rope);
    RUN(mla_attention_kernel);
    RUN(matmul_heads_kernel);
    RUN(rope_offset_interleaved);
    RUN(model_and_cache);
    return test_summary();
}
