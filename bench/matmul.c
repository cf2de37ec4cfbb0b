/*
 * matmul.c — the CPU backend's matmul alone, per weight format: a decode-like sweep over many
 * matrices (more bytes than the caches hold, as a decode step's experts are), reporting the
 * weights' read rate (GB/s, to compare with bench/membw) and the arithmetic rate (GFLOP/s, for
 * batched rows). For kernel work; docs/PERFORMANCE.md has the model-level figures.
 *
 *   build/bench/matmul [--dtype bf16|q8|q4|fp8|mxfp4] [--rows 1024] [--cols 2048] [--mats 96] [--n 1]
 *                      [--threads T] [--reps 10] [--json]      (ROE_CPU_ISA picks the path)
 * With --threads 1 it also reports the best of the thread's CPU time per rep (CLOCK_THREAD_CPUTIME_ID):
 * on a shared machine that leaves out time the scheduler gave other processes (not their use of
 * the caches and memory).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "kernels/backend.h"
#include "kernels/quant.h"

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *dtype = "bf16";
    int rows = 1024, cols = 2048, mats = 96, n = 1, threads = 0, reps = 10, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dtype = argv[++i];
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cols") && i + 1 < argc) cols = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mats") && i + 1 < argc) mats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "usage: matmul [--dtype bf16|q8|q4|fp8|mxfp4] [--rows R] [--cols C] [--mats M] [--n N] [--threads T] "
                            "[--reps K] [--json]\n");
            return 2;
        }
    }
    const roe_dtype t = !strcmp(dtype, "q8") ? ROE_DTYPE_Q8 : !strcmp(dtype, "q4") ? ROE_DTYPE_Q4
                        : !strcmp(dtype, "fp8")   ? ROE_DTYPE_F8_E4M3
                        : !strcmp(dtype, "mxfp4") ? ROE_DTYPE_MXFP4
                                                  : ROE_DTYPE_BF16;
    if (rows <= 0 || cols <= 0 || mats <= 0 || n <= 0 || reps <= 0) return 2;
    if (t == ROE_DTYPE_MXFP4 && cols % 32) return fprintf(stderr, "matmul: mxfp4 needs --cols a multiple of 32\n"), 2;
    struct roe_backend_opts bo = {.n_threads = threads, .max_cols = cols, .max_ctx = 16, .isa = roe_env_cpu_isa(), .max_rows = n};
    roe_backend *be = NULL;
    if (roe_backend_cpu_create(&bo, &be) != ROE_OK) return 1;
    struct roe_mat *w = calloc((size_t)mats, sizeof *w);
    float *row = malloc((size_t)cols * sizeof(float)), *x = malloc((size_t)n * cols * sizeof(float));
    float *y = malloc((size_t)n * rows * sizeof(float));
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < n * cols; i++) s ^= s << 13, s ^= s >> 7, s ^= s << 17, x[i] = (float)(s >> 40) / 16777216.0f - 0.5f;
    const size_t rb = roe_dtype_row_bytes(t, (size_t)cols), nb = roe_dtype_row_blocks(t, (size_t)cols);
    double bytes = 0;
    for (int m = 0; m < mats; m++) {
        char *d = roe_malloc_aligned((size_t)rows * rb + (size_t)rows * nb * 4 + 64);
        w[m] = (struct roe_mat){.dtype = t, .data = d, .rows = rows, .cols = cols};
        if (t == ROE_DTYPE_F8_E4M3) { /* random e4m3 codes (no NaN), one scale per 128 x 128 tile */
            const size_t tiles = (size_t)((rows + 127) / 128) * (size_t)((cols + 127) / 128);
            float *ts = malloc(tiles * sizeof(float));
            for (size_t i = 0; i < tiles; i++) ts[i] = 1.0f / 448;
            for (size_t i = 0; i < (size_t)rows * cols; i++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                d[i] = (char)((s >> 32) & 0x7f) == 0x7f ? 0x7e : (char)(s >> 32);
            }
            w[m].tile_scale = ts;
            bytes += (double)rows * cols + (double)tiles * 4;
            continue;
        }
        if (t == ROE_DTYPE_MXFP4) { /* random codes, exponents near 127 (what a checkpoint holds) */
            w[m].e8m0 = (const uint8_t *)(d + (size_t)rows * rb);
            for (size_t i = 0; i < (size_t)rows * rb; i++) s ^= s << 13, s ^= s >> 7, s ^= s << 17, d[i] = (char)(s >> 40);
            for (size_t i = 0; i < (size_t)rows * nb; i++) ((uint8_t *)d)[(size_t)rows * rb + i] = (uint8_t)(122 + i % 8);
            bytes += (double)rows * roe_dtype_row_bytes_all(t, (size_t)cols);
            continue;
        }
        if (roe_dtype_is_block(t)) {
            w[m].scales = (const uint16_t *)(void *)(d + (size_t)rows * rb);
            w[m].mins = t == ROE_DTYPE_Q4 ? w[m].scales + (size_t)rows * nb : NULL;
        }
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) s ^= s << 13, s ^= s >> 7, s ^= s << 17, row[c] = (float)(s >> 40) / 16777216.0f - 0.5f;
            if (roe_dtype_is_block(t))
                roe_quantize_row(t, row, cols, d + (size_t)r * rb, (uint16_t *)w[m].scales + (size_t)r * nb,
                                 w[m].mins ? (uint16_t *)w[m].mins + (size_t)r * nb : NULL);
            else
                for (int c = 0; c < cols; c++) ((uint16_t *)(void *)d)[(size_t)r * cols + c] = roe_f32_to_bf16(row[c]);
        }
        bytes += (double)rows * roe_dtype_row_bytes_all(t, (size_t)cols);
    }
    for (int m = 0; m < mats; m++) be->ops->matmul(be, x, n, &w[m], y); /* warm up */
    /* best wall time, and (one thread, where the matmul runs on this thread) the best of this
     * thread's CPU time: on a shared machine it leaves out the time the scheduler gave others */
    double best = 1e30, best_cpu = 1e30;
    for (int k = 0; k < reps; k++) {
        const double t0 = roe_now_s(), c0 = thread_cpu_s();
        for (int m = 0; m < mats; m++) be->ops->matmul(be, x, n, &w[m], y);
        const double dt = roe_now_s() - t0, dc = thread_cpu_s() - c0;
        if (dt < best) best = dt;
        if (dc < best_cpu) best_cpu = dc;
    }
    const double gbs = bytes / best / 1e9, gflops = 2.0 * n * rows * (double)cols * mats / best / 1e9;
    if (json)
        printf("{\"dtype\": \"%s\", \"backend\": \"%s\", \"n\": %d, \"rows\": %d, \"cols\": %d, \"mats\": %d, "
               "\"weight_mb\": %.1f, \"best_s\": %.6f, \"weights_gbs\": %.2f, \"gflops\": %.1f, "
               "\"best_thread_cpu_s\": %.6f}\n",
               dtype, be->name, n, rows, cols, mats, bytes / 1e6, best, gbs, gflops, best_cpu);
    else
        printf("%s %s n=%d: %.1f MB of weights in %.2f ms: %.2f GB/s, %.1f GFLOP/s%s", dtype, be->name, n, bytes / 1e6,
               best * 1e3, gbs, gflops, threads == 1 ? "" : "\n");
    if (!json && threads == 1) printf(" (thread CPU time %.2f ms: %.2f GB/s)\n", best_cpu * 1e3, bytes / best_cpu / 1e9);
    return 0;
}
