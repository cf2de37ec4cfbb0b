/*
 * matmul_q.c — y = x W^T for block-quantized W (Q8, Q4; kernels/quant.h), three ISA paths
 * with bit-identical results.
 *
 * Each call first quantizes its x rows per block of 32 (prep_row: int8 values, one fp32 scale
 * dx per block, laid out as the weights' groups are), then every (x row, W row) pair is one
 * fixed arithmetic (docs/QUANTIZATION.md):
 *   for each group of 16 blocks, in order, and each of its blocks b (lane l = b mod 16):
 *       isum = the exact integer dot product of block b's 32 values (x's and W's)
 *       t = (float)isum * dx_b;  acc[l] = fma(t, d_b, acc[l])      (Q4: then fma(m_b, sx_b, acc[l]))
 *   result = a fixed tree over the 16 lanes (lanes16.h).
 * The integer sums are exact whichever instructions form them (AVX-512 VNNI, AVX-512BW, AVX2,
 * C), and the float steps are the same everywhere, so every path, tile shape, batch and thread
 * count gives the same bits: batch-invariant as the numerics contract asks, and ranks on
 * different CPUs agree. The interleaved layout puts one block in one vector lane, so a group
 * costs 8 (Q8) or 4 (Q4) int8 dot instructions per pair and one convert, scale and FMA.
 *
 * Tiles: W is split into blocks of 4 rows across threads; within a block, 2 x rows at a time
 * share each W load (batched rows: prefill, RoE's K rows, batches), and the decode case (1-2
 * rows) streams W once, with a software prefetch one block of rows ahead. A new block format
 * (FP8 with block scales, MXFP4) is one more prep + tile pair here, chosen by the dtype.
 */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_impl.h"
#include "lanes16.h"
#include "kernels/quant.h"
#include "matmul_q.h"

static void prep_row(roe_dtype t, const float *x, int cols, int nb, int8_t *xq, float *dx, int32_t *xc,
                     float *sx) {
    for (int b = 0; b < nb; b++) {
        const int c0 = b * ROE_QBLOCK, n = cols - c0 < ROE_QBLOCK ? (cols - c0 > 0 ? cols - c0 : 0) : ROE_QBLOCK;
        float amax = 0.0f;
        for (int i = 0; i < n; i++) {
            const float v = fabsf(x[c0 + i]);
            amax = v > amax ? v : amax;
        }
        const float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        int8_t *g = xq + (size_t)(b / 16) * 512 + (size_t)(b % 16) * 4;
        for (int i = 0; i < ROE_QBLOCK; i++) {
            float v = i < n ? nearbyintf(x[c0 + i] * id) : 0.0f;
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            const int p = i % 16, chunk = t == ROE_DTYPE_Q8 ? i / 4 : 2 * (p / 4) + (i >= 16);
            g[chunk * 64 + (t == ROE_DTYPE_Q8 ? i % 4 : p % 4)] = (int8_t)v;
            sum += (int)v;
        }
        dx[b] = d;
        xc[b] = -128 * sum;
        sx[b] = d * (float)sum;
    }
}

/* The same rows prepared with AVX2 / AVX-512: the same operations (max of |x|, one IEEE divide,
 * x * id rounded to nearest even, the clamp), so the same bytes as prep_row. */
static inline void put_block(roe_dtype t, int8_t *g, const int32_t q[32]) {
    for (int i = 0; i < ROE_QBLOCK; i += 4) { /* 4 consecutive values stay together (one lane) */
        const int p = i % 16, chunk = t == ROE_DTYPE_Q8 ? i / 4 : 2 * (p / 4) + (i >= 16);
        for (int k = 0; k < 4; k++) g[chunk * 64 + k] = (int8_t)q[i + k];
    }
}

/* ax (AMX tiles to follow, else NULL): row i's blocks also as A tile rows (struct qamx_x). The
 * interleaved layout takes one dword scatter a block: dword q (values 4q..4q+3) to chunk q (Q8),
 * or 2q / 2(q - 4) + 1 (Q4). */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void prep_row_avx512(roe_dtype t, const float *x, int cols, int nb,
                                                                                int8_t *xq, float *dx, int32_t *xc,
                                                                                float *sx, const struct qamx_x *ax, int i) {
    const __m512 lim = _mm512_set1_ps(127.0f), nlim = _mm512_set1_ps(-127.0f);
    const __m256i at = t == ROE_DTYPE_Q8 ? _mm256_setr_epi32(0, 64, 128, 192, 256, 320, 384, 448)
                                         : _mm256_setr_epi32(0, 128, 256, 384, 64, 192, 320, 448);
    for (int b = 0; b < nb; b++) {
        const int c0 = b * ROE_QBLOCK, n = cols - c0 < ROE_QBLOCK ? (cols - c0 > 0 ? cols - c0 : 0) : ROE_QBLOCK;
        const __mmask16 m0 = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
        const __mmask16 m1 = n >= 32 ? 0xffff : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
        const __m512 v0 = _mm512_maskz_loadu_ps(m0, x + c0), v1 = _mm512_maskz_loadu_ps(m1, x + c0 + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        const __m512 vid = _mm512_set1_ps(id);
        const __m512 r0 = _mm512_roundscale_ps(_mm512_mul_ps(v0, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512 r1 = _mm512_roundscale_ps(_mm512_mul_ps(v1, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512i q0 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r0, nlim), lim));
        const __m512i q1 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r1, nlim), lim));
        const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        const __m256i v8 = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(q0)), _mm512_cvtepi32_epi8(q1), 1);
        _mm256_i32scatter_epi32(xq + (size_t)(b / 16) * 512 + (size_t)(b % 16) * 4, at, v8, 1);
        dx[b] = d;
        xc[b] = -128 * sum;
        sx[b] = d * (float)sum;
        if (ax) {
            const size_t k = ((size_t)(i / 16) * nb + b) * 16 + i % 16;
            _mm256_storeu_si256((__m256i *)(void *)(ax->a + k * ROE_QBLOCK), v8);
            ax->dx[k] = d;
            ax->sx[k] = sx[b];
        }
    }
}

__attribute__((target("avx2,fma"))) static void prep_row_avx2(roe_dtype t, const float *x, int cols, int nb, int8_t *xq,
                                                             float *dx, int32_t *xc, float *sx) {
    const __m256 lim = _mm256_set1_ps(127.0f), nlim = _mm256_set1_ps(-127.0f);
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int b = 0; b < nb; b++) {
        const int c0 = b * ROE_QBLOCK, n = cols - c0 < ROE_QBLOCK ? (cols - c0 > 0 ? cols - c0 : 0) : ROE_QBLOCK;
        float buf[32] = {0};
        if (n) memcpy(buf, x + c0, (size_t)n * sizeof(float));
        __m256 v[4], mx = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(buf + 8 * k), mx = _mm256_max_ps(mx, _mm256_and_ps(v[k], sign));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        const float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1)));
        const float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        int32_t q[32];
        __m256i acc = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            const __m256 r = _mm256_round_ps(_mm256_mul_ps(v[k], _mm256_set1_ps(id)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            const __m256i qi = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, nlim), lim));
            _mm256_storeu_si256((__m256i *)(q + 8 * k), qi);
            acc = _mm256_add_epi32(acc, qi);
        }
        int32_t a8[8];
        _mm256_storeu_si256((__m256i *)a8, acc);
        const int sum = a8[0] + a8[1] + a8[2] + a8[3] + a8[4] + a8[5] + a8[6] + a8[7];
        put_block(t, xq + (size_t)(b / 16) * 512 + (size_t)(b % 16) * 4, q);
        dx[b] = d;
        xc[b] = -128 * sum;
        sx[b] = d * (float)sum;
    }
}

/* ---- the canonical reduction and the portable path ---- */

static float dot_portable(const struct roe_mat *w, int r, const struct qx *x, int i) {
    const int nb = x->nb, q8 = w->dtype == ROE_DTYPE_Q8;
    const uint8_t *q = (const uint8_t *)w->data + (size_t)r * roe_dtype_row_bytes(w->dtype, (size_t)w->cols);
    const int8_t *xq = x->xq + (size_t)i * x->sq;
    const float *dx = x->dx + (size_t)i * x->sb, *sx = x->sx + (size_t)i * x->sb;
    const uint16_t *sc = w->scales + (size_t)r * nb, *mn = q8 ? NULL : w->mins + (size_t)r * nb;
    float acc[16] = {0};
    for (int b = 0; b < nb; b++) {
        const int8_t *g = xq + (size_t)(b / 16) * 512 + (size_t)(b % 16) * 4;
        int s = 0;
        for (int e = 0; e < ROE_QBLOCK; e++) {
            const int p = e % 16, chunk = q8 ? e / 4 : 2 * (p / 4) + (e >= 16);
            const int xv = g[chunk * 64 + (q8 ? e % 4 : p % 4)];
            if (q8) s += xv * (int8_t)q[roe_q8_pos(b, e)];
            else s += xv * (e < 16 ? q[roe_q4_pos(b, e)] & 15 : q[roe_q4_pos(b, e)] >> 4);
        }
        acc[b % 16] = fmaf((float)s * dx[b], roe_f16_to_f32(sc[b]), acc[b % 16]);
        if (!q8) acc[b % 16] = fmaf(roe_f16_to_f32(mn[b]), sx[b], acc[b % 16]);
    }
    return roe_lanes16_sum(acc);
}

static void q_block_portable(const struct roe_mat *w, int r0, int R, const struct qx *x, int i0, int n,
                             float *out, int ldo) {
    for (int i = 0; i < n; i++)
        for (int r = 0; r < R; r++) out[(size_t)i * ldo + r] = dot_portable(w, r0 + r, x, i0 + i);
}

/* ---- AVX2 + FMA + F16C: one pair at a time, a group's blocks 0-7 and 8-15 as two ymm ---- */

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))

T_AVX2 static float dot_avx2(const struct roe_mat *w, int r, const struct qx *x, int i) {
    const int nb = x->nb, q8 = w->dtype == ROE_DTYPE_Q8;
    const size_t rb = roe_dtype_row_bytes(w->dtype, (size_t)w->cols), gb = q8 ? 512 : 256;
    const uint8_t *q = (const uint8_t *)w->data + (size_t)r * rb;
    const int8_t *xq = x->xq + (size_t)i * x->sq;
    const float *dx = x->dx + (size_t)i * x->sb, *sx = x->sx + (size_t)i * x->sb;
    const uint16_t *sc = w->scales + (size_t)r * nb, *mn = q8 ? NULL : w->mins + (size_t)r * nb;
    const __m256i ones = _mm256_set1_epi16(1), nib = _mm256_set1_epi8(0x0f);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int g = 0; g < nb / 16; g++) {
        for (int h = 0; h < 2; h++) {
            __m256i s = _mm256_setzero_si256();
            if (q8)
                for (int k = 0; k < 8; k++) {
                    const __m256i a = _mm256_loadu_si256((const __m256i *)(q + g * gb + 64 * k + 32 * h));
                    const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + g * 512 + 64 * k + 32 * h));
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(xv, a)), ones));
                }
            else
                for (int j = 0; j < 4; j++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(q + g * gb + 64 * j + 32 * h));
                    const __m256i lo = _mm256_and_si256(v, nib), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
                    const int8_t *xr = xq + g * 512 + 128 * j + 32 * h;
                    const __m256i xlo = _mm256_loadu_si256((const __m256i *)xr), xhi = _mm256_loadu_si256((const __m256i *)(xr + 64));
                    const __m256i p16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(p16, ones));
                }
            const int b0 = 16 * g + 8 * h;
            const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_loadu_ps(dx + b0));
            acc[h] = _mm256_fmadd_ps(t, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sc + b0))), acc[h]);
            if (!q8)
                acc[h] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(mn + b0))), _mm256_loadu_ps(sx + b0), acc[h]);
        }
    }
    return roe_lanes16_sum_avx2(acc[0], acc[1]);
}

static void q_block_avx2(const struct roe_mat *w, int r0, int R, const struct qx *x, int i0, int n,
                         float *out, int ldo) {
    for (int i = 0; i < n; i++)
        for (int r = 0; r < R; r++) out[(size_t)i * ldo + r] = dot_avx2(w, r0 + r, x, i0 + i);
}

/* ---- AVX-512: a group's 16 blocks in one zmm; tiles of 4 W rows x 2 x rows ---- */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma,f16c")
/* |q| . (x signed by q) summed into the block lanes, without VNNI */
static inline __m512i dp8_bw(__m512i acc, __m512i w, __m512i x) {
    const __m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(w), sx), _mm512_set1_epi16(1)));
}
static inline __m512i dp4_bw(__m512i acc, __m512i lo, __m512i xlo, __m512i hi, __m512i xhi) {
    const __m512i s16 = _mm512_add_epi16(_mm512_maddubs_epi16(lo, xlo), _mm512_maddubs_epi16(hi, xhi));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(s16, _mm512_set1_epi16(1)));
}
#define QSUF _bw
#define QINIT8(xc) ((void)(xc), _mm512_setzero_si512())
#define QDP8 dp8_bw
#define QDP4 dp4_bw
#include "matmul_q_avx512.inc"
#undef QSUF
#undef QINIT8
#undef QDP8
#undef QDP4
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")
/* (q + 128) . x, the block sum starting at -128 sum(x): the same sums */
static inline __m512i dp8_vnni(__m512i acc, __m512i w, __m512i x) {
    return _mm512_dpbusd_epi32(acc, _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80)), x);
}
static inline __m512i dp4_vnni(__m512i acc, __m512i lo, __m512i xlo, __m512i hi, __m512i xhi) {
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc, lo, xlo), hi, xhi);
}
#define QSUF _vnni
#define QINIT8(xc) (xc)
#define QDP8 dp8_vnni
#define QDP4 dp4_vnni
#include "matmul_q_avx512.inc"
#undef QSUF
#undef QINIT8
#undef QDP8
#undef QDP4
#pragma GCC pop_options

/* ---- the op ---- */

typedef void (*q_block_fn)(const struct roe_mat *w, int r0, int R, const struct qx *x, int i0, int n, float *out,
                           int ldo);

/* Carves the prepared rows' arrays out of the backend's scratch (64-byte aligned pieces). */
static struct qx qx_layout(const struct roe_cpu *cpu, roe_dtype t, int cols) {
    struct qx x = {.nb = (int)roe_dtype_row_blocks(t, (size_t)cols)};
    const size_t nbm = roe_dtype_row_blocks(ROE_DTYPE_Q8, (size_t)cpu->max_cols);
    x.sq = nbm * ROE_QBLOCK;
    x.sb = nbm;
    char *p = cpu->qscratch;
    x.xq = (const int8_t *)p;
    p += x.sq * (size_t)cpu->q_rows;
    x.dx = (const float *)(void *)p;
    p += x.sb * sizeof(float) * (size_t)cpu->q_rows;
    x.xc = (const int32_t *)(void *)p;
    p += x.sb * sizeof(int32_t) * (size_t)cpu->q_rows;
    x.sx = (const float *)(void *)p;
    return x;
}

size_t roe_cpu_qscratch_bytes(int max_cols, int rows) {
    const size_t nbm = roe_dtype_row_blocks(ROE_DTYPE_Q8, (size_t)max_cols);
    return (size_t)rows * (nbm * ROE_QBLOCK + 3 * nbm * 4);
}

static void prep(const struct roe_cpu *cpu, const struct qx *qx, roe_dtype t, const float *x, int cols, int i,
                 const struct qamx_x *ax) {
    int8_t *xq = (int8_t *)qx->xq + (size_t)i * qx->sq;
    float *dx = (float *)qx->dx + (size_t)i * qx->sb, *sx = (float *)qx->sx + (size_t)i * qx->sb;
    int32_t *xc = (int32_t *)qx->xc + (size_t)i * qx->sb;
    const float *xi = x + (size_t)i * cols;
    if (cpu->isa == ROE_CPU_ISA_AVX512) prep_row_avx512(t, xi, cols, qx->nb, xq, dx, xc, sx, ax, i);
    else if (cpu->isa == ROE_CPU_ISA_AVX2) prep_row_avx2(t, xi, cols, qx->nb, xq, dx, xc, sx);
    else prep_row(t, xi, cols, qx->nb, xq, dx, xc, sx);
}

void roe_cpu_matmul_q(struct roe_cpu *cpu, const float *x, int n, const struct roe_mat *w, float *y) {
    const int rows = w->rows, cols = w->cols, n_blocks = (rows + 3) / 4;
    q_block_fn blk = cpu->isa == ROE_CPU_ISA_AVX512 ? (cpu->vnni ? q_block_vnni : q_block_bw)
                     : cpu->isa == ROE_CPU_ISA_AVX2 ? q_block_avx2 : q_block_portable;
    const struct qx qx = qx_layout(cpu, w->dtype, cols);
    for (int i0 = 0; i0 < n; i0 += cpu->q_rows) {
        const int m = n - i0 < cpu->q_rows ? n - i0 : cpu->q_rows;
        /* the x rows, quantized once for every W row (the same values on every path; for the AMX
         * tiles also in their layout) */
        const int amx = cpu->q_amx && m >= ROE_CPU_QAMX_MIN_ROWS;
        const struct qamx_x ax = amx ? roe_cpu_qamx_x(cpu) : (struct qamx_x){0};
        if (m >= 8) {
#pragma omp parallel for schedule(static) num_threads(cpu->n_threads)
            for (int i = 0; i < m; i++) prep(cpu, &qx, w->dtype, x + (size_t)i0 * cols, cols, i, amx ? &ax : NULL);
        } else
            for (int i = 0; i < m; i++) prep(cpu, &qx, w->dtype, x + (size_t)i0 * cols, cols, i, amx ? &ax : NULL);
        float *yo = y + (size_t)i0 * rows;
        if (amx) {
            roe_cpu_matmul_q_amx(cpu, w, &qx, m, yo);
            continue;
        }
        if (n_blocks > 1 && (size_t)m * (size_t)rows * (size_t)cols >= ((size_t)1 << 18)) {
#pragma omp parallel for schedule(static) num_threads(cpu->n_threads)
            for (int b = 0; b < n_blocks; b++)
                blk(w, 4 * b, rows - 4 * b < 4 ? rows - 4 * b : 4, &qx, 0, m, yo + 4 * b, rows);
        } else
            for (int b = 0; b < n_blocks; b++) blk(w, 4 * b, rows - 4 * b < 4 ? rows - 4 * b : 4, &qx, 0, m, yo + 4 * b, rows);
    }
}
