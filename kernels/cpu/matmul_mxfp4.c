/*
 * matmul_mxfp4.c — y = x W^T for W in MXFP4 as gpt-oss checkpoints store it (base/dtype.h
 * ROE_DTYPE_MXFP4: per block of 32 values, 16 bytes of e2m1 codes, value 2j the low nibble of
 * byte j, and one e8m0 exponent e: w = e2m1 * 2^(e - 127)). The bytes are read where the
 * checkpoint is mapped; the values are decoded inside the kernel, never stored wider.
 *
 * Activations stay fp32 (the accuracy of the float path: transformers' fp32 forward of the
 * dequantized weights to ~1e-6), and every (x row, W row) pair is one fixed arithmetic on every
 * ISA (docs/QUANTIZATION.md, "MXFP4"):
 *   A[2][16] = 0  (two accumulators: even and odd blocks, so that consecutive blocks' FMAs overlap)
 *   for each block b, with q_i = 2 x e2m1 value i (an integer in [-12, 12]: a 16-entry table)
 *   and s_b = 2^(e_b - 128) (exact in fp32, subnormal for e_b < 2; e_b = 255 is NaN), k = b mod 2:
 *       for lane l < 16:  p = q_2l * x_2l;  p = fma(q_2l+1, x_2l+1, p);  A[k][l] = fma(p, s_b, A[k][l])
 *   acc[l] = A[0][l] + A[1][l]
 *   y = ((s4[0] + s4[2]) + (s4[1] + s4[3])),  s4[i] = s8[i] + s8[i + 4],  s8[i] = acc[i] + acc[i + 8]
 * Lane l takes byte l of the block (its low and high nibble), so no code is moved across lanes;
 * the x rows are deinterleaved once per call to match (xd: a block's even values, then its odd).
 * AVX-512 decodes a block with one zero-extension and two vpermps from a table of 16 floats, AVX2
 * with vpshufb from a table of int8 and sign extensions; the portable code reads the same table.
 * The same operations in the same order: the same bits for any ISA, batch, tile or thread count.
 *
 * Tiles: W rows are split in blocks of 4 across threads (each thread one contiguous stream);
 * each W row's blocks are decoded once per tile of up to 4 x rows (decode: 1 x row, so W is
 * streamed once; batched rows reuse each decoded block 4 times, the row staying in L1). On Intel
 * (cpu->pf_nta = 0) a decode row of x reads W's four quarters side by side instead
 * (quarters_avx512); each row's arithmetic is the same either way.
 */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_impl.h"
#include "lanes16.h"

/* 2 x the e2m1 value of each code (sign bit 3; -0 is 0). */
static const int8_t mx_lut[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* 2^(e - 128) (the scale of the doubled values) for every e, by bits: exact (subnormal for e < 2);
 * e = 255 is NaN as the OCP MX spec says. A table: one broadcast load per block. */
#define MX_S(e) ((e) == 255 ? 0x7fc00000u : (e) >= 2 ? (uint32_t)((e) - 1) << 23 : (e) == 1 ? 0x400000u : 0x200000u)
#define MX_S4(e) MX_S(e), MX_S((e) + 1), MX_S((e) + 2), MX_S((e) + 3)
#define MX_S16(e) MX_S4(e), MX_S4((e) + 4), MX_S4((e) + 8), MX_S4((e) + 12)
#define MX_S64(e) MX_S16(e), MX_S16((e) + 16), MX_S16((e) + 32), MX_S16((e) + 48)
static const uint32_t mx_scale_bits[256] = {MX_S64(0), MX_S64(64), MX_S64(128), MX_S64(192)};
#undef MX_S64
#undef MX_S16
#undef MX_S4
#undef MX_S
static inline float mx_scale(uint8_t e) {
    float f;
    memcpy(&f, &mx_scale_bits[e], sizeof f);
    return f;
}

/* ---- portable ---- */

/* x rows deinterleaved per block: xd[32b + l] = x[32b + 2l], xd[32b + 16 + l] = x[32b + 2l + 1]. */
static void deinterleave(const float *x, int cols, float *xd) {
    for (int b = 0; b < cols; b += 32)
        for (int l = 0; l < 16; l++) xd[b + l] = x[b + 2 * l], xd[b + 16 + l] = x[b + 2 * l + 1];
}

static void row_portable(const uint8_t *q, const uint8_t *e, int nb, const float *x, int n, int cols, float *y,
                         int ldy, int nta) {
    (void)nta;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * cols;
        float A[2][16] = {{0}}, acc[16];
        for (int b = 0; b < nb; b++) {
            const uint8_t *qb = q + 16 * (size_t)b;
            const float *xb = xi + 32 * (size_t)b, s = mx_scale(e[b]);
            for (int l = 0; l < 16; l++) {
                float p = (float)mx_lut[qb[l] & 15] * xb[l];
                p = fmaf((float)mx_lut[qb[l] >> 4], xb[16 + l], p);
                A[b % 2][l] = fmaf(p, s, A[b % 2][l]);
            }
        }
        for (int l = 0; l < 16; l++) acc[l] = A[0][l] + A[1][l];
        y[(size_t)i * ldy] = roe_lanes16_sum(acc);
    }
}

/* ---- AVX2 + FMA: lanes 0-7 and 8-15 in two ymm ---- */

#define T_AVX2 __attribute__((target("avx2,fma")))

/* A block's 32 codes as doubled values: w[0] the low nibbles of bytes 0-7, w[1] of bytes 8-15,
 * w[2] the high nibbles of bytes 0-7, w[3] of bytes 8-15. */
T_AVX2 static inline void decode_avx2(const uint8_t *qb, __m256 w[4]) {
    const __m128i lut = _mm_loadu_si128((const __m128i *)(const void *)mx_lut), m = _mm_set1_epi8(15);
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)qb);
    const __m128i lo = _mm_shuffle_epi8(lut, _mm_and_si128(v, m));
    const __m128i hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(v, 4), m));
    w[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    w[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    w[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    w[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

/* Block b of one W row into the accumulators lo/hi (lanes 0-7, 8-15) of NX x rows. */
T_AVX2 static inline __attribute__((always_inline)) void step_avx2(const uint8_t *q, const uint8_t *e, int b,
                                                                    const float *x, int cols, const int NX,
                                                                    __m256 *lo, __m256 *hi) {
    __m256 w[4];
    decode_avx2(q + 16 * (size_t)b, w);
    const __m256 s = _mm256_set1_ps(mx_scale(e[b]));
    for (int j = 0; j < NX; j++) {
        const float *xb = x + (size_t)j * cols + 32 * (size_t)b;
        __m256 p = _mm256_mul_ps(w[0], _mm256_loadu_ps(xb));
        p = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xb + 16), p);
        lo[j] = _mm256_fmadd_ps(p, s, lo[j]);
        p = _mm256_mul_ps(w[1], _mm256_loadu_ps(xb + 8));
        p = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xb + 24), p);
        hi[j] = _mm256_fmadd_ps(p, s, hi[j]);
    }
}

/* One W row against NX (1-4) x rows: even blocks into lo0/hi0, odd ones into lo1/hi1. */
T_AVX2 static inline __attribute__((always_inline)) void tile_avx2(const uint8_t *q, const uint8_t *e, int nb,
                                                                    const float *x, int cols, float *y, int ldy,
                                                                    const int NX) {
    __m256 lo0[4], hi0[4], lo1[4], hi1[4];
    for (int j = 0; j < NX; j++) lo0[j] = hi0[j] = lo1[j] = hi1[j] = _mm256_setzero_ps();
    int b = 0;
    for (; b + 1 < nb; b += 2) {
        step_avx2(q, e, b, x, cols, NX, lo0, hi0);
        step_avx2(q, e, b + 1, x, cols, NX, lo1, hi1);
    }
    if (b < nb) step_avx2(q, e, b, x, cols, NX, lo0, hi0);
    for (int j = 0; j < NX; j++)
        y[(size_t)j * ldy] = roe_lanes16_sum_avx2(_mm256_add_ps(lo0[j], lo1[j]), _mm256_add_ps(hi0[j], hi1[j]));
}

T_AVX2 static void row_avx2(const uint8_t *q, const uint8_t *e, int nb, const float *x, int n, int cols, float *y,
                            int ldy, int nta) {
    (void)nta;
    int i = 0;
    for (; i + 4 <= n; i += 4) tile_avx2(q, e, nb, x + (size_t)i * cols, cols, y + (size_t)i * ldy, ldy, 4);
    switch (n - i) {
    case 3: tile_avx2(q, e, nb, x + (size_t)i * cols, cols, y + (size_t)i * ldy, ldy, 3); break;
    case 2: tile_avx2(q, e, nb, x + (size_t)i * cols, cols, y + (size_t)i * ldy, ldy, 2); break;
    case 1: tile_avx2(q, e, nb, x + (size_t)i * cols, cols, y + (size_t)i * ldy, ldy, 1); break;
    default: break;
    }
}

/* ---- AVX-512: the 16 lanes in one zmm ---- */

/* A W row's bytes are prefetched this far ahead (one line per 4 blocks): non-temporally on AMD,
 * as the FP8 kernel does (from memory 1.5x the rate on one thread), into L2 on Intel, where
 * prefetchnta read 0.8x as fast as prefetcht1 (prefetcht0: 0.9x; cpu->pf_nta;
 * docs/QUANTIZATION.md "MXFP4"). The AVX2 path, bound by its decoding, gained nothing and has none. */
enum { MX_PF = 2048 };
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

/* Block b of one W row into the accumulators of NX x rows (vpermps reads an index's low 4 bits). */
T_AVX512 static inline __attribute__((always_inline)) void step_avx512(const uint8_t *q, const uint8_t *e, int b,
                                                                        const float *x, int cols, const int NX,
                                                                        __m512 lut, __m512 *acc) {
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(q + 16 * (size_t)b)));
    const __m512 w0 = _mm512_permutexvar_ps(v, lut), w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
    const __m512 s = _mm512_set1_ps(mx_scale(e[b]));
    for (int j = 0; j < NX; j++) {
        const float *xb = x + (size_t)j * cols + 32 * (size_t)b;
        __m512 p = _mm512_mul_ps(w0, _mm512_loadu_ps(xb));
        p = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), p);
        acc[j] = _mm512_fmadd_ps(p, s, acc[j]);
    }
}

/* One W row against NX (1-4) x rows: even blocks into a0, odd ones into a1. */
T_AVX512 static inline __attribute__((always_inline)) void tile_avx512(const uint8_t *q, const uint8_t *e, int nb,
                                                                        const float *x, int cols, float *y, int ldy,
                                                                        const int NX, int nta) {
    const __m512 lut = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)mx_lut)));
    __m512 a0[4], a1[4];
    for (int j = 0; j < NX; j++) a0[j] = a1[j] = _mm512_setzero_ps();
    int b = 0;
    for (; b + 1 < nb; b += 2) {
        if ((b & 3) == 0) {
            if (nta) _mm_prefetch((const char *)(q + 16 * (size_t)b + MX_PF), _MM_HINT_NTA);
            else _mm_prefetch((const char *)(q + 16 * (size_t)b + MX_PF), _MM_HINT_T1);
        }
        step_avx512(q, e, b, x, cols, NX, lut, a0);
        step_avx512(q, e, b + 1, x, cols, NX, lut, a1);
    }
    if (b < nb) step_avx512(q, e, b, x, cols, NX, lut, a0);
    for (int j = 0; j < NX; j++) y[(size_t)j * ldy] = roe_lanes16_sum_avx512(_mm512_add_ps(a0[j], a1[j]));
}

T_AVX512 static void row_avx512(const uint8_t *q, const uint8_t *e, int nb, const float *x, int n, int cols,
                                float *y, int ldy, int nta) {
    int i = 0;
    for (; i + 4 <= n; i += 4) tile_avx512(q, e, nb, x + (size_t)i * cols, cols, y + (size_t)i * ldy, ldy, 4, nta);
    switch (n - i) {
    case 3: tile_avx512(q, e, nb, x + (size_t)i * cols, cols, y + (size_t)i * ldy, ldy, 3, nta); break;
    case 2: tile_avx512(q, e, nb, x + (size_t)i * cols, cols, y + (size_t)i * ldy, ldy, 2, nta); break;
    case 1: tile_avx512(q, e, nb, x + (size_t)i * cols, cols, y + (size_t)i * ldy, ldy, 1, nta); break;
    default: break;
    }
}

/* One x row against W rows g, g + qs, g + 2qs, g + 3qs for g in [g0, g1): four streams a quarter of
 * W apart (on Intel 1.4x the rate from memory of one stream: more lines in flight for streams in
 * different pages; docs/QUANTIZATION.md "MXFP4"). Each row's arithmetic is tile_avx512's with one
 * x row: the same bits. */
T_AVX512 static void quarters_avx512(const struct roe_mat *w, int g0, int g1, int qs, const float *x, float *y) {
    const int nb = w->cols / 32, cols = w->cols;
    const __m512 lut = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)mx_lut)));
    for (int g = g0; g < g1; g++) {
        const uint8_t *q[4], *e[4];
        for (int r = 0; r < 4; r++)
            q[r] = (const uint8_t *)w->data + (size_t)(g + r * qs) * 16 * nb, e[r] = w->e8m0 + (size_t)(g + r * qs) * nb;
        __m512 a0[4], a1[4];
        for (int r = 0; r < 4; r++) a0[r] = a1[r] = _mm512_setzero_ps();
        int b = 0;
        for (; b + 1 < nb; b += 2) {
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                if ((b & 3) == 0) _mm_prefetch((const char *)(q[r] + 16 * (size_t)b + MX_PF), _MM_HINT_T1);
                step_avx512(q[r], e[r], b, x, cols, 1, lut, &a0[r]);
                step_avx512(q[r], e[r], b + 1, x, cols, 1, lut, &a1[r]);
            }
        }
        if (b < nb)
            for (int r = 0; r < 4; r++) step_avx512(q[r], e[r], b, x, cols, 1, lut, &a0[r]);
        for (int r = 0; r < 4; r++) y[g + r * qs] = roe_lanes16_sum_avx512(_mm512_add_ps(a0[r], a1[r]));
    }
}

/* ---- the op ---- */

typedef void (*mx_row_fn)(const uint8_t *q, const uint8_t *e, int nb, const float *x, int n, int cols, float *y,
                          int ldy, int nta);

static void mx_block(mx_row_fn f, const struct roe_mat *w, const float *x, int n, float *y, int blk, int nta) {
    const int nb = w->cols / 32, r1 = 4 * blk + 4 < w->rows ? 4 * blk + 4 : w->rows;
    for (int r = 4 * blk; r < r1; r++)
        f((const uint8_t *)w->data + (size_t)r * 16 * nb, w->e8m0 + (size_t)r * nb, nb, x, n, w->cols, y + r, w->rows,
          nta);
}

void roe_cpu_matmul_mxfp4(struct roe_cpu *cpu, const float *x, int n, const struct roe_mat *w, float *y) {
    const mx_row_fn f = cpu->isa == ROE_CPU_ISA_AVX512 ? row_avx512 : cpu->isa == ROE_CPU_ISA_AVX2 ? row_avx2
                                                                                                    : row_portable;
    const int n_blocks = (w->rows + 3) / 4, cols = w->cols;
    /* the deinterleaved x rows in the block formats' scratch, as many rows as it holds at once */
    const size_t room = roe_cpu_qscratch_bytes(cpu->max_cols, cpu->q_rows) / (sizeof(float) * (size_t)cols);
    const int chunk = room < (size_t)n ? (int)room : n;
    float *xd = cpu->qscratch;
    for (int i0 = 0; i0 < n; i0 += chunk) {
        const int m = n - i0 < chunk ? n - i0 : chunk;
        for (int i = 0; i < m; i++) deinterleave(x + (size_t)(i0 + i) * cols, cols, xd + (size_t)i * cols);
        float *yo = y + (size_t)i0 * w->rows;
        const int par = n_blocks > 1 && (size_t)m * (size_t)w->rows * (size_t)cols >= ((size_t)1 << 18);
        if (cpu->isa == ROE_CPU_ISA_AVX512 && m == 1 && !cpu->pf_nta && w->rows >= 8) {
            /* a decode row on Intel: W's quarters side by side, the last rows % 4 one at a time */
            const int q = w->rows / 4;
            if (par) {
#pragma omp parallel num_threads(cpu->n_threads)
                {
                    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
                    quarters_avx512(w, (int)((long)q * t / nt), (int)((long)q * (t + 1) / nt), q, xd, yo);
                }
            } else
                quarters_avx512(w, 0, q, q, xd, yo);
            for (int r = 4 * q; r < w->rows; r++)
                f((const uint8_t *)w->data + (size_t)r * 16 * (cols / 32), w->e8m0 + (size_t)r * (cols / 32), cols / 32, xd,
                  1, cols, yo + r, w->rows, 0);
            continue;
        }
        if (par) {
#pragma omp parallel for schedule(static) num_threads(cpu->n_threads)
            for (int b = 0; b < n_blocks; b++) mx_block(f, w, xd, m, yo, b, cpu->pf_nta);
        } else
            for (int b = 0; b < n_blocks; b++) mx_block(f, w, xd, m, yo, b, cpu->pf_nta);
    }
}
