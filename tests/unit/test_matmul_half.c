/*
 * test_matmul_half.c — the CPU matmul over bf16 and f16 weights: a decode row (one x row, the
 * fused dot1_half kernels; on Intel four quarters of W side by side) must give the bits of the
 * batched path (widened rows, dot4) for every ISA, thread count and decode layout, and agree with
 * a float64 reference. Shapes cover rows % 4 = 0-3 (the quarters' leftover rows), column tails of
 * 1-31, and matrices large enough for the threads to split them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_isa.h"
#include "harness.h"
#include "base/dtype.h"

static uint64_t rng = 0x7A3C9E1F2B4D6E81ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static void one_shape(roe_dtype t, int rows, int cols) {
    const int n = 3;
    uint16_t *w = malloc((size_t)rows * cols * sizeof(uint16_t));
    double *ref = malloc((size_t)rows * cols * sizeof(double));
    float *x = malloc((size_t)n * cols * sizeof(float)), *batch = malloc((size_t)n * rows * sizeof(float));
    float *y = malloc((size_t)rows * sizeof(float));
    for (size_t i = 0; i < (size_t)rows * cols; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        /* f16: a sign, an exponent of 2^-4..2^0 and a random mantissa (every bit pattern exact) */
        const uint16_t h = (uint16_t)(((rng >> 20) & 0x8000) | ((11 + (rng >> 33) % 5) << 10) | ((rng >> 40) & 0x3ff));
        w[i] = t == ROE_DTYPE_BF16 ? roe_f32_to_bf16(frand()) : h;
        ref[i] = t == ROE_DTYPE_BF16 ? roe_bf16_to_f32(w[i]) : roe_f16_to_f32(w[i]);
    }
    for (int i = 0; i < n * cols; i++) x[i] = frand() * (i % 11 == 0 ? 8.0f : 1.0f);
    const struct roe_mat m = {.dtype = t, .data = w, .rows = rows, .cols = cols};
    const roe_cpu_isa isas[] = {ROE_CPU_ISA_PORTABLE, ROE_CPU_ISA_AVX2, ROE_CPU_ISA_AVX512};
    for (int a = 0; a < 3; a++)
        for (int tn = 1; tn <= 4; tn++) { /* 1-2 threads, each with both decode layouts */
            /* the fp32 kernels' decode layouts (an AMX host would take bf16 W to matmul_bf16.c:
             * test_bf16mm) */
            roe_backend *be = cpu_bf16(isas[a], ROE_CPU_BF16_OFF, (tn + 1) / 2, cols);
            ASSERT_TRUE(be != NULL);
            if (!isa_runs(be, isas[a])) {
                roe_backend_free(be);
                continue;
            }
            cpu_force_streams(be, tn % 2 == 0);
            be->ops->matmul(be, x, n, &m, batch); /* 3 rows: the widened rows' dot4 */
            for (int i = 0; i < n; i++) {
                be->ops->matmul(be, x + (size_t)i * cols, 1, &m, y);
                if (memcmp(y, batch + (size_t)i * rows, (size_t)rows * sizeof(float)) != 0)
                    TEST__FAIL("%s %dx%d on %s, %d threads, pf_nta %d: x row %d alone differs from the batch", roe_dtype_name(t),
                               rows, cols, be->name, (tn + 1) / 2, tn % 2 == 0, i);
                for (int r = 0; r < rows; r++) {
                    double want = 0, mag = 0;
                    for (int c = 0; c < cols; c++) {
                        const double p = (double)x[(size_t)i * cols + c] * ref[(size_t)r * cols + c];
                        want += p, mag += fabs(p);
                    }
                    if (!(fabs(y[r] - want) <= 4e-6 * mag + 1e-30)) {
                        TEST__FAIL("%s %dx%d on %s: y[%d] = %.9g, float64 reference %.9g", roe_dtype_name(t), rows, cols,
                                   be->name, r, y[r], want);
                        break;
                    }
                }
            }
            roe_backend_free(be);
        }
    free(w), free(ref), free(x), free(batch), free(y);
}

TEST(decode_row_is_the_batch_bits) {
    const int shapes[][2] = {{8, 32}, {9, 17}, {10, 63}, {11, 2880}, {37, 300}, {130, 129}, {203, 1041}, {96, 2880}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        one_shape(ROE_DTYPE_BF16, shapes[s][0], shapes[s][1]);
        one_shape(ROE_DTYPE_F16, shapes[s][0], shapes[s][1]);
    }
}

int main(void) {
    RUN(decode_row_is_the_batch_bits);
    return test_summary();
}
