/*
 * matmul_fp8.c — y = x W^T for block-scaled FP8 W (F8_E4M3 with an fp32 scale per 128 x 128 tile:
 * DeepSeek-V3's and GLM-4.5-FP8's weight_scale_inv; struct roe_mat::tile_scale), fp32 activations,
 * three ISA paths with bit-identical results.
 *
 * The weights stay FP8 in memory and are widened inside the kernel: an e4m3 byte becomes the fp16
 * bits of value x 2^-8 by a sign extension, one shift and one mask (roe_e4m3_to_f16: exact, the
 * subnormals included), then vcvtph2ps. The 2^8 joins the tile's scale. Every (x row, W row)
 * pair is one fixed arithmetic (docs/QUANTIZATION.md, "FP8"):
 *
 *   acc[16] = 0
 *   for each tile k of 128 columns, in order:
 *       p[16] = 0
 *       for each step j of 16 columns c = 128k + 16j + l (lane l) with 128k + 16j < cols:
 *           p[l] = fma(x[c], h(w[c]), p[l])          (x and h are 0 past cols)
 *       acc[l] = fma(p[l], scale[k] * 256, acc[l])
 *   y = ((s4[0] + s4[2]) + (s4[1] + s4[3])), s4[i] = s8[i] + s8[i + 4], s8[i] = acc[i] + acc[i + 8]
 *
 * AVX-512 holds the 16 lanes in one zmm, AVX2 in two ymm (lanes 0-7, 8-15), the portable code in
 * an array; the same FMAs in the same order, so the same bits on every path, for any batch, tile
 * shape or thread count. Tiles of a row are independent chains until their scaling step, so a
 * decode row (1-2 x rows) runs four tiles side by side over one sequential stream of W (the
 * latency of one chain of FMAs would otherwise bound it), prefetched ahead, and batched rows take
 * tiles of 4 W rows x 2 x rows that share every W load and conversion. W rows go to the threads
 * in blocks of 4. On Intel (cpu->pf_nta = 0) a decode row of x instead reads four quarters of W
 * side by side (quarters_avx512: four streams in different pages keep more lines in flight) and
 * prefetches into L1; elsewhere one stream, prefetched non-temporally (docs/QUANTIZATION.md).
 */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_impl.h"
#include "lanes16.h"

enum { T = ROE_FP8_TILE,
       /* a decode row's W lines are prefetched this far ahead: non-temporally on AMD (the W stream
        * then evicts less of x from L1; measured 1.4x the rate), into L1 on Intel, where
        * prefetchnta read 0.57x as fast from memory as prefetcht0 2 KB ahead (cpu->pf_nta;
        * docs/QUANTIZATION.md "FP8") */
       PF_AHEAD_NTA = 1024, PF_AHEAD_T0 = 2048,
       /* a decode row takes 4 W rows per load of x from this many columns on (rows4_avx512): where
        * a row of x (24 KB) no longer stays in L1 beside the W stream; below, one W row at a time
        * streams faster (bench/matmul, one thread, docs/QUANTIZATION.md "FP8": at 2,048-5,120
        * columns 4 rows at a time read 0.5-0.8x as fast, at 7,168 1.07x, at 16,384 1.3x) */
       ROWS4_COLS = 6144 };

/* W's line at p, fetched ahead of use: non-temporally (nta) or into L1. */
static inline void fp8_prefetch(const uint8_t *p, int nta) {
    if (nta) _mm_prefetch((const char *)(p + PF_AHEAD_NTA), _MM_HINT_NTA);
    else _mm_prefetch((const char *)(p + PF_AHEAD_T0), _MM_HINT_T0);
}

/* The scales of row r's tiles (tile_row0 is where a view starts within its first tile). */
static inline const float *row_scales(const struct roe_mat *w, int r) {
    const int nt = (w->cols + T - 1) / T;
    return w->tile_scale + (size_t)((w->tile_row0 + r) / T) * (size_t)nt;
}

/* ---- portable ---- */

static float dot_portable(const uint8_t *w, const float *s, const float *x, int cols) {
    const int nt = (cols + T - 1) / T;
    float acc[16] = {0};
    for (int k = 0; k < nt; k++) {
        float p[16] = {0};
        for (int c0 = T * k; c0 < cols && c0 < T * (k + 1); c0 += 16)
            for (int l = 0; l < 16; l++) {
                const int c = c0 + l;
                p[l] = fmaf(c < cols ? x[c] : 0.0f, c < cols ? roe_f16_to_f32(roe_e4m3_to_f16(w[c])) : 0.0f, p[l]);
            }
        const float sk = s[k] * 256.0f;
        for (int l = 0; l < 16; l++) acc[l] = fmaf(p[l], sk, acc[l]);
    }
    return roe_lanes16_sum(acc);
}

static void block_portable(const struct roe_mat *w, int r0, int R, const float *x, int n, float *y, int nta) {
    (void)nta;
    const int cols = w->cols, rows = w->rows;
    for (int i = 0; i < n; i++)
        for (int r = r0; r < r0 + R; r++)
            y[(size_t)i * rows + r] =
                dot_portable((const uint8_t *)w->data + (size_t)r * cols, row_scales(w, r), x + (size_t)i * cols, cols);
}

/* ---- AVX2 + FMA + F16C: lanes 0-7 and 8-15 in two ymm; two tiles side by side ---- */

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))

T_AVX2 static inline __m256i h16_avx2(__m128i b) { /* 16 bytes -> 16 fp16 (value x 2^-8) */
    return _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7), _mm256_set1_epi16((short)0xbf80));
}

/* One step of 16 columns into (lo, hi); past `left` columns the bytes and x are zero. */
T_AVX2 static inline void step_avx2(const uint8_t *w, const float *x, int left, __m256 *lo, __m256 *hi) {
    __m128i b;
    __m256 x0, x1;
    if (left >= 16) {
        b = _mm_loadu_si128((const __m128i *)w);
        x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
    } else {
        uint8_t wb[16] = {0};
        float xb[16] = {0};
        memcpy(wb, w, (size_t)left);
        memcpy(xb, x, (size_t)left * sizeof(float));
        b = _mm_loadu_si128((const __m128i *)wb);
        x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8);
    }
    const __m256i h = h16_avx2(b);
    *lo = _mm256_fmadd_ps(x0, _mm256_cvtph_ps(_mm256_castsi256_si128(h)), *lo);
    *hi = _mm256_fmadd_ps(x1, _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)), *hi);
}

T_AVX2 static float dot_avx2(const uint8_t *w, const float *s, const float *x, int cols, int nta) {
    const int nt = (cols + T - 1) / T;
    __m256 alo = _mm256_setzero_ps(), ahi = alo;
    int k = 0;
    for (; k + 2 <= nt && T * (k + 2) <= cols; k += 2) { /* two whole tiles: four chains */
        for (int l = 0; l < 2 * T; l += 64) fp8_prefetch(w + T * k + l, nta);
        __m256 p[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int j = 0; j < T; j += 16) {
            step_avx2(w + T * k + j, x + T * k + j, 16, &p[0], &p[1]);
            step_avx2(w + T * (k + 1) + j, x + T * (k + 1) + j, 16, &p[2], &p[3]);
        }
        for (int t = 0; t < 2; t++) {
            const __m256 sk = _mm256_set1_ps(s[k + t] * 256.0f);
            alo = _mm256_fmadd_ps(p[2 * t], sk, alo);
            ahi = _mm256_fmadd_ps(p[2 * t + 1], sk, ahi);
        }
    }
    for (; k < nt; k++) {
        __m256 plo = _mm256_setzero_ps(), phi = plo;
        for (int c = T * k; c < cols && c < T * (k + 1); c += 16) step_avx2(w + c, x + c, cols - c, &plo, &phi);
        const __m256 sk = _mm256_set1_ps(s[k] * 256.0f);
        alo = _mm256_fmadd_ps(plo, sk, alo);
        ahi = _mm256_fmadd_ps(phi, sk, ahi);
    }
    return roe_lanes16_sum_avx2(alo, ahi);
}

static void block_avx2(const struct roe_mat *w, int r0, int R, const float *x, int n, float *y, int nta) {
    const int cols = w->cols, rows = w->rows;
    for (int r = r0; r < r0 + R; r++)
        for (int i = 0; i < n; i++)
            y[(size_t)i * rows + r] =
                dot_avx2((const uint8_t *)w->data + (size_t)r * cols, row_scales(w, r), x + (size_t)i * cols, cols, nta);
}

/* ---- AVX-512: the 16 lanes in one zmm ---- */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma,f16c")

static inline __m512 w16_avx512(const uint8_t *w) {
    const __m256i h = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w));
    return _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(h, 7), _mm256_set1_epi16((short)0xbf80)));
}
/* 32 bytes -> two vectors of 16 (columns 0-15, 16-31): one widening, shift and mask for both */
static inline void w32_avx512(const uint8_t *w, __m512 *lo, __m512 *hi) {
    const __m512i h = _mm512_and_si512(_mm512_slli_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)w)), 7),
                                       _mm512_set1_epi16((short)0xbf80));
    *lo = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    *hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
}
static inline __m512 w16_mask_avx512(const uint8_t *w, __mmask16 m) {
    const __m256i h = _mm256_cvtepi8_epi16(_mm_maskz_loadu_epi8(m, w));
    return _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(h, 7), _mm256_set1_epi16((short)0xbf80)));
}

/* [R W rows from r0] x [X x rows], one tile at a time (R x X chains): out[i * ldo + r]. */
static inline __attribute__((always_inline)) void tile_avx512(const struct roe_mat *w, int r0, const int R,
                                                             const float *x, const int X, float *out, int ldo) {
    const int cols = w->cols, nt = (cols + T - 1) / T;
    const uint8_t *wr[4];
    const float *sr[4];
    for (int r = 0; r < R; r++) wr[r] = (const uint8_t *)w->data + (size_t)(r0 + r) * cols, sr[r] = row_scales(w, r0 + r);
    __m512 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        for (int i = 0; i < X; i++) acc[r][i] = _mm512_setzero_ps();
    for (int k = 0; k < nt; k++) {
        __m512 p[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            for (int i = 0; i < X; i++) p[r][i] = _mm512_setzero_ps();
        for (int c = T * k; c < cols && c < T * (k + 1); c += 16) {
            const __mmask16 m = cols - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - c)) - 1);
            __m512 wv[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                _mm_prefetch((const char *)(wr[r] + c + (size_t)R * cols), _MM_HINT_T0);
                wv[r] = m == 0xffff ? w16_avx512(wr[r] + c) : w16_mask_avx512(wr[r] + c, m);
            }
#pragma GCC unroll 2
            for (int i = 0; i < X; i++) {
                const __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)i * cols + c);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) p[r][i] = _mm512_fmadd_ps(xv, wv[r], p[r][i]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m512 sk = _mm512_set1_ps(sr[r][k] * 256.0f);
            for (int i = 0; i < X; i++) acc[r][i] = _mm512_fmadd_ps(p[r][i], sk, acc[r][i]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        for (int i = 0; i < X; i++) out[(size_t)i * ldo + r] = roe_lanes16_sum_avx512(acc[r][i]);
}

/* One W row against X (1-2) x rows, four whole tiles side by side (4 X chains over one 512-byte
 * stretch of the row), the rest one tile at a time as tile_avx512 does them. */
static inline __attribute__((always_inline)) void row_avx512(const struct roe_mat *w, int r, const float *x, const int X,
                                                            float *out, int ldo, int nta) {
    const int cols = w->cols, nt = (cols + T - 1) / T;
    const uint8_t *wr = (const uint8_t *)w->data + (size_t)r * cols;
    const float *s = row_scales(w, r);
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    int k = 0;
    for (; k + 4 <= nt && T * (k + 4) <= cols; k += 4) {
        for (int l = 0; l < 4 * T; l += 64) fp8_prefetch(wr + T * k + l, nta);
        __m512 p[4][2];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++)
            for (int i = 0; i < X; i++) p[t][i] = _mm512_setzero_ps();
        for (int j = 0; j < T; j += 32) { /* steps j and j + 16 of each tile, in that order */
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const int c = T * (k + t) + j;
                __m512 w0, w1;
                w32_avx512(wr + c, &w0, &w1);
#pragma GCC unroll 2
                for (int i = 0; i < X; i++) {
                    p[t][i] = _mm512_fmadd_ps(_mm512_loadu_ps(x + (size_t)i * cols + c), w0, p[t][i]);
                    p[t][i] = _mm512_fmadd_ps(_mm512_loadu_ps(x + (size_t)i * cols + c + 16), w1, p[t][i]);
                }
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const __m512 sk = _mm512_set1_ps(s[k + t] * 256.0f);
            for (int i = 0; i < X; i++) acc[i] = _mm512_fmadd_ps(p[t][i], sk, acc[i]);
        }
    }
    for (; k < nt; k++) {
        __m512 p[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int c = T * k; c < cols && c < T * (k + 1); c += 16) {
            const __mmask16 m = cols - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - c)) - 1);
            const __m512 wv = w16_mask_avx512(wr + c, m);
            for (int i = 0; i < X; i++) p[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + (size_t)i * cols + c), wv, p[i]);
        }
        const __m512 sk = _mm512_set1_ps(s[k] * 256.0f);
        for (int i = 0; i < X; i++) acc[i] = _mm512_fmadd_ps(p[i], sk, acc[i]);
    }
    for (int i = 0; i < X; i++) out[(size_t)i * ldo] = roe_lanes16_sum_avx512(acc[i]);
}

/* Four W rows against one x row: per pair of whole tiles, the 4 rows x 2 tiles = 8 chains, every
 * load of x serving the four rows (row_avx512 reads x once per W row: 4 bytes of x per weight
 * byte, which at 7,168 columns no longer stay in L1 beside the W stream); the rest one tile at a
 * time. Each (row, tile) chain and each row's scaling steps are row_avx512's, in the same order. */
static inline __attribute__((always_inline)) void rows4_avx512(const struct roe_mat *w, int r0, int rs, const float *x,
                                                              float *out, int nta) {
    const int cols = w->cols, nt = (cols + T - 1) / T;
    const uint8_t *wr[4];
    const float *sr[4];
    for (int r = 0; r < 4; r++)
        wr[r] = (const uint8_t *)w->data + (size_t)(r0 + r * rs) * cols, sr[r] = row_scales(w, r0 + r * rs);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int k = 0;
    for (; k + 2 <= nt && T * (k + 2) <= cols; k += 2) {
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            for (int l = 0; l < 2 * T; l += 64) fp8_prefetch(wr[r] + T * k + l, nta);
        __m512 p[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) p[r][0] = p[r][1] = _mm512_setzero_ps();
        for (int j = 0; j < T; j += 32) {
#pragma GCC unroll 2
            for (int t = 0; t < 2; t++) {
                const int c = T * (k + t) + j;
                const __m512 x0 = _mm512_loadu_ps(x + c), x1 = _mm512_loadu_ps(x + c + 16);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    __m512 w0, w1;
                    w32_avx512(wr[r] + c, &w0, &w1);
                    p[r][t] = _mm512_fmadd_ps(x0, w0, p[r][t]);
                    p[r][t] = _mm512_fmadd_ps(x1, w1, p[r][t]);
                }
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            for (int t = 0; t < 2; t++) acc[r] = _mm512_fmadd_ps(p[r][t], _mm512_set1_ps(sr[r][k + t] * 256.0f), acc[r]);
    }
    for (; k < nt; k++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m512 p = _mm512_setzero_ps();
            for (int c = T * k; c < cols && c < T * (k + 1); c += 16) {
                const __mmask16 m = cols - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - c)) - 1);
                p = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + c), w16_mask_avx512(wr[r] + c, m), p);
            }
            acc[r] = _mm512_fmadd_ps(p, _mm512_set1_ps(sr[r][k] * 256.0f), acc[r]);
        }
    for (int r = 0; r < 4; r++) out[(size_t)r * rs] = roe_lanes16_sum_avx512(acc[r]);
}

/* Rows [r0, r0 + R) of W (R <= 4) against every x row: 1-2 x rows row after row (one sequential
 * stream; one x row of a wide W four W rows at a time), more in tiles of 4 W rows x 2 x rows. */
static void block_avx512(const struct roe_mat *w, int r0, int R, const float *x, int n, float *y, int nta) {
    const int rows = w->rows, cols = w->cols;
    if (n == 1 && R == 4 && cols >= ROWS4_COLS) {
        rows4_avx512(w, r0, 1, x, y + r0, nta);
        return;
    }
    if (n <= 2) {
        for (int r = r0; r < r0 + R; r++)
            if (n == 2) row_avx512(w, r, x, 2, y + r, rows, nta);
            else row_avx512(w, r, x, 1, y + r, rows, nta);
        return;
    }
    int i = 0;
    if (R == 4)
        for (; i + 2 <= n; i += 2) tile_avx512(w, r0, 4, x + (size_t)i * cols, 2, y + (size_t)i * rows + r0, rows);
    for (; i < n; i++)
        for (int r = r0; r < r0 + R; r++) tile_avx512(w, r, 1, x + (size_t)i * cols, 1, y + (size_t)i * rows + r, rows);
}

/* One x row against W rows g, g + q, g + 2q, g + 3q for each g in [g0, g1): four streams a quarter
 * of W apart (on Intel 1.6x the rate from memory of one stream, 1.1x that of 4 adjacent rows:
 * the hardware keeps more lines in flight for streams in different pages; docs/QUANTIZATION.md
 * "FP8"). Each row's arithmetic is rows4_avx512's: the same bits as any other grouping. */
static void quarters_avx512(const struct roe_mat *w, int g0, int g1, int q, const float *x, float *y, int nta) {
    for (int g = g0; g < g1; g++) rows4_avx512(w, g, q, x, y + g, nta);
}

#pragma GCC pop_options

/* ---- the op ---- */

void roe_cpu_matmul_fp8(struct roe_cpu *cpu, const float *x, int n, const struct roe_mat *w, float *y) {
    const int rows = w->rows, n_blocks = (rows + 3) / 4;
    void (*blk)(const struct roe_mat *, int, int, const float *, int, float *, int) =
        cpu->isa == ROE_CPU_ISA_AVX512 ? block_avx512 : cpu->isa == ROE_CPU_ISA_AVX2 ? block_avx2 : block_portable;
    const int par = n_blocks > 1 && (size_t)n * (size_t)rows * (size_t)w->cols >= ((size_t)1 << 18);
    if (cpu->isa == ROE_CPU_ISA_AVX512 && n == 1 && !cpu->pf_nta && rows >= 8) {
        /* a decode row on Intel: W's quarters side by side (quarters_avx512), the last rows % 4
         * one at a time; each thread takes a contiguous range of groups */
        const int q = rows / 4;
        if (par) {
#pragma omp parallel num_threads(cpu->n_threads)
            {
                const int t = omp_get_thread_num(), nt = omp_get_num_threads();
                quarters_avx512(w, (int)((long)q * t / nt), (int)((long)q * (t + 1) / nt), q, x, y, 0);
            }
        } else
            quarters_avx512(w, 0, q, q, x, y, 0);
        if (rows > 4 * q) block_avx512(w, 4 * q, rows - 4 * q, x, 1, y, 0);
        return;
    }
    if (par) {
#pragma omp parallel for schedule(static) num_threads(cpu->n_threads)
        for (int b = 0; b < n_blocks; b++) blk(w, 4 * b, rows - 4 * b < 4 ? rows - 4 * b : 4, x, n, y, cpu->pf_nta);
    } else
        for (int b = 0; b < n_blocks; b++) blk(w, 4 * b, rows - 4 * b < 4 ? rows - 4 * b : 4, x, n, y, cpu->pf_nta);
}
