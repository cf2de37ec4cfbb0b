/*
 * test_bf16mm.c — the bf16-weight matmul's paths (kernels/cpu/matmul_bf16.c: AMX tiles,
 * AVX512-BF16 dot products; kernels/cpu/matmul.c: fp32 FMAs), each forced on where the host
 * runs it, with 1 and 2 threads, on odd shapes (rows and cols not multiples of 16 or 32, a
 * single row or column, more x rows than one packed chunk):
 *  - every output against sum x w in float64 within 2^-16 of sum |x w| (the split of x into
 *    bf16 hi + lo leaves 2^-18; fp32 accumulation the rest);
 *  - batch invariance: the first m rows of a batch, each row alone and 2 threads give the
 *    batch's bits (a sequence's logits must not depend on what shares its steps);
 *  - a path the host or the ISA lacks falls back (AVX2 and portable: fp32 FMAs);
 *  - an infinite weight at the start of a row reaches only that row's outputs (no k tail reads
 *    past its row).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_isa.h"
#include "harness.h"
#include "kernels/backend.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float frand(void) { return (float)(urand() * (1.0 / 4294967296.0)) * 2.0f - 1.0f; }

static const char *path_name(roe_cpu_bf16 p) {
    return p == ROE_CPU_BF16_AMX ? "amx" : p == ROE_CPU_BF16_DPBF16 ? "avx512bf16" : "fp32";
}

/* Each output against float64; returns the largest |y - ref| / sum |x w| seen (-1: a failure). */
static double check_reference(const struct roe_mat *w, const float *x, int n, const float *y, const char *what) {
    const int rows = w->rows, cols = w->cols;
    const uint16_t *wd = w->data;
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < rows; r++) {
            double want = 0, mag = 0;
            for (int c = 0; c < cols; c++) {
                const double p = (double)x[(size_t)i * cols + c] * roe_bf16_to_f32(wd[(size_t)r * cols + c]);
                want += p, mag += fabs(p);
            }
            const double err = fabs(y[(size_t)i * rows + r] - want);
            if (!(err <= 0x1p-16 * mag + 1e-30)) {
                TEST__FAIL("%s %dx%d: y[%d,%d] = %.9g, float64 reference %.9g (sum |xw| %.3g)", what, rows, cols, i, r,
                           y[(size_t)i * rows + r], want, mag);
                return -1;
            }
            if (mag > 0 && err / mag > worst) worst = err / mag;
        }
    return worst;
}

static struct roe_mat make_w(int rows, int cols) {
    uint16_t *d = malloc((size_t)rows * cols * sizeof(uint16_t) + 64);
    for (size_t i = 0; i < (size_t)rows * cols; i++) /* magnitudes spread over 2^-6..2^6 */
        d[i] = roe_f32_to_bf16(frand() * ldexpf(1.0f, (int)(urand() % 13) - 6));
    return (struct roe_mat){.dtype = ROE_DTYPE_BF16, .data = d, .rows = rows, .cols = cols};
}

/* One shape, every path: the reference, then the invariance checks against the path's own batch. */
static void one_shape(int rows, int cols, int n) {
    const roe_cpu_bf16 paths[] = {ROE_CPU_BF16_OFF, ROE_CPU_BF16_DPBF16, ROE_CPU_BF16_AMX};
    struct roe_mat w = make_w(rows, cols);
    float *x = malloc((size_t)n * cols * sizeof(float)), *first = malloc((size_t)n * rows * sizeof(float));
    float *y = malloc((size_t)n * rows * sizeof(float));
    for (int i = 0; i < n * cols; i++) x[i] = frand() * (i % 11 == 0 ? 16.0f : 1.0f) + (i % 7 == 0 ? 1e-3f : 0.0f);
    for (int p = 0; p < 3; p++) {
        double worst = 0;
        int ran = 0;
        for (int th = 1; th <= 2; th++) {
            roe_backend *be = cpu_bf16(ROE_CPU_ISA_AVX512, paths[p], th, cols);
            ASSERT_TRUE(be != NULL);
            if (bf16_path(be) != paths[p]) { /* the host lacks it */
                roe_backend_free(be);
                continue;
            }
            ran = 1;
            char what[64];
            snprintf(what, sizeof what, "%s, %d thread(s)", path_name(paths[p]), th);
            be->ops->matmul(be, x, n, &w, y);
            if (th == 1) {
                memcpy(first, y, (size_t)n * rows * sizeof(float));
                worst = check_reference(&w, x, n, y, what);
                if (worst < 0) return;
            } else if (memcmp(first, y, (size_t)n * rows * sizeof(float)) != 0)
                TEST__FAIL("%dx%d %s: %d rows differ from 1 thread's", rows, cols, what, n);
            const int ms[] = {n - 1, 17, 16, 15, 2, 1};
            for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++) { /* the first m rows as one batch */
                const int m = ms[k];
                if (m < 1 || m >= n) continue;
                be->ops->matmul(be, x, m, &w, y);
                if (memcmp(first, y, (size_t)m * rows * sizeof(float)) != 0)
                    TEST__FAIL("%dx%d %s: the first %d rows differ from the batch of %d's", rows, cols, what, m, n);
            }
            for (int i = n - 1; i >= 0; i -= 5) { /* rows alone */
                be->ops->matmul(be, x + (size_t)i * cols, 1, &w, y);
                if (memcmp(y, first + (size_t)i * rows, (size_t)rows * sizeof(float)) != 0)
                    TEST__FAIL("%dx%d %s: row %d alone differs from the batch of %d's", rows, cols, what, i, n);
            }
            roe_backend_free(be);
        }
        if (ran)
            fprintf(stderr, "  %4d x %-4d n=%-3d %-10s max |y - ref| / sum|xw| = %.2g\n", rows, cols, n,
                    path_name(paths[p]), worst);
        else fprintf(stderr, "  %4d x %-4d %s: not on this host\n", rows, cols, path_name(paths[p]));
    }
    free(x), free(first), free(y), free((void *)w.data);
}

TEST(reference_and_invariance) {
    const int shapes[][3] = {{1, 1, 3},     {5, 7, 20},     {16, 32, 16},  {17, 33, 37},   {33, 100, 9},
                             {47, 63, 33},  {64, 2048, 18}, {130, 1056, 5}, {40, 96, 300}, {200, 512, 70}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0] && !test__current_failed; s++)
        one_shape(shapes[s][0], shapes[s][1], shapes[s][2]);
}

/* AVX2, portable and an explicit off run the fp32 kernels; AUTO takes the best the host has. */
TEST(fallbacks) {
    const roe_cpu_isa narrow[] = {ROE_CPU_ISA_AVX2, ROE_CPU_ISA_PORTABLE};
    for (int i = 0; i < 2; i++) {
        roe_backend *be = cpu_bf16(narrow[i], ROE_CPU_BF16_AMX, 1, 64);
        ASSERT_TRUE(be != NULL);
        ASSERT_EQ_INT(bf16_path(be), ROE_CPU_BF16_OFF);
        roe_backend_free(be);
    }
    roe_backend *be = cpu_bf16(ROE_CPU_ISA_AVX512, ROE_CPU_BF16_AUTO, 1, 64);
    ASSERT_TRUE(be != NULL);
    const roe_cpu_bf16 want = getenv("ROE_CPU_BF16") || strcmp(be->name, "cpu-avx512") != 0 ? bf16_path(be)
                              : roe_cpu_amx_usable()                                        ? ROE_CPU_BF16_AMX
                                                                                            : ROE_CPU_BF16_OFF;
    fprintf(stderr, "  auto on this host: %s\n", path_name(bf16_path(be)));
    ASSERT_EQ_INT(bf16_path(be), want);
    roe_backend_free(be);
}

/* W row 1 starts with +inf: row 0's outputs stay finite on every path (its k tail reads no
 * further than its own columns), row 1's are not (inf; NaN on the split paths, whose lo
 * product is inf x lo with lo of either sign or 0). */
TEST(tail_reads_stay_in_row) {
    const roe_cpu_bf16 paths[] = {ROE_CPU_BF16_OFF, ROE_CPU_BF16_DPBF16, ROE_CPU_BF16_AMX};
    const int shapes[][2] = {{16, 33}, {17, 45}, {32, 70}, {3, 5}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0], cols = shapes[s][1], n = 3;
        struct roe_mat w = make_w(rows, cols);
        ((uint16_t *)w.data)[cols] = 0x7f80; /* +inf at row 1, column 0 */
        float x[3 * 70], y[3 * 32];
        for (int i = 0; i < n * cols; i++) x[i] = 0.5f + 0.25f * frand(); /* > 0: inf * x = inf */
        for (int p = 0; p < 3; p++) {
            roe_backend *be = cpu_bf16(ROE_CPU_ISA_AVX512, paths[p], 1, cols);
            ASSERT_TRUE(be != NULL);
            if (bf16_path(be) == paths[p]) {
                be->ops->matmul(be, x, n, &w, y);
                for (int i = 0; i < n; i++)
                    for (int r = 0; r < rows; r++) {
                        const float v = y[(size_t)i * rows + r];
                        if (r == 1 ? isfinite(v) : !isfinite(v))
                            TEST__FAIL("%s %dx%d: y[%d,%d] = %g", path_name(paths[p]), rows, cols, i, r, v);
                    }
            }
            roe_backend_free(be);
        }
        free((void *)w.data);
    }
}

int main(void) {
    RUN(reference_and_invariance);
    RUN(fallbacks);
    RUN(tail_reads_stay_in_row);
    return test_summary();
}
