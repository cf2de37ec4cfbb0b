/*
 * matmul_q.c — y = x W^T for block-quantized W (Q8, Q4; kernels/quant.h), three ISA paths
 * with bit-identical results.
 *
 * Each call first quantizes its x rows per block of 32 (prep_row: int8 values, one fp32 scale
 * per block, laid out for the format's chunks), then every (x row, W row) pair is one fixed
 * arithmetic, the "lane form" (docs/QUANTIZATION.md):
 *   a row is walked in 64-byte chunks of W data (Q8: 2 blocks, Q4: 4 blocks); each chunk
 *   gives 16 exact int32 lane sums (Q8: lane l sums 4 consecutive products; Q4: lane l the 4
 *   products of bytes 4l..4l+3 of the low nibbles and of the high nibbles); then per lane
 *       t = (float)isum * dx[block of l];  acc[l] = fma(t, d[block of l], acc[l])
 *   (Q4 adds, per block b, accm[b mod 16] = fma(m_b, dx_b * sum(xq of block b), accm[..]));
 *   the result is a fixed tree over the 16 lanes (reduce16).
 * The integer sums are exact whichever instructions form them (AVX-512 VNNI, AVX-512BW,
 * AVX2, C), and the float steps are the same everywhere, so every path, tile shape, batch and
 * thread count gives the same bits: batch-invariant as the numerics contract asks, and ranks
 * on different CPUs agree.
 *
 * Tiles: W is split into blocks of 4 rows across threads; within a block, 4 x rows at a time
 * share each W load (the batched case: prefill, RoE's K rows, batches) and the decode case (1-2
 * rows) streams W once at memory speed. A new block format (FP8 with block scales, MXFP4) is
 * one more prep + tile pair here, chosen by the dtype.
 */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_impl.h"

/* ---- the prepared x rows ---- */

struct qx {
    int nb;           /* blocks per row (W's row_blocks) */
    const int8_t *xq; /* [rows, sq]: Q8 natural order; Q4 per chunk: 4 x 16 low-half values, then 4 x 16 high */
    const float *dxl; /* [rows, sl]: per chunk, per lane, the dx of the lane's block */
    const int32_t *xc; /* Q8 [rows, sl]: -128 x the lane's sum of xq (VNNI's offset, q + 128) */
    const float *sx;  /* Q4 [rows, ss]: dx_b * sum of block b's xq; 0 up to a multiple of 16 */
    size_t sq, sl, ss;
};

static void prep_row(roe_dtype t, const float *x, int cols, int nb, int8_t *xq, float *dxl, int32_t *xc,
                     float *sx) {
    for (int b = 0; b < nb; b++) {
        int8_t q[ROE_QBLOCK];
        float amax = 0.0f;
        const int c0 = b * ROE_QBLOCK, n = cols - c0 < ROE_QBLOCK ? (cols - c0 > 0 ? cols - c0 : 0) : ROE_QBLOCK;
        for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[c0 + i]));
        const float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < ROE_QBLOCK; i++) {
            float v = i < n ? nearbyintf(x[c0 + i] * id) : 0.0f;
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            q[i] = (int8_t)v;
            sum += q[i];
        }
        if (t == ROE_DTYPE_Q8) {
            const int c = b / 2, h = b % 2;
            memcpy(xq + (size_t)b * ROE_QBLOCK, q, ROE_QBLOCK);
            for (int j = 0; j < 8; j++) {
                dxl[c * 16 + h * 8 + j] = d;
                xc[c * 16 + h * 8 + j] = -128 * (q[4 * j] + q[4 * j + 1] + q[4 * j + 2] + q[4 * j + 3]);
            }
        } else {
            const int c = b / 4, k = b % 4;
            memcpy(xq + (size_t)c * 128 + k * 16, q, 16);
            memcpy(xq + (size_t)c * 128 + 64 + k * 16, q + 16, 16);
            for (int j = 0; j < 4; j++) dxl[c * 16 + k * 4 + j] = d;
            sx[b] = d * (float)sum;
        }
    }
    if (t == ROE_DTYPE_Q4)
        for (int b = nb; b % 16; b++) sx[b] = 0.0f;
}

/* ---- the canonical reduction and the portable path ---- */

static float reduce16(const float a[16]) {
    float s8[8], s4[4];
    for (int i = 0; i < 8; i++) s8[i] = a[i] + a[i + 8];
    for (int i = 0; i < 4; i++) s4[i] = s8[i] + s8[i + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static float dot_portable(const struct roe_mat *w, int r, const struct qx *x, int i) {
    const int nb = x->nb;
    const int8_t *xq = x->xq + (size_t)i * x->sq;
    const float *dxl = x->dxl + (size_t)i * x->sl;
    const uint16_t *sc = w->scales + (size_t)r * nb;
    float acc[16] = {0}, accm[16] = {0};
    if (w->dtype == ROE_DTYPE_Q8) {
        const int8_t *q = (const int8_t *)w->data + (size_t)r * nb * ROE_QBLOCK;
        for (int c = 0; c < nb / 2; c++)
            for (int l = 0; l < 16; l++) {
                int s = 0;
                for (int k = 0; k < 4; k++) s += (int)xq[64 * c + 4 * l + k] * q[64 * c + 4 * l + k];
                acc[l] = fmaf((float)s * dxl[16 * c + l], roe_f16_to_f32(sc[2 * c + l / 8]), acc[l]);
            }
        return reduce16(acc);
    }
    const uint8_t *q = (const uint8_t *)w->data + (size_t)r * nb * (ROE_QBLOCK / 2);
    const uint16_t *mn = w->mins + (size_t)r * nb;
    const float *sx = x->sx + (size_t)i * x->ss;
    for (int c = 0; c < nb / 4; c++)
        for (int l = 0; l < 16; l++) {
            int s = 0;
            for (int k = 0; k < 4; k++) {
                const int p = 4 * l + k, byte = q[64 * c + p];
                s += (byte & 15) * xq[128 * c + p] + (byte >> 4) * xq[128 * c + 64 + p];
            }
            acc[l] = fmaf((float)s * dxl[16 * c + l], roe_f16_to_f32(sc[4 * c + l / 4]), acc[l]);
        }
    for (int g = 0; g < nb; g += 16)
        for (int l = 0; l < 16; l++)
            accm[l] = fmaf(g + l < nb ? roe_f16_to_f32(mn[g + l]) : 0.0f, sx[g + l], accm[l]);
    return reduce16(acc) + reduce16(accm);
}

static void q_block_portable(const struct roe_mat *w, int r0, int R, const struct qx *x, int i0, int n,
                             float *out, int ldo) {
    for (int i = 0; i < n; i++)
        for (int r = 0; r < R; r++) out[(size_t)i * ldo + r] = dot_portable(w, r0 + r, x, i0 + i);
}

/* ---- AVX2 + FMA + F16C: one x row at a time, lanes 0-7 and 8-15 as two ymm ---- */

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))

T_AVX2 static inline float reduce16_avx2(__m256 lo, __m256 hi) {
    const __m256 s8 = _mm256_add_ps(lo, hi);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

T_AVX2 static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

T_AVX2 static float dot_q8_avx2(const struct roe_mat *w, int r, const struct qx *x, int i) {
    const int nb = x->nb;
    const int8_t *q = (const int8_t *)w->data + (size_t)r * nb * ROE_QBLOCK, *xq = x->xq + (size_t)i * x->sq;
    const float *dxl = x->dxl + (size_t)i * x->sl;
    const uint16_t *sc = w->scales + (size_t)r * nb;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < nb; b++) {
        const __m256i wv = _mm256_loadu_si256((const __m256i *)(q + (size_t)b * 32));
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + (size_t)b * 32));
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv)), ones);
        const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(p), _mm256_loadu_ps(dxl + (size_t)b * 8));
        acc[b & 1] = _mm256_fmadd_ps(t, _mm256_set1_ps(h2f(sc[b])), acc[b & 1]);
    }
    return reduce16_avx2(acc[0], acc[1]);
}

T_AVX2 static float dot_q4_avx2(const struct roe_mat *w, int r, const struct qx *x, int i) {
    const int nb = x->nb;
    const uint8_t *q = (const uint8_t *)w->data + (size_t)r * nb * (ROE_QBLOCK / 2);
    const int8_t *xq = x->xq + (size_t)i * x->sq;
    const float *dxl = x->dxl + (size_t)i * x->sl, *sx = x->sx + (size_t)i * x->ss;
    const uint16_t *sc = w->scales + (size_t)r * nb, *mn = w->mins + (size_t)r * nb;
    const __m256i ones = _mm256_set1_epi16(1), nib = _mm256_set1_epi8(0x0f);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, accm[2] = {acc[0], acc[1]};
    for (int c = 0; c < nb / 4; c++)
        for (int h = 0; h < 2; h++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(q + (size_t)c * 64 + 32 * h));
            const __m256i lo = _mm256_and_si256(v, nib), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
            const int8_t *xr = xq + (size_t)c * 128 + 32 * h;
            const __m256i xlo = _mm256_loadu_si256((const __m256i *)xr);
            const __m256i xhi = _mm256_loadu_si256((const __m256i *)(xr + 64));
            const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
            const __m256i p = _mm256_madd_epi16(s16, ones);
            const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(p), _mm256_loadu_ps(dxl + (size_t)c * 16 + 8 * h));
            const int b = 4 * c + 2 * h;
            const __m256 dw = _mm256_set_m128(_mm_set1_ps(h2f(sc[b + 1])), _mm_set1_ps(h2f(sc[b])));
            acc[h] = _mm256_fmadd_ps(t, dw, acc[h]);
        }
    for (int g = 0; g < nb; g += 16) {
        uint16_t m16[16] = {0};
        memcpy(m16, mn + g, (size_t)(nb - g < 16 ? nb - g : 16) * sizeof *m16);
        for (int h = 0; h < 2; h++) {
            const __m256 m = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(m16 + 8 * h)));
            accm[h] = _mm256_fmadd_ps(m, _mm256_loadu_ps(sx + g + 8 * h), accm[h]);
        }
    }
    return reduce16_avx2(acc[0], acc[1]) + reduce16_avx2(accm[0], accm[1]);
}

static void q_block_avx2(const struct roe_mat *w, int r0, int R, const struct qx *x, int i0, int n,
                         float *out, int ldo) {
    const int q8 = w->dtype == ROE_DTYPE_Q8;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < R; r++)
            out[(size_t)i * ldo + r] = q8 ? dot_q8_avx2(w, r0 + r, x, i0 + i) : dot_q4_avx2(w, r0 + r, x, i0 + i);
}

/* ---- AVX-512: 16 lanes in one zmm; tiles of 4 W rows x up to 4 x rows ---- */

/* Per chunk of a group of 16 blocks: which block's scale each lane takes. */
static const int32_t Q8_PERM[8][16] = {
#define P8(i) {2 * i, 2 * i, 2 * i, 2 * i, 2 * i, 2 * i, 2 * i, 2 * i, \
               2 * i + 1, 2 * i + 1, 2 * i + 1, 2 * i + 1, 2 * i + 1, 2 * i + 1, 2 * i + 1, 2 * i + 1}
    P8(0), P8(1), P8(2), P8(3), P8(4), P8(5), P8(6), P8(7),
#undef P8
};
static const int32_t Q4_PERM[4][16] = {
#define P4(i) {4 * i, 4 * i, 4 * i, 4 * i, 4 * i + 1, 4 * i + 1, 4 * i + 1, 4 * i + 1, \
               4 * i + 2, 4 * i + 2, 4 * i + 2, 4 * i + 2, 4 * i + 3, 4 * i + 3, 4 * i + 3, 4 * i + 3}
    P4(0), P4(1), P4(2), P4(3),
#undef P4
};

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma,f16c")
static inline float reduce16_avx512(__m512 a) {
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}
/* |q| . (x signed by q): the exact lane sums without VNNI */
static inline __m512i dp8_bw(__m512i xc, __m512i w, __m512i x) {
    (void)xc;
    const __m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(w), sx), _mm512_set1_epi16(1));
}
static inline __m512i dp4_bw(__m512i lo, __m512i xlo, __m512i hi, __m512i xhi) {
    const __m512i s16 = _mm512_add_epi16(_mm512_maddubs_epi16(lo, xlo), _mm512_maddubs_epi16(hi, xhi));
    return _mm512_madd_epi16(s16, _mm512_set1_epi16(1));
}
#define QSUF _bw
#define QDP8 dp8_bw
#define QDP4 dp4_bw
#include "matmul_q_avx512.inc"
#undef QSUF
#undef QDP8
#undef QDP4
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")
/* (q + 128) . x - 128 sum(x) with vpdpbusd: the same lane sums */
static inline __m512i dp8_vnni(__m512i xc, __m512i w, __m512i x) {
    return _mm512_dpbusd_epi32(xc, _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80)), x);
}
static inline __m512i dp4_vnni(__m512i lo, __m512i xlo, __m512i hi, __m512i xhi) {
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi);
}
#define QSUF _vnni
#define QDP8 dp8_vnni
#define QDP4 dp4_vnni
#include "matmul_q_avx512.inc"
#undef QSUF
#undef QDP8
#undef QDP4
#pragma GCC pop_options

/* ---- the op ---- */

typedef void (*q_block_fn)(const struct roe_mat *w, int r0, int R, const struct qx *x, int i0, int n, float *out,
                           int ldo);

/* Carves the prepared rows' arrays out of the backend's scratch (64-byte aligned pieces). */
static struct qx qx_layout(const struct roe_cpu *cpu, roe_dtype t, int cols) {
    struct qx x = {.nb = (int)roe_dtype_row_blocks(t, (size_t)cols)};
    const size_t nbm = roe_dtype_row_blocks(ROE_DTYPE_Q8, (size_t)cpu->max_cols) + 4;
    x.sq = (nbm * ROE_QBLOCK + 63) / 64 * 64;
    x.sl = (nbm * 8 + 15) / 16 * 16;
    x.ss = (nbm + 16 + 15) / 16 * 16;
    char *p = cpu->qscratch;
    x.xq = (const int8_t *)p;
    p += x.sq * (size_t)cpu->q_rows;
    x.dxl = (const float *)(void *)p;
    p += x.sl * sizeof(float) * (size_t)cpu->q_rows;
    x.xc = (const int32_t *)(void *)p;
    p += x.sl * sizeof(int32_t) * (size_t)cpu->q_rows;
    x.sx = (const float *)(void *)p;
    return x;
}

size_t roe_cpu_qscratch_bytes(int max_cols, int rows) {
    const size_t nbm = roe_dtype_row_blocks(ROE_DTYPE_Q8, (size_t)max_cols) + 4;
    const size_t sq = (nbm * ROE_QBLOCK + 63) / 64 * 64, sl = (nbm * 8 + 15) / 16 * 16, ss = (nbm + 16 + 15) / 16 * 16;
    return (size_t)rows * (sq + 2 * sl * 4 + ss * 4);
}

static void prep(const struct qx *qx, roe_dtype t, const float *x, int cols, int i) {
    prep_row(t, x + (size_t)i * cols, cols, qx->nb, (int8_t *)qx->xq + (size_t)i * qx->sq,
             (float *)qx->dxl + (size_t)i * qx->sl, (int32_t *)qx->xc + (size_t)i * qx->sl,
             (float *)qx->sx + (size_t)i * qx->ss);
}

void roe_cpu_matmul_q(struct roe_cpu *cpu, const float *x, int n, const struct roe_mat *w, float *y) {
    const int rows = w->rows, cols = w->cols, n_blocks = (rows + 3) / 4;
    q_block_fn blk = cpu->isa == ROE_CPU_ISA_AVX512 ? (cpu->vnni ? q_block_vnni : q_block_bw)
                     : cpu->isa == ROE_CPU_ISA_AVX2 ? q_block_avx2 : q_block_portable;
    const struct qx qx = qx_layout(cpu, w->dtype, cols);
    for (int i0 = 0; i0 < n; i0 += cpu->q_rows) {
        const int m = n - i0 < cpu->q_rows ? n - i0 : cpu->q_rows;
        /* the x rows, quantized once for every W row (the same C code on every path) */
        if (m >= 8) {
#pragma omp parallel for schedule(static) num_threads(cpu->n_threads)
            for (int i = 0; i < m; i++) prep(&qx, w->dtype, x + (size_t)i0 * cols, cols, i);
        } else
            for (int i = 0; i < m; i++) prep(&qx, w->dtype, x + (size_t)i0 * cols, cols, i);
        float *yo = y + (size_t)i0 * rows;
        if (n_blocks > 1 && (size_t)m * (size_t)rows * (size_t)cols >= ((size_t)1 << 18)) {
#pragma omp parallel for schedule(static) num_threads(cpu->n_threads)
            for (int b = 0; b < n_blocks; b++)
                blk(w, 4 * b, rows - 4 * b < 4 ? rows - 4 * b : 4, &qx, 0, m, yo + 4 * b, rows);
        } else
            for (int b = 0; b < n_blocks; b++) blk(w, 4 * b, rows - 4 * b < 4 ? rows - 4 * b : 4, &qx, 0, m, yo + 4 * b, rows);
    }
}
