/*
 * matmul.c — y = x W^T with W in bf16/f16/f32, fp32 math, three ISA paths.
 *
 * Why this shape: batch-1 decode is a stream over the weights, so the kernel walks W
 * once, in blocks of four rows split across threads. For 1-2 x rows each row is widened inside
 * the dot product, row after row (one sequential load stream: one core reads W at about 1.5x
 * the rate it reads four interleaved rows, bench/matmul); for more rows the block's four rows
 * are widened once into a per-thread scratch (exact) and dotted with 4 x rows at a time (a
 * 4 x 4 register tile; then 2, then 1). Each output element is one fixed chain of
 * fp32 FMAs over 16- (AVX-512) or 8-lane (AVX2/portable) chunks followed by a fixed
 * horizontal reduction, so its value depends only on its own x row and W row: the
 * result is batch-invariant and independent of the thread count (threads split the
 * rows of W, never the reduction).
 *
 * bf16 W on a backend whose bf16 path is AMX (or, forced, AVX512-BF16) goes to matmul_bf16.c
 * instead, for every row count (so rows stay batch-invariant there too; other bits than these).
 */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "cpu_impl.h"

/* ---- portable ---- */

static void widen_portable(const void *src, roe_dtype dtype, int cols, float *dst) {
    const uint16_t *s = src;
    if (dtype == ROE_DTYPE_BF16) for (int i = 0; i < cols; i++) dst[i] = roe_bf16_to_f32(s[i]);
    else if (dtype == ROE_DTYPE_F16) for (int i = 0; i < cols; i++) dst[i] = roe_f16_to_f32(s[i]);
    else memcpy(dst, src, (size_t)cols * sizeof(float));
}

static void dot4_portable(const float *x, const float *const w[4], int cols, float out[4]) {
    for (int k = 0; k < 4; k++) {
        float acc[8] = {0};
        const float *wk = w[k];
        int i = 0;
        for (; i + 8 <= cols; i += 8)
            for (int j = 0; j < 8; j++) acc[j] += x[i + j] * wk[i + j];
        for (int j = 0; i + j < cols; j++) acc[j] += x[i + j] * wk[i + j];
        out[k] = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    }
}

/* ---- AVX2 + FMA + F16C ---- */

__attribute__((target("avx2,fma,f16c"))) static void widen_avx2(const void *src, roe_dtype dtype,
                                                                int cols, float *dst) {
    const uint16_t *s = src;
    int i = 0;
    if (dtype == ROE_DTYPE_BF16) {
        for (; i + 8 <= cols; i += 8) {
            __m128i h = _mm_loadu_si128((const __m128i *)(s + i));
            __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(w));
        }
        for (; i < cols; i++) dst[i] = roe_bf16_to_f32(s[i]);
    } else if (dtype == ROE_DTYPE_F16) {
        for (; i + 8 <= cols; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
        for (; i < cols; i++) dst[i] = roe_f16_to_f32(s[i]);
    } else memcpy(dst, src, (size_t)cols * sizeof(float));
}

__attribute__((target("avx2,fma"))) static inline float hsum_avx2(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    __m128 s = _mm_add_ps(lo, hi);
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static void dot4_avx2(const float *x, const float *const w[4],
                                                          int cols, float out[4]) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 8 <= cols; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w[0] + i), a0);
        a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w[1] + i), a1);
        a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w[2] + i), a2);
        a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w[3] + i), a3);
    }
    if (i < cols) {
        int r = cols - i;
        __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(r), idx);
        __m256 xv = _mm256_maskload_ps(x + i, m);
        a0 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w[0] + i, m), a0);
        a1 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w[1] + i, m), a1);
        a2 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w[2] + i, m), a2);
        a3 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w[3] + i, m), a3);
    }
    out[0] = hsum_avx2(a0);
    out[1] = hsum_avx2(a1);
    out[2] = hsum_avx2(a2);
    out[3] = hsum_avx2(a3);
}

/* ---- AVX-512 ---- */

__attribute__((target("avx512f,avx512bw"))) static void widen_avx512(const void *src,
                                                                     roe_dtype dtype, int cols,
                                                                     float *dst) {
    const uint16_t *s = src;
    int i = 0;
    if (dtype == ROE_DTYPE_BF16) {
        for (; i + 16 <= cols; i += 16) {
            __m256i h = _mm256_loadu_si256((const __m256i *)(s + i));
            __m512i w = _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
            _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(w));
        }
        for (; i < cols; i++) dst[i] = roe_bf16_to_f32(s[i]);
    } else if (dtype == ROE_DTYPE_F16) {
        for (; i + 16 <= cols; i += 16)
            _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + i))));
        for (; i < cols; i++) dst[i] = roe_f16_to_f32(s[i]);
    } else memcpy(dst, src, (size_t)cols * sizeof(float));
}

__attribute__((target("avx512f"))) static void dot4_avx512(const float *x, const float *const w[4],
                                                           int cols, float out[4]) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 16 <= cols; i += 16) {
        __m512 xv = _mm512_loadu_ps(x + i);
        a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w[0] + i), a0);
        a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w[1] + i), a1);
        a2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w[2] + i), a2);
        a3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w[3] + i), a3);
    }
    if (i < cols) {
        __mmask16 m = (__mmask16)((1u << (cols - i)) - 1);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
        a0 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(m, w[0] + i), a0);
        a1 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(m, w[1] + i), a1);
        a2 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(m, w[2] + i), a2);
        a3 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(m, w[3] + i), a3);
    }
    out[0] = _mm512_reduce_add_ps(a0);
    out[1] = _mm512_reduce_add_ps(a1);
    out[2] = _mm512_reduce_add_ps(a2);
    out[3] = _mm512_reduce_add_ps(a3);
}

/* Widening loads for the fused decode kernels (dot1_half_*): loads, converts and multiplies in
 * one stream, so the memory pipeline never idles behind a compute phase. */
__attribute__((target("avx512f,avx512bw"))) static inline __m512 load16_avx512(const uint16_t *p, roe_dtype t) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (t == ROE_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m512 load16_mask_avx512(const uint16_t *p,
                                                                                     roe_dtype t, __mmask16 m) {
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    if (t == ROE_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* One weight row widened inside the dot product (the FMA sequence dot4_avx512 performs on a widened
 * row, hence the same bits), for decode: W is
 * read row after row, one sequential stream — a single core reads four interleaved rows at about
 * two thirds of the rate (bench/matmul, docs/PERFORMANCE.md). */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void dot1_half_avx512(const float *x, const uint16_t *w,
                                                                                 roe_dtype t, int cols, float *out) {
    __m512 a = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= cols; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), load16_avx512(w + i, t), a);
    if (i < cols) {
        const __mmask16 m = (__mmask16)((1u << (cols - i)) - 1);
        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), load16_mask_avx512(w + i, t, m), a);
    }
    *out = _mm512_reduce_add_ps(a);
}

/* Decode on Intel (cpu->pf_nta = 0): one x row against W rows g, g + q, g + 2q, g + 3q for g in
 * [g0, g1), four streams a quarter of W apart, each prefetched 2 KB ahead into L1 (one stream per
 * core keeps too few lines in flight there; docs/PERFORMANCE.md, "Decode matmuls on Intel").
 * Each row's chain is dot1_half_avx512's: the same bits. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void quarters_half_avx512(const float *x, const struct roe_mat *w,
                                                                                     int g0, int g1, int q, float *y) {
    const int cols = w->cols;
    const roe_dtype t = w->dtype;
    for (int g = g0; g < g1; g++) {
        const uint16_t *wr[4];
        for (int r = 0; r < 4; r++) wr[r] = (const uint16_t *)w->data + (size_t)(g + r * q) * (size_t)cols;
        __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        int i = 0;
        for (; i + 32 <= cols; i += 32) { /* one 64-byte line of each row */
            const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                _mm_prefetch((const char *)(wr[r] + i) + 2048, _MM_HINT_T0);
                a[r] = _mm512_fmadd_ps(x0, load16_avx512(wr[r] + i, t), a[r]);
                a[r] = _mm512_fmadd_ps(x1, load16_avx512(wr[r] + i + 16, t), a[r]);
            }
        }
        for (; i + 16 <= cols; i += 16)
            for (int r = 0; r < 4; r++) a[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), load16_avx512(wr[r] + i, t), a[r]);
        if (i < cols) {
            const __mmask16 m = (__mmask16)((1u << (cols - i)) - 1);
            for (int r = 0; r < 4; r++)
                a[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), load16_mask_avx512(wr[r] + i, t, m), a[r]);
        }
        for (int r = 0; r < 4; r++) y[g + r * q] = _mm512_reduce_add_ps(a[r]);
    }
}

__attribute__((target("avx2,fma,f16c"))) static inline __m256 load8_avx2(const uint16_t *p, roe_dtype t) {
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (t == ROE_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* The AVX2 twin of dot1_half_avx512: dot4_avx2's FMA sequence for one output; the tail (< 8 columns)
 * widened through a small buffer, as widen_avx2 does it. */
__attribute__((target("avx2,fma,f16c"))) static void dot1_half_avx2(const float *x, const uint16_t *w, roe_dtype t,
                                                                   int cols, float *out) {
    __m256 a = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= cols; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), load8_avx2(w + i, t), a);
    if (i < cols) {
        const int r = cols - i;
        float tail[8] = {0};
        for (int j = 0; j < r; j++) tail[j] = t == ROE_DTYPE_F16 ? roe_f16_to_f32(w[i + j]) : roe_bf16_to_f32(w[i + j]);
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        a = _mm256_fmadd_ps(_mm256_maskload_ps(x + i, m), _mm256_loadu_ps(tail), a);
    }
    *out = hsum_avx2(a);
}

/* Two x rows against four widened weight rows: eight independent FMA chains keep both FMA
 * ports busy (dot4 alone is bound by FMA latency). Each output's chain is exactly dot4's. */
__attribute__((target("avx512f"))) static void dot4x2_avx512(const float *x0, const float *x1,
                                                             const float *const w[4], int cols,
                                                             float out0[4], float out1[4]) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int i = 0;
    for (; i + 16 <= cols; i += 16) {
        const __m512 u = _mm512_loadu_ps(x0 + i), v = _mm512_loadu_ps(x1 + i);
        const __m512 w0 = _mm512_loadu_ps(w[0] + i), w1 = _mm512_loadu_ps(w[1] + i);
        const __m512 w2 = _mm512_loadu_ps(w[2] + i), w3 = _mm512_loadu_ps(w[3] + i);
        a0 = _mm512_fmadd_ps(u, w0, a0), b0 = _mm512_fmadd_ps(v, w0, b0);
        a1 = _mm512_fmadd_ps(u, w1, a1), b1 = _mm512_fmadd_ps(v, w1, b1);
        a2 = _mm512_fmadd_ps(u, w2, a2), b2 = _mm512_fmadd_ps(v, w2, b2);
        a3 = _mm512_fmadd_ps(u, w3, a3), b3 = _mm512_fmadd_ps(v, w3, b3);
    }
    if (i < cols) {
        const __mmask16 m = (__mmask16)((1u << (cols - i)) - 1);
        const __m512 u = _mm512_maskz_loadu_ps(m, x0 + i), v = _mm512_maskz_loadu_ps(m, x1 + i);
        const __m512 w0 = _mm512_maskz_loadu_ps(m, w[0] + i), w1 = _mm512_maskz_loadu_ps(m, w[1] + i);
        const __m512 w2 = _mm512_maskz_loadu_ps(m, w[2] + i), w3 = _mm512_maskz_loadu_ps(m, w[3] + i);
        a0 = _mm512_fmadd_ps(u, w0, a0), b0 = _mm512_fmadd_ps(v, w0, b0);
        a1 = _mm512_fmadd_ps(u, w1, a1), b1 = _mm512_fmadd_ps(v, w1, b1);
        a2 = _mm512_fmadd_ps(u, w2, a2), b2 = _mm512_fmadd_ps(v, w2, b2);
        a3 = _mm512_fmadd_ps(u, w3, a3), b3 = _mm512_fmadd_ps(v, w3, b3);
    }
    out0[0] = _mm512_reduce_add_ps(a0), out1[0] = _mm512_reduce_add_ps(b0);
    out0[1] = _mm512_reduce_add_ps(a1), out1[1] = _mm512_reduce_add_ps(b1);
    out0[2] = _mm512_reduce_add_ps(a2), out1[2] = _mm512_reduce_add_ps(b2);
    out0[3] = _mm512_reduce_add_ps(a3), out1[3] = _mm512_reduce_add_ps(b3);
}

/* Four x rows against four widened weight rows: sixteen FMA chains sharing each load (the batched
 * case: prefill, RoE's K rows). Each output's chain is exactly dot4's. */
__attribute__((target("avx512f"))) static void dot4x4_avx512(const float *const x[4], const float *const w[4], int cols,
                                                             float out[4][4]) {
    __m512 a[4][4];
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) a[i][k] = _mm512_setzero_ps();
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
        const __m512 w0 = _mm512_loadu_ps(w[0] + c), w1 = _mm512_loadu_ps(w[1] + c);
        const __m512 w2 = _mm512_loadu_ps(w[2] + c), w3 = _mm512_loadu_ps(w[3] + c);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const __m512 u = _mm512_loadu_ps(x[i] + c);
            a[i][0] = _mm512_fmadd_ps(u, w0, a[i][0]), a[i][1] = _mm512_fmadd_ps(u, w1, a[i][1]);
            a[i][2] = _mm512_fmadd_ps(u, w2, a[i][2]), a[i][3] = _mm512_fmadd_ps(u, w3, a[i][3]);
        }
    }
    if (c < cols) {
        const __mmask16 m = (__mmask16)((1u << (cols - c)) - 1);
        const __m512 w0 = _mm512_maskz_loadu_ps(m, w[0] + c), w1 = _mm512_maskz_loadu_ps(m, w[1] + c);
        const __m512 w2 = _mm512_maskz_loadu_ps(m, w[2] + c), w3 = _mm512_maskz_loadu_ps(m, w[3] + c);
        for (int i = 0; i < 4; i++) {
            const __m512 u = _mm512_maskz_loadu_ps(m, x[i] + c);
            a[i][0] = _mm512_fmadd_ps(u, w0, a[i][0]), a[i][1] = _mm512_fmadd_ps(u, w1, a[i][1]);
            a[i][2] = _mm512_fmadd_ps(u, w2, a[i][2]), a[i][3] = _mm512_fmadd_ps(u, w3, a[i][3]);
        }
    }
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) out[i][k] = _mm512_reduce_add_ps(a[i][k]);
}

const char *roe_cpu_isa_name(roe_cpu_isa isa) {
    switch (isa) {
    case ROE_CPU_ISA_AVX512: return "avx512";
    case ROE_CPU_ISA_AVX2: return "avx2";
    case ROE_CPU_ISA_PORTABLE: return "portable";
    default: return "auto";
    }
}

roe_cpu_isa roe_cpu_select_isa(roe_cpu_isa want, roe_cpu_widen_fn *widen, roe_cpu_dot4_fn *dot4) {
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c");
    if (want == ROE_CPU_ISA_AUTO) want = has512 ? ROE_CPU_ISA_AVX512 : has2 ? ROE_CPU_ISA_AVX2 : ROE_CPU_ISA_PORTABLE;
    if (want == ROE_CPU_ISA_AVX512 && !has512) want = has2 ? ROE_CPU_ISA_AVX2 : ROE_CPU_ISA_PORTABLE;
    if (want == ROE_CPU_ISA_AVX2 && !has2) want = ROE_CPU_ISA_PORTABLE;
    switch (want) {
    case ROE_CPU_ISA_AVX512: *widen = widen_avx512; *dot4 = dot4_avx512; break;
    case ROE_CPU_ISA_AVX2: *widen = widen_avx2; *dot4 = dot4_avx2; break;
    default: *widen = widen_portable; *dot4 = dot4_portable; want = ROE_CPU_ISA_PORTABLE; break;
    }
    return want;
}

/* Rows [4b, 4b+4) of y = x W^T for all n x rows; `scratch` is this thread's [4, max_cols].
 * nr, the block's rows, is 1..4; cppcheck 2.10 takes the ternary that defines it for "< 1"
 * and calls `k < nr` always false: the suppressions below. */
static void matmul_block(const struct roe_cpu *cpu, const float *x, int n, const struct roe_mat *w,
                         float *y, int b, int fused, float *scratch) {
    const int rows = w->rows, cols = w->cols, r0 = b * 4, nr = rows - r0 < 4 ? rows - r0 : 4;
    if (fused) {
        const uint16_t *wh[4];
        for (int k = 0; k < 4; k++)
            // cppcheck-suppress knownConditionTrueFalse
            wh[k] = (const uint16_t *)w->data + (size_t)(r0 + (k < nr ? k : nr - 1)) * (size_t)cols;
        for (int i = 0; i < n; i++) {
            float out[4];
            if (cpu->isa == ROE_CPU_ISA_AVX512)
                for (int k = 0; k < nr; k++) dot1_half_avx512(x + (size_t)i * cols, wh[k], w->dtype, cols, out + k);
            else
                for (int k = 0; k < nr; k++) dot1_half_avx2(x + (size_t)i * cols, wh[k], w->dtype, cols, out + k);
            float *yi = y + (size_t)i * rows + r0;
            for (int k = 0; k < nr; k++) yi[k] = out[k];
        }
        return;
    }
    const size_t es = roe_dtype_size(w->dtype);
    const float *wr[4];
    for (int k = 0; k < 4; k++) {
        /* a short last block repeats its last row; the extra outputs are discarded */
        // cppcheck-suppress knownConditionTrueFalse
        int r = r0 + (k < nr ? k : nr - 1);
        const char *src = (const char *)w->data + (size_t)r * (size_t)cols * es;
        if (w->dtype == ROE_DTYPE_F32) wr[k] = (const float *)(const void *)src;
        // cppcheck-suppress knownConditionTrueFalse
        else if (k < nr) {
            cpu->widen(src, w->dtype, cols, scratch + (size_t)k * cols);
            wr[k] = scratch + (size_t)k * cols;
        } else wr[k] = wr[nr - 1];
    }
    int i = 0;
    if (cpu->isa == ROE_CPU_ISA_AVX512) {
        for (; i + 4 <= n; i += 4) {
            float o[4][4];
            const float *xs[4] = {x + (size_t)i * cols, x + (size_t)(i + 1) * cols, x + (size_t)(i + 2) * cols,
                                  x + (size_t)(i + 3) * cols};
            dot4x4_avx512(xs, wr, cols, o);
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < nr; k++) y[(size_t)(i + j) * rows + r0 + k] = o[j][k];
        }
        for (; i + 2 <= n; i += 2) {
            float o0[4], o1[4];
            dot4x2_avx512(x + (size_t)i * cols, x + (size_t)(i + 1) * cols, wr, cols, o0, o1);
            float *y0 = y + (size_t)i * rows + r0, *y1 = y0 + rows;
            for (int k = 0; k < nr; k++) y0[k] = o0[k], y1[k] = o1[k];
        }
    }
    for (; i < n; i++) {
        float out[4];
        cpu->dot4(x + (size_t)i * cols, wr, cols, out);
        float *yi = y + (size_t)i * rows + r0;
        for (int k = 0; k < nr; k++) yi[k] = out[k];
    }
}

void roe_cpu_matmul(roe_backend *be, const float *x, int n, const struct roe_mat *w, float *y) {
    struct roe_cpu *cpu = roe_cpu_of(be);
    if (w->dtype == ROE_DTYPE_MXFP4) {
        roe_cpu_matmul_mxfp4(cpu, x, n, w, y);
        return;
    }
    if (roe_dtype_is_block(w->dtype)) {
        roe_cpu_matmul_q(cpu, x, n, w, y);
        return;
    }
    if (w->dtype == ROE_DTYPE_F8_E4M3) {
        roe_cpu_matmul_fp8(cpu, x, n, w, y);
        return;
    }
    if (w->dtype == ROE_DTYPE_BF16 && cpu->bf16 != ROE_CPU_BF16_OFF) { /* every row count: batch-invariant */
        roe_cpu_matmul_bf16(cpu, x, n, w, y);
        return;
    }
    const int n_blocks = (w->rows + 3) / 4;
    const int fused = n <= 2 && w->dtype != ROE_DTYPE_F32 &&
                      (cpu->isa == ROE_CPU_ISA_AVX512 || cpu->isa == ROE_CPU_ISA_AVX2);
    if (fused && n == 1 && cpu->isa == ROE_CPU_ISA_AVX512 && !cpu->pf_nta && w->rows >= 8) {
        /* a decode row on Intel: W's quarters side by side, the last rows % 4 one at a time */
        const int q = w->rows / 4;
        if ((size_t)w->rows * (size_t)w->cols >= ((size_t)1 << 18)) {
#pragma omp parallel num_threads(cpu->n_threads)
            {
                const int t = omp_get_thread_num(), nt = omp_get_num_threads();
                quarters_half_avx512(x, w, (int)((long)q * t / nt), (int)((long)q * (t + 1) / nt), q, y);
            }
        } else
            quarters_half_avx512(x, w, 0, q, q, y);
        for (int r = 4 * q; r < w->rows; r++)
            dot1_half_avx512(x, (const uint16_t *)w->data + (size_t)r * (size_t)w->cols, w->dtype, w->cols, y + r);
        return;
    }
    /* Below ~256K multiply-adds a fork/join costs more than it saves (and on a loaded
     * machine a spinning team can stall). The serial case is a plain loop, not an OpenMP
     * region with if(0): libgomp allocates a team for each of those. Results do not depend
     * on the thread count. */
    if (n_blocks > 1 && (size_t)n * (size_t)w->rows * (size_t)w->cols >= ((size_t)1 << 18)) {
#pragma omp parallel for schedule(static) num_threads(cpu->n_threads)
        for (int b = 0; b < n_blocks; b++)
            matmul_block(cpu, x, n, w, y, b, fused,
                         cpu->wscratch + (size_t)omp_get_thread_num() * 4 * (size_t)cpu->max_cols);
    } else
        for (int b = 0; b < n_blocks; b++) matmul_block(cpu, x, n, w, y, b, fused, cpu->wscratch);
}
