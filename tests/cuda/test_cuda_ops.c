/*
 * test_cuda_ops.c — every CUDA op against the CPU op on fresh random inputs (fixed seeds),
 * by normalised error max|gpu - cpu| / max|cpu| under a per-op tolerance:
 *
 *   op            tol     why
 *   matmul        2e-2    cuBLAS on bf16-rounded activations (kernels/cuda/matmul.cu)
 *   matmul_f32    1e-5    fp32 activations, another summation order
 *   rmsnorm       1e-5    fp32 sum of squares (CPU: double)
 *   rope          1e-5    device sinf/cosf within 2 ulp (full, and partial + YaRN-scaled)
 *   attention     1e-4    online softmax, another summation order
 *   swiglu(_oai)  1e-5    device expf
 *   attention+sinks 1e-4  (gpt-oss's per-head sink logits)
 *   rope (MLA)    1e-5    an offset into the head and interleaved pairs (DeepSeek-V3)
 *   mla_attention 1e-4    online softmax over the shared latent, another summation order
 *   matmul_heads  1e-5    fp32 activations, bf16 weights, another summation order
 *   moe_combine   1e-6    FMA contraction
 *   matmul FP8 / MXFP4, matmul_heads FP8   0 (bit for bit): kernels/cuda/matmul_block.cu runs the
 *                 CPU's 16-lane arithmetic lane for lane (kernels/block_dot.h), batches 1..9
 *   add, add_bias, clamp, embed, copy_rows: exact
 *
 * The weights are the same bf16 values on both sides (uploaded from the host matrix).
 * Without a device (or without CUDA in the build) it prints "skipped: ..." and exits 77,
 * which ctest reports as Skipped.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/backend.h"
#include "base/alloc.h"
#include "base/philox.h"

static roe_backend *cpu, *gpu;
static uint32_t rng_ctr;

/* uniform in [lo, hi) from Philox, a fresh stream per call site order */
static void fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        struct roe_philox_out r = roe_philox4x32(rng_ctr, (uint32_t)i, (uint32_t)(i >> 32), 7u, 0x5EEDu, 0u);
        x[i] = lo + (hi - lo) * roe_u32_to_unit(r.v[0]);
    }
    rng_ctr++;
}

/* A host bf16 matrix (owned data) and its device copy. */
struct tmat {
    struct roe_mat h, d;
};
static struct tmat tmat_make(int rows, int cols, float scale) {
    struct tmat m;
    const size_t n = (size_t)rows * cols;
    float *f = malloc(n * sizeof *f);
    uint16_t *b = malloc(n * sizeof *b);
    fill(f, n, -scale, scale);
    for (size_t i = 0; i < n; i++) b[i] = roe_f32_to_bf16(f[i]);
    free(f);
    m.h = (struct roe_mat){.dtype = ROE_DTYPE_BF16, .data = b, .rows = rows, .cols = cols};
    if (gpu->ops->mat_upload(gpu, &m.h, &m.d) != ROE_OK) {
        fprintf(stderr, "mat_upload: %s\n", roe_error_message());
        exit(1);
    }
    return m;
}
static void tmat_free(struct tmat *m) {
    free((void *)m->h.data);
    gpu->ops->mat_free(gpu, &m->d);
}

static float *dev_from(const float *h, size_t n) {
    float *d = gpu->ops->alloc(gpu, n * sizeof(float));
    if (!d) {
        fprintf(stderr, "out of device memory\n");
        exit(1);
    }
    gpu->ops->upload(gpu, d, h, n * sizeof(float));
    return d;
}
static float *host_from(const float *d, size_t n) {
    float *h = malloc(n * sizeof(float));
    if (gpu->ops->download(gpu, h, d, n * sizeof(float)) != ROE_OK) {
        fprintf(stderr, "download: %s\n", roe_error_message());
        exit(1);
    }
    return h;
}

static double nerr(const float *a, const float *b, size_t n) {
    double mx = 0.0, mb = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= mx)) mx = d; /* NaN counts as infinitely wrong */
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return mb > 0.0 ? mx / mb : mx;
}

#define CHECK_NERR(name, gpuv, cpuv, n, tol)                                                       \
    do {                                                                                           \
        const double e_ = nerr((gpuv), (cpuv), (n));                                               \
        printf("  %-28s normalised error %.3g (tol %.0e)\n", (name), e_, (double)(tol));           \
        ASSERT_TRUE(e_ <= (tol));                                                                  \
    } while (0)

TEST(matmul) {
    const int shapes[][3] = {{1, 96, 256}, {7, 1000, 2048}, {64, 128, 1024}, {256, 64, 2048}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int n = shapes[s][0], rows = shapes[s][1], cols = shapes[s][2];
        struct tmat w = tmat_make(rows, cols, 1.0f / sqrtf((float)cols));
        float *x = malloc((size_t)n * cols * sizeof *x), *y = malloc((size_t)n * rows * sizeof *y);
        fill(x, (size_t)n * cols, -2.0f, 2.0f);
        cpu->ops->matmul(cpu, x, n, &w.h, y);
        float *dx = dev_from(x, (size_t)n * cols), *dy = gpu->ops->alloc(gpu, (size_t)n * rows * sizeof(float));
        char name[64];
        gpu->ops->matmul(gpu, dx, n, &w.d, dy);
        float *gy = host_from(dy, (size_t)n * rows);
        snprintf(name, sizeof name, "matmul %dx[%d,%d]", n, rows, cols);
        CHECK_NERR(name, gy, y, (size_t)n * rows, 2e-2);
        free(gy);
        gpu->ops->matmul_f32(gpu, dx, n, &w.d, dy);
        gy = host_from(dy, (size_t)n * rows);
        snprintf(name, sizeof name, "matmul_f32 %dx[%d,%d]", n, rows, cols);
        CHECK_NERR(name, gy, y, (size_t)n * rows, 1e-5);
        free(gy);
        gpu->ops->free(gpu, dx);
        gpu->ops->free(gpu, dy);
        free(x);
        free(y);
        tmat_free(&w);
    }
}

/* FP8 (random e4m3 bytes, no NaN, and signed tile scales; a view from row row0 of its first tile)
 * or MXFP4 (random codes, exponents around 127 and the extremes 0, 1, 2, 254): host matrices whose
 * arrays are owned, and their device copies. */
static struct tmat tmat_block(roe_dtype t, int rows, int cols, int row0) {
    struct tmat m;
    memset(&m, 0, sizeof m);
    const size_t n = (size_t)rows * cols, nt = (size_t)(row0 + rows + 127) / 128 * (size_t)((cols + 127) / 128);
    float *u = malloc((n + nt) * sizeof(float));
    fill(u, n + nt, 0.0f, 1.0f);
    uint8_t *q = malloc(t == ROE_DTYPE_MXFP4 ? n / 2 + n / 32 : n);
    m.h = (struct roe_mat){.dtype = t, .data = q, .rows = rows, .cols = cols, .tile_row0 = row0};
    if (t == ROE_DTYPE_MXFP4) {
        static const uint8_t ext[4] = {0, 1, 2, 254};
        for (size_t i = 0; i < n / 2; i++) q[i] = (uint8_t)(u[i] * 256.0f);
        for (size_t i = 0; i < n / 32; i++) q[n / 2 + i] = i % 7 == 5 ? ext[i % 4] : (uint8_t)(120 + u[n / 2 + i] * 12.0f);
        m.h.e8m0 = q + n / 2;
    } else {
        float *s = malloc(nt * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            const uint8_t b = (uint8_t)(u[i] * 256.0f);
            q[i] = (b & 0x7f) == 0x7f ? b ^ 1 : b; /* no NaN codes */
        }
        for (size_t i = 0; i < nt; i++) s[i] = ldexpf(0.5f + 0.5f * u[n + i], -8 - (int)(i % 5)) * (i % 5 == 3 ? -1.0f : 1.0f);
        m.h.tile_scale = s;
    }
    free(u);
    if (gpu->ops->mat_upload(gpu, &m.h, &m.d) != ROE_OK) {
        fprintf(stderr, "mat_upload (%s): %s\n", roe_dtype_name(t), roe_error_message());
        exit(1);
    }
    return m;
}
static void tmat_block_free(struct tmat *m) {
    free((void *)m->h.tile_scale);
    tmat_free(m);
}

/* y = x W^T for batches 9 down to 1, GPU against CPU: the same bits (tolerance 0). */
static void check_block_matmul(const struct tmat *w, const char *what) {
    const int rows = w->h.rows, cols = w->h.cols, N = 9;
    float *x = malloc((size_t)N * cols * sizeof *x), *y = malloc((size_t)N * rows * sizeof *y);
    fill(x, (size_t)N * cols, -2.0f, 2.0f);
    float *dx = dev_from(x, (size_t)N * cols), *dy = gpu->ops->alloc(gpu, (size_t)N * rows * sizeof(float));
    for (int n = N; n >= 1; n--) {
        char name[80];
        cpu->ops->matmul(cpu, x, n, &w->h, y);
        gpu->ops->matmul(gpu, dx, n, &w->d, dy);
        float *gy = host_from(dy, (size_t)n * rows);
        snprintf(name, sizeof name, "%s %dx[%d,%d] row0 %d", what, n, rows, cols, w->h.tile_row0);
        CHECK_NERR(name, gy, y, (size_t)n * rows, 0.0);
        ASSERT_TRUE(memcmp(gy, y, (size_t)n * rows * sizeof(float)) == 0);
        free(gy);
    }
    gpu->ops->free(gpu, dx);
    gpu->ops->free(gpu, dy);
    free(x);
    free(y);
}

TEST(matmul_fp8_mxfp4) {
    const int f8[][3] = {{37, 300, 0}, {130, 129, 0}, {9, 17, 0}, {260, 256, 0}, {70, 515, 100}, {33, 640, 127}, {1, 130, 5}};
    for (size_t s = 0; s < sizeof f8 / sizeof f8[0]; s++) {
        struct tmat w = tmat_block(ROE_DTYPE_F8_E4M3, f8[s][0], f8[s][1], f8[s][2]);
        check_block_matmul(&w, "matmul fp8");
        tmat_block_free(&w);
    }
    const int mx[][2] = {{1, 32}, {17, 96}, {130, 2880}, {5, 4096}, {33, 160}};
    for (size_t s = 0; s < sizeof mx / sizeof mx[0]; s++) {
        struct tmat w = tmat_block(ROE_DTYPE_MXFP4, mx[s][0], mx[s][1], 0);
        check_block_matmul(&w, "matmul mxfp4");
        tmat_block_free(&w);
    }
}

/* MLA's absorbed W_uv over an FP8 kv_b_proj: heads of 40 rows, 24 read from row 16, across tiles. */
TEST(matmul_heads_fp8) {
    const int nh = 7, head_rows = 40, row0 = 16, out = 24, cols = 200, n = 3;
    struct tmat w = tmat_block(ROE_DTYPE_F8_E4M3, nh * head_rows, cols, 0);
    const size_t nx = (size_t)n * nh * cols, ny = (size_t)n * nh * out;
    float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y), *scr = malloc((size_t)n * (cols + out) * sizeof *scr);
    fill(x, nx, -2.0f, 2.0f);
    struct roe_matmul_heads_args a = {.n_rows = n, .n_heads = nh, .x = x, .x_stride = cols, .w = &w.h,
                                      .head_rows = head_rows, .row0 = row0, .out = out, .y = y, .y_stride = out,
                                      .scratch = scr};
    cpu->ops->matmul_heads(cpu, &a);
    float *dx = dev_from(x, nx), *dy = gpu->ops->alloc(gpu, ny * sizeof(float));
    a.x = dx, a.y = dy, a.w = &w.d, a.scratch = NULL;
    gpu->ops->matmul_heads(gpu, &a);
    float *gy = host_from(dy, ny);
    CHECK_NERR("matmul_heads fp8", gy, y, ny, 0.0);
    ASSERT_TRUE(memcmp(gy, y, ny * sizeof(float)) == 0);
    free(gy);
    gpu->ops->free(gpu, dx);
    gpu->ops->free(gpu, dy);
    free(x), free(y), free(scr);
    tmat_block_free(&w);
}

TEST(rmsnorm) {
    /* full (OLMoE q/k norm over n_heads*head_dim), per head (Qwen3: rows of head_dim), hidden */
    const int shapes[][2] = {{5, 2048}, {40, 128}, {3, 4096}, {17, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int n = shapes[s][0], dim = shapes[s][1];
        struct tmat w = tmat_make(1, dim, 1.5f);
        float *x = malloc((size_t)n * dim * sizeof *x), *y = malloc((size_t)n * dim * sizeof *y);
        fill(x, (size_t)n * dim, -3.0f, 3.0f);
        cpu->ops->rmsnorm(cpu, x, n, &w.h, 1e-6f, y);
        float *dx = dev_from(x, (size_t)n * dim);
        gpu->ops->rmsnorm(gpu, dx, n, &w.d, 1e-6f, dx); /* in place, as the engine's q/k norm */
        float *gy = host_from(dx, (size_t)n * dim);
        char name[64];
        snprintf(name, sizeof name, "rmsnorm %dx%d (in place)", n, dim);
        CHECK_NERR(name, gy, y, (size_t)n * dim, 1e-5);
        free(gy);
        gpu->ops->free(gpu, dx);
        free(x);
        free(y);
        tmat_free(&w);
    }
}

TEST(rope) {
    const int n = 6, nh = 8, hd = 128;
    const int pos[6] = {0, 1, 17, 511, 4095, 32000};
    const size_t cnt = (size_t)n * nh * hd;
    /* the whole head at theta 1e4; then GLM-4.5's half of it, scaled as YaRN scales cos/sin */
    const int dims[2] = {hd, hd / 2};
    const float scales[2] = {1.0f, 1.3466f};
    for (int c = 0; c < 2; c++) {
        float inv[64], *x = malloc(cnt * sizeof *x);
        for (int j = 0; j < dims[c] / 2; j++) inv[j] = 1.0f / powf(10000.0f, (float)(2 * j) / (float)dims[c]);
        fill(x, cnt, -1.0f, 1.0f);
        float *dx = dev_from(x, cnt), *dinv = dev_from(inv, (size_t)dims[c] / 2);
        const struct roe_rope_args hr = {.dim = dims[c], .scale = scales[c], .inv_freq = inv};
        const struct roe_rope_args dr = {.dim = dims[c], .scale = scales[c], .inv_freq = dinv};
        cpu->ops->rope(cpu, x, n, nh, hd, pos, &hr);
        gpu->ops->rope(gpu, dx, n, nh, hd, pos, &dr);
        float *gx = host_from(dx, cnt);
        CHECK_NERR(c ? "rope (partial, scaled)" : "rope", gx, x, cnt, 1e-5);
        free(gx);
        free(x);
        gpu->ops->free(gpu, dx);
        gpu->ops->free(gpu, dinv);
    }
}

/* DeepSeek-V3: the rope part after the nope part of each head, interleaved pairs, YaRN-scaled */
TEST(rope_mla) {
    const int n = 5, nh = 4, hd = 192, off = 128, dim = 64;
    const int pos[5] = {0, 3, 64, 4095, 70000};
    const size_t cnt = (size_t)n * nh * hd;
    float inv[32], *x = malloc(cnt * sizeof *x);
    for (int j = 0; j < dim / 2; j++) inv[j] = 1.0f / powf(10000.0f, (float)(2 * j) / (float)dim) / (j > 20 ? 40.0f : 1.0f);
    fill(x, cnt, -1.0f, 1.0f);
    float *dx = dev_from(x, cnt), *dinv = dev_from(inv, (size_t)dim / 2);
    const struct roe_rope_args hr = {.dim = dim, .scale = 0.97f, .inv_freq = inv, .offset = off, .interleave = 1};
    struct roe_rope_args dr = hr;
    dr.inv_freq = dinv;
    cpu->ops->rope(cpu, x, n, nh, hd, pos, &hr);
    gpu->ops->rope(gpu, dx, n, nh, hd, pos, &dr);
    float *gx = host_from(dx, cnt);
    CHECK_NERR("rope (offset, interleaved)", gx, x, cnt, 1e-5);
    free(gx);
    free(x);
    gpu->ops->free(gpu, dx);
    gpu->ops->free(gpu, dinv);
}

/* MLA's latent attention (DeepSeek-V3's widths: latent 512, rope 64) and the per-head matmuls */
TEST(mla) {
    const int nh = 16, lat = 512, rope = 64, W = lat + rope, ctx = 300, qs = 192;
    enum { N = 5 };
    const int seq[N] = {0, 1, 2, 2, 3}, hb[N] = {0, 0, 0, 0, 40}, he[N] = {0, 1, 65, 200, 299};
    enum { BS = 16 };
    const int nb = (ctx + BS - 1) / BS; /* blocks of a sequence, in a scrambled order (docs/KV.md) */
    const size_t ncache = (size_t)4 * nb * BS * W, nq = (size_t)N * nh * lat, nr = (size_t)N * nh * qs;
    float *cache = malloc(ncache * sizeof(float)), *self = malloc((size_t)N * W * sizeof(float));
    float *ql = malloc(nq * sizeof(float)), *qr = malloc(nr * sizeof(float)), *out = malloc(nq * sizeof(float));
    fill(cache, ncache, -1.0f, 1.0f);
    fill(self, (size_t)N * W, -1.0f, 1.0f);
    fill(ql, nq, -0.1f, 0.1f);
    fill(qr, nr, -0.5f, 0.5f);
    float *dcache = dev_from(cache, ncache), *dself = dev_from(self, (size_t)N * W), *dql = dev_from(ql, nq);
    float *dqr = dev_from(qr, nr), *dout = gpu->ops->alloc(gpu, nq * sizeof(float));
    int32_t *table = malloc((size_t)N * nb * sizeof(int32_t));
    for (int r = 0; r < N; r++)
        for (int i = 0; i < nb; i++) table[r * nb + i] = (int32_t)(((seq[r] * nb + i) * 37) % (4 * nb));
    struct roe_mla_args a = {.n_rows = N, .n_heads = nh, .latent = lat, .rope_dim = rope, .scale = 0.135f,
                             .q_lat = ql, .q_rope = qr + 128, .q_rope_stride = qs, .kv_self = self, .kv_cache = cache,
                             .pages = {.table = table, .stride = nb, .block_size = BS, .block_elems = (int64_t)BS * W},
                             .hist_begin = hb, .hist_end = he, .out = out};
    cpu->ops->mla_attention(cpu, &a);
    struct roe_mla_args g = a;
    g.q_lat = dql;
    g.q_rope = dqr + 128;
    g.kv_self = dself;
    g.kv_cache = dcache;
    g.out = dout;
    gpu->ops->mla_attention(gpu, &g);
    float *gout = host_from(dout, nq);
    CHECK_NERR("mla_attention (16 heads, 5 rows)", gout, out, nq, 1e-4);
    free(gout);
    /* W_uv of each head: rows [h * 256 + 128, + 128) of kv_b_proj [16 * 256, 512] */
    struct tmat w = tmat_make(nh * 256, lat, 1.0f / sqrtf((float)lat));
    const size_t ny = (size_t)N * nh * 128;
    float *y = malloc(ny * sizeof(float)), *scratch = malloc((size_t)N * (lat + 128) * sizeof(float));
    float *dy = gpu->ops->alloc(gpu, ny * sizeof(float));
    struct roe_matmul_heads_args m = {.n_rows = N, .n_heads = nh, .x = out, .x_stride = lat, .w = &w.h, .head_rows = 256,
                                      .row0 = 128, .out = 128, .y = y, .y_stride = 128, .scratch = scratch};
    cpu->ops->matmul_heads(cpu, &m);
    struct roe_matmul_heads_args gm = m;
    gm.x = dout;
    gm.w = &w.d;
    gm.y = dy;
    gm.scratch = NULL;
    gpu->ops->upload(gpu, dout, out, nq * sizeof(float)); /* the same inputs on both sides */
    gpu->ops->matmul_heads(gpu, &gm);
    float *gy = host_from(dy, ny);
    CHECK_NERR("matmul_heads (W_uv of 16 heads)", gy, y, ny, 1e-5);
    free(gy);
    tmat_free(&w);
    float *dbufs[] = {dcache, dself, dql, dqr, dout, dy};
    for (int i = 0; i < 6; i++) gpu->ops->free(gpu, dbufs[i]);
    free(cache);
    free(table);
    free(self);
    free(ql);
    free(qr);
    free(out);
    free(y);
    free(scratch);
}

TEST(attention) {
    /* grouped-query heads; rows with empty, short, tile-edge and long histories, one with
     * a sliding-window start (hist_begin > 0), two rows sharing a sequence */
    const int nh = 8, nkv = 2, hd = 64, ctx = 400, qd = nh * hd, kd = nkv * hd;
    enum { N = 7 };
    const int seq[N] = {0, 1, 2, 3, 4, 4, 5};
    const int hb[N] = {0, 0, 0, 0, 0, 0, 100};
    const int he[N] = {0, 1, 63, 64, 65, 300, 399};
    const int n_seq = 6, BS = 16, nb = ctx / BS; /* blocks in a scrambled order (docs/KV.md) */
    float *kc = malloc((size_t)n_seq * ctx * kd * sizeof(float)), *vc = malloc((size_t)n_seq * ctx * kd * sizeof(float));
    float *q = malloc((size_t)N * qd * sizeof(float)), *ks = malloc((size_t)N * kd * sizeof(float));
    float *vs = malloc((size_t)N * kd * sizeof(float)), *out = malloc((size_t)N * qd * sizeof(float));
    fill(kc, (size_t)n_seq * ctx * kd, -1.0f, 1.0f);
    fill(vc, (size_t)n_seq * ctx * kd, -1.0f, 1.0f);
    fill(q, (size_t)N * qd, -1.0f, 1.0f);
    fill(ks, (size_t)N * kd, -1.0f, 1.0f);
    fill(vs, (size_t)N * kd, -1.0f, 1.0f);
    float *dkc = dev_from(kc, (size_t)n_seq * ctx * kd), *dvc = dev_from(vc, (size_t)n_seq * ctx * kd);
    float *dq = dev_from(q, (size_t)N * qd), *dks = dev_from(ks, (size_t)N * kd), *dvs = dev_from(vs, (size_t)N * kd);
    float *dout = gpu->ops->alloc(gpu, (size_t)N * qd * sizeof(float));
    int32_t table[N * 25];
    for (int r = 0; r < N; r++)
        for (int i = 0; i < nb; i++) table[r * nb + i] = (int32_t)(((seq[r] * nb + i) * 37) % (n_seq * nb));
    struct roe_attn_args a = {.n_rows = N, .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd,
                              .scale = 1.0f / sqrtf((float)hd), .q = q, .k_self = ks, .v_self = vs,
                              .k_cache = kc, .v_cache = vc,
                              .pages = {.table = table, .stride = nb, .block_size = BS, .block_elems = (int64_t)BS * kd},
                              .hist_begin = hb, .hist_end = he, .out = out};
    cpu->ops->attention(cpu, &a);
    struct roe_attn_args g = a;
    g.q = dq;
    g.k_self = dks;
    g.v_self = dvs;
    g.k_cache = dkc;
    g.v_cache = dvc;
    g.out = dout;
    gpu->ops->attention(gpu, &g);
    float *gout = host_from(dout, (size_t)N * qd);
    CHECK_NERR("attention (GQA 8/2, 7 rows)", gout, out, (size_t)N * qd, 1e-4);
    free(gout);
    /* gpt-oss's sinks: one logit per head, some above every score */
    struct tmat sk = tmat_make(1, nh, 4.0f);
    a.sinks = &sk.h;
    g.sinks = &sk.d;
    cpu->ops->attention(cpu, &a);
    gpu->ops->attention(gpu, &g);
    gout = host_from(dout, (size_t)N * qd);
    CHECK_NERR("attention with sinks", gout, out, (size_t)N * qd, 1e-4);
    free(gout);
    tmat_free(&sk);
    float *dbufs[] = {dkc, dvc, dq, dks, dvs, dout};
    for (int i = 0; i < 6; i++) gpu->ops->free(gpu, dbufs[i]);
    free(kc);
    free(vc);
    free(q);
    free(ks);
    free(vs);
    free(out);
}

TEST(elementwise) {
    const size_t n = 100003;
    float *g = malloc(n * sizeof *g), *u = malloc(n * sizeof *u), *o = malloc(n * sizeof *o);
    fill(g, n, -8.0f, 8.0f);
    fill(u, n, -2.0f, 2.0f);
    float *dg = dev_from(g, n), *du = dev_from(u, n);
    cpu->ops->swiglu(cpu, g, u, n, o);
    gpu->ops->swiglu(gpu, dg, du, n, dg); /* out aliases gate, as in the engine */
    float *go = host_from(dg, n);
    CHECK_NERR("swiglu", go, o, n, 1e-5);
    free(go);
    gpu->ops->upload(gpu, dg, g, n * sizeof(float));
    cpu->ops->add(cpu, g, u, n);
    gpu->ops->add(gpu, dg, du, n);
    go = host_from(dg, n);
    CHECK_NERR("add", go, g, n, 0.0);
    free(go);
    cpu->ops->clamp(cpu, g, n, 3.5f);
    gpu->ops->clamp(gpu, dg, n, 3.5f);
    go = host_from(dg, n);
    CHECK_NERR("clamp", go, g, n, 0.0);
    free(go);
    /* gpt-oss: clamped SwiGLU over interleaved rows (inputs beyond the limit 7), then a bias */
    const int rows = 37, inter = 1350;
    float *dgo = gpu->ops->alloc(gpu, (size_t)rows * inter * sizeof(float));
    fill(g, (size_t)rows * 2 * inter, -10.0f, 10.0f);
    gpu->ops->upload(gpu, dg, g, (size_t)rows * 2 * inter * sizeof(float));
    cpu->ops->swiglu_oai(cpu, g, rows, inter, 1.702f, 7.0f, o);
    gpu->ops->swiglu_oai(gpu, dg, rows, inter, 1.702f, 7.0f, dgo);
    go = host_from(dgo, (size_t)rows * inter);
    CHECK_NERR("swiglu_oai", go, o, (size_t)rows * inter, 1e-5);
    free(go);
    struct tmat b = tmat_make(1, inter, 2.0f);
    gpu->ops->upload(gpu, dgo, o, (size_t)rows * inter * sizeof(float)); /* the same rows on both sides */
    cpu->ops->add_bias(cpu, o, rows, &b.h);
    gpu->ops->add_bias(gpu, dgo, rows, &b.d);
    go = host_from(dgo, (size_t)rows * inter);
    CHECK_NERR("add_bias", go, o, (size_t)rows * inter, 0.0);
    free(go);
    tmat_free(&b);
    gpu->ops->free(gpu, dgo);
    gpu->ops->free(gpu, dg);
    gpu->ops->free(gpu, du);
    free(g);
    free(u);
    free(o);
}

TEST(embed_copy_rows_combine) {
    const int V = 1000, H = 384, n = 9, K = 4;
    struct tmat t = tmat_make(V, H, 1.0f);
    const int32_t ids[9] = {0, 999, 5, 5, 17, 123, 456, 789, 1};
    float *e = malloc((size_t)n * H * sizeof *e);
    cpu->ops->embed(cpu, &t.h, ids, n, e);
    float *de = gpu->ops->alloc(gpu, (size_t)n * H * sizeof(float));
    gpu->ops->embed(gpu, &t.d, ids, n, de);
    float *ge = host_from(de, (size_t)n * H);
    CHECK_NERR("embed", ge, e, (size_t)n * H, 0.0);
    free(ge);
    /* permute: pairs gathered from rows, then scattered to other rows */
    const int64_t src[12] = {3, 0, 8, 8, 1, 2, 7, 6, 5, 4, 0, 3};
    const int64_t dst[12] = {11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    float *y = malloc((size_t)12 * H * sizeof *y);
    float *dy = gpu->ops->alloc(gpu, (size_t)12 * H * sizeof(float));
    cpu->ops->copy_rows(cpu, y, dst, e, src, 12, H);
    gpu->ops->copy_rows(gpu, dy, dst, de, src, 12, H);
    float *gy = host_from(dy, (size_t)12 * H);
    CHECK_NERR("copy_rows", gy, y, (size_t)12 * H, 0.0);
    free(gy);
    /* weighted sum of K pair rows per row, in slot order */
    const int yrow[3 * 4] = {0, 5, 7, 11, 1, 1, 2, 3, 10, 9, 8, 4};
    float w[12];
    fill(w, 12, 0.0f, 1.0f);
    cpu->ops->moe_combine(cpu, e, 3, H, K, y, yrow, w);
    gpu->ops->moe_combine(gpu, de, 3, H, K, dy, yrow, w);
    ge = host_from(de, (size_t)n * H);
    CHECK_NERR("moe_combine", ge, e, (size_t)n * H, 1e-6);
    free(ge);
    gpu->ops->free(gpu, de);
    gpu->ops->free(gpu, dy);
    free(e);
    free(y);
    tmat_free(&t);
}

TEST(random_weights) {
    struct roe_mat a, b;
    ASSERT_TRUE(gpu->ops->mat_random(gpu, 300, 700, 0.5f, 42, &a) == ROE_OK);
    ASSERT_TRUE(gpu->ops->mat_random(gpu, 300, 700, 0.5f, 42, &b) == ROE_OK);
    const size_t n = 300 * 700;
    uint16_t *ha = malloc(n * 2), *hb = malloc(n * 2);
    ASSERT_TRUE(gpu->ops->download(gpu, ha, a.data, n * 2) == ROE_OK);
    ASSERT_TRUE(gpu->ops->download(gpu, hb, b.data, n * 2) == ROE_OK);
    ASSERT_TRUE(memcmp(ha, hb, n * 2) == 0);
    float mx = 0.0f;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)ha[i] << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        if (fabsf(f) > mx) mx = fabsf(f);
    }
    printf("  random weights: deterministic, max |w| %.4f (scale 0.5)\n", mx);
    ASSERT_TRUE(mx <= 0.5f + 1e-3f && mx > 0.4f);
    gpu->ops->mat_free(gpu, &a);
    gpu->ops->mat_free(gpu, &b);
    free(ha);
    free(hb);
}

int main(void) {
    const int n_dev = roe_backend_cuda_device_count();
    if (n_dev <= 0) {
        printf("skipped: %s\n", roe_error_message());
        return TEST_SKIP;
    }
    struct roe_backend_opts o = {.n_threads = 1, .max_cols = 4096, .max_ctx = 1024, .max_rows = 512};
    if (roe_backend_cpu_create(&o, &cpu) != ROE_OK || roe_backend_cuda_create(&o, &gpu) != ROE_OK) {
        fprintf(stderr, "creating the backends: %s\n", roe_error_message());
        return 1;
    }
    printf("%s vs %s\n", gpu->name, cpu->name);
    RUN(matmul);
    RUN(matmul_fp8_mxfp4);
    RUN(matmul_heads_fp8);
    RUN(rmsnorm);
    RUN(rope);
    RUN(rope_mla);
    RUN(attention);
    RUN(mla);
    RUN(elementwise);
    RUN(embed_copy_rows_combine);
    RUN(random_weights);
    if (gpu->ops->sync(gpu) != ROE_OK) {
        fprintf(stderr, "the device reported: %s\n", roe_error_message());
        test__failed++;
    }
    roe_backend_free(gpu);
    roe_backend_free(cpu);
    return test_summary();
}
