/*
 * attention.c — the CPU attention kernel (kernels/cpu/attention.c) at decode shape: R rows (one
 * position each) of H heads of D against a paged KV cache of CTX positions in blocks of 16,
 * per KV element type and kernel path, one thread. Prints one JSON line per (ISA, dtype): the
 * best of REPS thread CPU times (CLOCK_THREAD_CPUTIME_ID: what the call itself cost, whatever
 * else the machine runs) per call, the KV bytes a call reads and the rate that makes. The decode
 * step of `roe bench` runs this once per layer; the rest of the step does not depend on the dtype.
 *
 *   build/bench/attention [CTX] [ROWS] [HEADS] [KV_HEADS] [HEAD_DIM] [REPS]   (4056 2 8 8 64 20)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/dtype.h"
#include "kernels/backend.h"

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int arg(int argc, char **argv, int i, int def) {
    if (argc <= i) return def;
    char *end;
    const long v = strtol(argv[i], &end, 10);
    if (*end || v <= 0 || v > (1 << 24)) {
        fprintf(stderr, "attention: argument %d '%s' is not a positive integer\n", i, argv[i]);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv) {
    const int ctx = arg(argc, argv, 1, 4056), R = arg(argc, argv, 2, 2), H = arg(argc, argv, 3, 8);
    const int KVH = arg(argc, argv, 4, 8), D = arg(argc, argv, 5, 64), reps = arg(argc, argv, 6, 20);
    if (H % KVH) {
        fprintf(stderr, "attention: %d heads are not a multiple of %d KV heads\n", H, KVH);
        return 2;
    }
    enum { BS = 16 };
    const int nb = (ctx + BS - 1) / BS, kd = KVH * D;
    const size_t elems = (size_t)R * nb * BS * kd;
    float *kf = malloc(elems * 4), *vf = malloc(elems * 4), *q = malloc((size_t)R * H * D * 4);
    float *ks = malloc((size_t)R * kd * 4), *vs = malloc((size_t)R * kd * 4), *out = malloc((size_t)R * H * D * 4);
    uint16_t *kh = malloc(elems * 2), *vh = malloc(elems * 2);
    int32_t *table = malloc((size_t)R * nb * 4);
    int *hb = calloc((size_t)R, sizeof *hb), *he = malloc((size_t)R * sizeof *he);
    if (!kf || !vf || !q || !ks || !vs || !out || !kh || !vh || !table || !hb || !he) {
        fprintf(stderr, "attention: out of memory\n");
        return 1;
    }
    uint64_t x = 1;
    for (size_t i = 0; i < elems; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        kf[i] = (float)(x >> 40) / (float)(1 << 24) - 0.5f;
        vf[i] = (float)((x >> 16) & 0xffffff) / (float)(1 << 24) - 0.5f;
        kh[i] = roe_f32_to_bf16(kf[i]);
        vh[i] = roe_f32_to_bf16(vf[i]);
    }
    for (int i = 0; i < R * H * D; i++) q[i] = (float)(i % 7) * 0.1f - 0.3f;
    for (int i = 0; i < R * kd; i++) ks[i] = vs[i] = (float)(i % 5) * 0.1f;
    for (int r = 0; r < R; r++) { /* each row's blocks, interleaved with the other rows' */
        he[r] = ctx;
        for (int b = 0; b < nb; b++) table[(size_t)r * nb + b] = b * R + r;
    }
    static const roe_cpu_isa isas[3] = {ROE_CPU_ISA_PORTABLE, ROE_CPU_ISA_AVX2, ROE_CPU_ISA_AVX512};
    for (int ii = 0; ii < 3; ii++)
        for (int di = 0; di < 2; di++) {
            const struct roe_backend_opts bo = {.n_threads = 1, .max_cols = D, .max_ctx = ctx + 1, .isa = isas[ii]};
            roe_backend *be = NULL;
            if (roe_backend_cpu_create(&bo, &be) != ROE_OK) {
                fprintf(stderr, "attention: %s\n", roe_error_message());
                return 1;
            }
            const roe_dtype dt = di ? ROE_DTYPE_BF16 : ROE_DTYPE_F32;
            const struct roe_attn_args a = {
                .n_rows = R, .n_heads = H, .n_kv_heads = KVH, .head_dim = D, .scale = 1.0f / sqrtf((float)D), .q = q,
                .k_self = ks, .v_self = vs, .k_cache = di ? (const void *)kh : (const void *)kf,
                .v_cache = di ? (const void *)vh : (const void *)vf,
                .pages = {.dtype = dt, .table = table, .stride = nb, .block_size = BS, .block_elems = (int64_t)BS * kd},
                .hist_begin = hb, .hist_end = he, .out = out};
            double best = 1e30;
            for (int rep = 0; rep < reps; rep++) {
                const double c0 = thread_cpu_s();
                be->ops->attention(be, &a);
                const double dc = thread_cpu_s() - c0;
                if (dc < best) best = dc;
            }
            const double bytes = 2.0 * R * ctx * kd * (di ? 2 : 4);
            printf("{\"isa\": \"%s\", \"kv_dtype\": \"%s\", \"ctx\": %d, \"rows\": %d, \"heads\": %d, \"head_dim\": %d, "
                   "\"best_thread_cpu_us\": %.1f, \"kv_bytes\": %.0f, \"gb_per_s\": %.2f, \"out0\": %.6g}\n",
                   be->name, di ? "bf16" : "f32", ctx, R, H, D, best * 1e6, bytes, bytes / best * 1e-9, out[0]);
            be->ops->destroy(be);
        }
    free(kf), free(vf), free(q), free(ks), free(vs), free(out), free(kh), free(vh), free(table), free(hb), free(he);
    return 0;
}
