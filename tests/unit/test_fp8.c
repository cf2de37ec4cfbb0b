/*
 * test_fp8.c — block-scaled FP8 weights (F8_E4M3 with an fp32 scale per 128 x 128 tile;
 * kernels/cpu/matmul_fp8.c):
 *  - every e4m3 byte's widening against the format's definition (ldexp of its fields);
 *  - the matmul against a float64 reference of the same numbers, for odd shapes (partial tiles,
 *    several tiles, a view starting inside a tile, rows wide enough for the 4-row decode path),
 *    batches 1..9;
 *  - the same bits on every ISA path the host runs, with 1 or 2 threads, for every batch size
 *    (the numerics contract);
 *  - matmul_heads over an FP8 matrix whose heads start inside a tile (MLA's kv_b_proj).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_isa.h"
#include "harness.h"
#include "kernels/backend.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float frand(void) { return (float)(urand() * (1.0 / 4294967296.0)) * 2.0f - 1.0f; } /* [-1, 1) */

/* The OCP definition: bias 7, subnormals at exponent 0, S.1111.111 NaN. */
static double e4m3_ref(uint8_t b) {
    const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    const double v = e == 0 ? ldexp(m / 8.0, -6) : ldexp(1.0 + m / 8.0, e - 7);
    return s ? -v : v;
}

TEST(e4m3_widening) {
    for (int b = 0; b < 256; b++) {
        if ((b & 0x7f) == 0x7f) continue; /* NaN */
        const float got = roe_e4m3_to_f32((uint8_t)b);
        if ((double)got != e4m3_ref((uint8_t)b)) TEST__FAIL("e4m3 0x%02x: %.9g, want %.9g", b, got, e4m3_ref((uint8_t)b));
    }
    ASSERT_TRUE(roe_e4m3_to_f32(0x7e) == 448.0f);
    ASSERT_TRUE(roe_e4m3_to_f32(0x01) == ldexpf(1.0f, -9)); /* the smallest subnormal */
    ASSERT_TRUE(roe_e4m3_to_f32(0x80) == 0.0f && signbit(roe_e4m3_to_f32(0x80)));
}

/* An FP8 matrix of `rows` rows viewed from row `row0` of its tiles (tile_row0), random bytes
 * (no NaN) and scales, and its values in float64. */
struct f8mat {
    struct roe_mat m;
    uint8_t *q;
    float *s;
    double *ref;
};

static void f8_make(struct f8mat *f, int rows, int cols, int row0) {
    const int nt = (cols + 127) / 128, tr = (row0 + rows + 127) / 128;
    f->q = malloc((size_t)rows * cols);
    f->s = malloc((size_t)tr * nt * sizeof(float));
    f->ref = malloc((size_t)rows * cols * sizeof(double));
    for (int i = 0; i < tr * nt; i++) f->s[i] = ldexpf(0.5f + 0.5f * fabsf(frand()), -8 - (int)(urand() % 5)) * (i % 5 == 3 ? -1.0f : 1.0f);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            uint8_t b = (uint8_t)urand();
            if ((b & 0x7f) == 0x7f) b ^= 1;
            if (c % 11 == 0) b &= 0x87; /* subnormals */
            f->q[(size_t)r * cols + c] = b;
            f->ref[(size_t)r * cols + c] = e4m3_ref(b) * f->s[(size_t)((row0 + r) / 128) * nt + c / 128];
        }
    f->m = (struct roe_mat){.dtype = ROE_DTYPE_F8_E4M3, .data = f->q, .rows = rows, .cols = cols,
                            .tile_scale = f->s, .tile_row0 = row0};
}

static void f8_free(struct f8mat *f) { free(f->q), free(f->s), free(f->ref); }

/* y (n rows of x against f) within fp32 accumulation error of the float64 reference. */
static void check_reference(const struct f8mat *f, const float *x, int n, const float *y, const char *what) {
    const int rows = f->m.rows, cols = f->m.cols;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < rows; r++) {
            double want = 0, mag = 0;
            for (int c = 0; c < cols; c++) {
                const double p = (double)x[(size_t)i * cols + c] * f->ref[(size_t)r * cols + c];
                want += p, mag += fabs(p);
            }
            if (!(fabs(y[(size_t)i * rows + r] - want) <= 4e-6 * mag + 1e-30)) {
                TEST__FAIL("%s %dx%d (tile_row0 %d): y[%d,%d] = %.9g, float64 reference %.9g (sum |.| %.3g)", what, rows,
                           cols, f->m.tile_row0, i, r, y[(size_t)i * rows + r], want, mag);
                return;
            }
        }
}

TEST(matmul_reference_isas_batches_threads) {
    const int shapes[][3] = {{37, 300, 0}, {130, 129, 0}, {5, 1000, 0}, {9, 17, 0}, {260, 256, 0},
                             {4, 7, 0},    {70, 515, 100}, {33, 640, 127}, {1, 130, 5},
                             /* wide rows: a decode row takes 4 W rows at a time (ROWS4_COLS) */
                             {9, 6200, 0}, {8, 6400, 60},
                             /* decode quarters (Intel): rows % 4 = 0-3, tails, views, 2 threads' split */
                             {8, 2048, 0}, {11, 300, 0}, {42, 7168, 3}, {203, 140, 0}};
    const roe_cpu_isa isas[] = {ROE_CPU_ISA_PORTABLE, ROE_CPU_ISA_AVX2, ROE_CPU_ISA_AVX512};
    const int N = 9;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0], cols = shapes[s][1];
        struct f8mat f;
        f8_make(&f, rows, cols, shapes[s][2]);
        float *x = malloc((size_t)N * cols * sizeof(float)), *first = malloc((size_t)N * rows * sizeof(float));
        float *y = malloc((size_t)N * rows * sizeof(float));
        for (int i = 0; i < N * cols; i++) x[i] = frand() * (i % 13 == 0 ? 8.0f : 1.0f);
        int ran = 0;
        for (int a = 0; a < 3; a++)
            for (int tn = 1; tn <= 4; tn++) { /* 1-2 threads, each with both decode layouts */
                const int th = (tn + 1) / 2;
                roe_backend *be = cpu(isas[a], th, cols);
                ASSERT_TRUE(be != NULL);
                if (!isa_runs(be, isas[a])) {
                    roe_backend_free(be);
                    continue;
                }
                cpu_force_streams(be, tn % 2 == 0);
                ran += a > 0;
                for (int n = N; n >= 1; n--) { /* every batch size: the first n rows of the batch of 9 */
                    be->ops->matmul(be, x, n, &f.m, y);
                    if (a == 0 && tn == 1 && n == N) {
                        check_reference(&f, x, N, y, "portable");
                        memcpy(first, y, (size_t)N * rows * sizeof(float));
                    } else if (memcmp(first, y, (size_t)n * rows * sizeof(float)) != 0)
                        TEST__FAIL("%dx%d: %s, %d threads, pf_nta %d, batch %d differs from portable's batch of %d", rows,
                                   cols, be->name, th, tn % 2 == 0, n, N);
                }
                roe_backend_free(be);
            }
        if (s == 0) printf("  (ISA paths beside portable on this host: %d of avx2/avx512 x 2 thread counts)\n", ran);
        free(x), free(first), free(y);
        f8_free(&f);
    }
}

/* matmul_heads over FP8 rows: heads of 40 rows (24 read from row 16 on) cross tile boundaries. */
TEST(matmul_heads_fp8_views) {
    const int nh = 7, head_rows = 40, row0 = 16, out = 24, cols = 200, n = 3;
    struct f8mat f;
    f8_make(&f, nh * head_rows, cols, 0);
    float *x = malloc((size_t)n * nh * cols * sizeof(float)), *y = malloc((size_t)n * nh * out * sizeof(float));
    float *scr = malloc((size_t)n * (cols + out) * sizeof(float)), *full = malloc((size_t)nh * head_rows * sizeof(float));
    for (int i = 0; i < n * nh * cols; i++) x[i] = frand();
    roe_backend *be = cpu(ROE_CPU_ISA_AUTO, 2, cols);
    ASSERT_TRUE(be != NULL);
    const struct roe_matmul_heads_args a = {.n_rows = n, .n_heads = nh, .x = x, .x_stride = cols, .w = &f.m,
                                            .head_rows = head_rows, .row0 = row0, .out = out, .y = y,
                                            .y_stride = out, .scratch = scr};
    be->ops->matmul_heads(be, &a);
    for (int r = 0; r < n; r++)
        for (int h = 0; h < nh; h++) { /* the whole matrix against this head's input: its rows must agree */
            be->ops->matmul(be, x + ((size_t)r * nh + h) * cols, 1, &f.m, full);
            if (memcmp(full + (size_t)h * head_rows + row0, y + ((size_t)r * nh + h) * out, (size_t)out * sizeof(float)))
                TEST__FAIL("matmul_heads row %d head %d differs from the whole matrix's rows", r, h);
        }
    roe_backend_free(be);
    free(x), free(y), free(scr), free(full);
    f8_free(&f);
}

int main(void) {
    RUN(e4m3_widening);
    RUN(matmul_reference_isas_batches_threads);
    RUN(matmul_heads_fp8_views);
    return test_summary();
}
