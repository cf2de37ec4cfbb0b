/*
 * membw.c — this machine's memory read bandwidth, STREAM-style: sum a buffer far larger
 * than the caches with 1 thread and with all threads; best of several passes.
 *
 *   build/bench/membw [--mb 2048] [--passes 5] [--json]
 *
 * The decode benchmark divides "bytes a step must read / step time" by this figure
 * (docs/PERFORMANCE.md), measured in the same run.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Sums n floats with 4 independent vector accumulators (read-bound, not add-bound). */
__attribute__((target("avx2"))) static float sum_avx2(const float *p, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    float o[8];
    _mm256_storeu_ps(o, s);
    return o[0] + o[1] + o[2] + o[3] + o[4] + o[5] + o[6] + o[7];
}

static double read_gbs(const float *buf, size_t n, int threads, int passes) {
    double best = 0.0;
    volatile float sink = 0.0f;
    for (int p = 0; p < passes; p++) {
        double t0 = now_s();
        float total = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t chunk = (n / nt) & ~(size_t)31;
            total += sum_avx2(buf + (size_t)t * chunk, chunk);
        }
        double dt = now_s() - t0;
        sink += total;
        double gbs = (double)(n & ~(size_t)31) * sizeof(float) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    (void)sink;
    return best;
}

int main(int argc, char **argv) {
    size_t mb = 2048;
    int passes = 5, json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc) mb = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--passes") == 0 && i + 1 < argc) passes = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0) json = 1;
        else {
            fprintf(stderr, "usage: membw [--mb MB] [--passes N] [--json]\n");
            return 2;
        }
    }
    size_t n = mb * 1024 * 1024 / sizeof(float);
    float *buf = aligned_alloc(64, n * sizeof(float));
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %zu MB\n", mb);
        return 1;
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 1023) * 1e-3f;
    int nt = omp_get_max_threads();
    double one = read_gbs(buf, n, 1, passes), all = read_gbs(buf, n, nt, passes);
    if (json)
        printf("{\"buffer_mb\": %zu, \"read_gbs_1_thread\": %.2f, \"read_gbs_all_threads\": %.2f, \"threads\": %d}\n",
               mb, one, all, nt);
    else
        printf("memory read bandwidth: %.2f GB/s (1 thread), %.2f GB/s (%d threads), %zu MB buffer\n",
               one, all, nt, mb);
    free(buf);
    return 0;
}
