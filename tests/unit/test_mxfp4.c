/*
 * test_mxfp4.c — MXFP4 weights (base/dtype.h ROE_DTYPE_MXFP4, kernels/cpu/matmul_mxfp4.c):
 *  - the e2m1 table, the nibble order and the e8m0 scale of roe_mxfp4_dequantize_row against
 *    values written by hand (transformers' FP4_VALUES, low nibble first, 2^(e - 127));
 *  - the matmul against a float64 reference of the dequantized weights, for odd shapes and
 *    extreme exponents;
 *  - the same bits on every ISA path the host runs, 1 or 2 threads, batches of 1 to 9 rows and
 *    each row alone (the numerics contract).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_isa.h"
#include "harness.h"
#include "kernels/backend.h"
#include "kernels/quant.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float frand(void) { return (float)(urand() * (1.0 / 4294967296.0)) * 2.0f - 1.0f; }

TEST(dequantize_by_hand) {
    /* byte j: value 2j is its low nibble, 2j + 1 its high one (transformers' sub[:, 0::2] = lut[lo]) */
    uint8_t q[16] = {0x1f, 0x87, 0x2a, 0xf0}, e[2] = {127, 129};
    float out[32];
    roe_mxfp4_dequantize_row(q, e, 32, out);
    ASSERT_TRUE(out[0] == -6.0f && out[1] == 0.5f);  /* 0x1f: low f = -6, high 1 = +0.5 */
    ASSERT_TRUE(out[2] == 6.0f && out[3] == -0.0f);  /* 0x87: low 7 = 6, high 8 = -0 */
    ASSERT_TRUE(out[4] == -1.0f && out[5] == 1.0f);  /* 0x2a: low a = -1, high 2 = 1 */
    ASSERT_TRUE(out[6] == 0.0f && out[7] == -6.0f);
    const float fp4[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    uint8_t r[32] = {0};
    for (int i = 0; i < 64; i++) r[i / 2] = (uint8_t)(i % 2 ? r[i / 2] | (i % 16) << 4 : i % 16);
    uint8_t e2[2] = {129, 0};
    float v[64];
    roe_mxfp4_dequantize_row(r, e2, 64, v);
    for (int i = 0; i < 32; i++) ASSERT_TRUE(v[i] == fp4[i % 16] * 4.0f);             /* 2^(129 - 127) */
    for (int i = 32; i < 64; i++) ASSERT_TRUE(v[i] == (float)ldexp(fp4[i % 16], -127)); /* subnormals */
    uint8_t e3 = 255;
    roe_mxfp4_dequantize_row(q, &e3, 32, out);
    ASSERT_TRUE(isnan(out[0]));
}

struct mx {
    struct roe_mat m;
    float *ref; /* [rows, cols] the dequantized values */
};

/* Random codes; exponents around 127 with a few extremes (0, 1, 2, 254) in some rows. */
static void mx_make(struct mx *w, int rows, int cols) {
    const int nb = cols / 32;
    uint8_t *q = malloc((size_t)rows * cols / 2 + 64), *e = malloc((size_t)rows * nb + 64);
    for (int i = 0; i < rows * cols / 2; i++) q[i] = (uint8_t)urand();
    for (int i = 0; i < rows * nb; i++) e[i] = (uint8_t)(120 + urand() % 12);
    if (rows > 3) e[0] = 0, e[nb > 1 ? 1 : 0] = 1, e[(size_t)2 * nb] = 2, e[(size_t)3 * nb] = 140;
    w->m = (struct roe_mat){.dtype = ROE_DTYPE_MXFP4, .data = q, .rows = rows, .cols = cols, .e8m0 = e};
    w->ref = malloc((size_t)rows * cols * sizeof(float));
    for (int r = 0; r < rows; r++)
        roe_mxfp4_dequantize_row(q + (size_t)r * cols / 2, e + (size_t)r * nb, cols, w->ref + (size_t)r * cols);
}

/* Each output against sum x w in float64, within 2e-6 of sum |x w| (fp32 accumulation). */
static int check_reference(const struct mx *w, const float *x, int n, const float *y) {
    const int rows = w->m.rows, cols = w->m.cols;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < rows; r++) {
            double want = 0, mag = 0;
            for (int c = 0; c < cols; c++) {
                const double p = (double)x[(size_t)i * cols + c] * w->ref[(size_t)r * cols + c];
                want += p, mag += fabs(p);
            }
            if (!(fabs(y[(size_t)i * rows + r] - want) <= 2e-6 * mag + 1e-37)) {
                TEST__FAIL("MXFP4 %dx%d: y[%d,%d] = %.9g, float64 reference %.9g (sum |xw| %.3g)", rows, cols, i, r,
                           y[(size_t)i * rows + r], want, mag);
                return 0;
            }
        }
    return 1;
}

/* One shape: portable with 1 thread is the reference; every ISA, thread count and batch size
 * 1..9 must give its bits. */
static void one_shape(int rows, int cols) {
    const roe_cpu_isa isas[] = {ROE_CPU_ISA_PORTABLE, ROE_CPU_ISA_AVX2, ROE_CPU_ISA_AVX512};
    const int n = 9;
    struct mx w;
    mx_make(&w, rows, cols);
    float *x = malloc((size_t)n * cols * sizeof(float)), *first = malloc((size_t)n * rows * sizeof(float));
    float *y = malloc((size_t)n * rows * sizeof(float));
    for (int i = 0; i < n * cols; i++) x[i] = frand() * (i % 13 == 0 ? 8.0f : 1.0f);
    int ran = 0;
    for (int a = 0; a < 3; a++)
        for (int th = 1; th <= 4; th++) { /* 1-2 threads, each with both decode layouts */
            roe_backend *be = cpu(isas[a], (th + 1) / 2, cols);
            ASSERT_TRUE(be != NULL);
            if (!isa_runs(be, isas[a])) {
                roe_backend_free(be);
                continue;
            }
            cpu_force_streams(be, th % 2 == 0);
            ran += th == 1;
            for (int m = n; m >= 1; m--) { /* the first m rows as one batch */
                be->ops->matmul(be, x, m, &w.m, y);
                if (a == 0 && th == 1 && m == n) {
                    memcpy(first, y, (size_t)n * rows * sizeof(float));
                    check_reference(&w, x, n, y);
                } else if (memcmp(first, y, (size_t)m * rows * sizeof(float)) != 0)
                    TEST__FAIL("MXFP4 %dx%d: %s, %d threads, pf_nta %d, batch of %d differs from portable's batch of %d",
                               rows, cols, be->name, (th + 1) / 2, th % 2 == 0, m, n);
            }
            be->ops->matmul(be, x + (size_t)(n - 1) * cols, 1, &w.m, y); /* the last row alone */
            if (memcmp(y, first + (size_t)(n - 1) * rows, (size_t)rows * sizeof(float)) != 0)
                TEST__FAIL("MXFP4 %dx%d on %s: row %d alone differs", rows, cols, be->name, n - 1);
            roe_backend_free(be);
        }
    fprintf(stderr, "  MXFP4 %d x %d: %d ISA paths agree bit for bit\n", rows, cols, ran);
    free(x), free(first), free(y), free((void *)w.m.data), free((void *)w.m.e8m0), free(w.ref);
}

TEST(matmul_reference_and_invariance) {
    const int shapes[][2] = {{37, 96}, {9, 2880}, {64, 32}, {5, 736}, {1, 64}, {70, 4096}, {130, 1056},
                             /* decode quarters: rows % 4 = 0-3, an odd block count, 2 threads' split */
                             {8, 2880}, {11, 96}, {42, 2912}, {203, 160}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) one_shape(shapes[s][0], shapes[s][1]);
}

int main(void) {
    RUN(dequantize_by_hand);
    RUN(matmul_reference_and_invariance);
    return test_summary();
}
