/*
 * matmul_q_amx.c — the batched rows of matmul_q.c (Q8, Q4) on AMX-INT8 tiles (Sapphire Rapids
 * and later): the same exact per-block integer sums and the same float steps in the same order
 * as the VNNI, AVX-512BW, AVX2 and portable paths, so the same bits (docs/QUANTIZATION.md).
 *
 * Why: with a scale (and a min) per block of 32 values the VNNI tiles spend, per (W row, x row)
 * pair and group of 16 blocks, 8 vpdpbusd and 4 float operations, plus the Q4 nibble unpacking
 * redone for every pair of x rows: prefill was bound by those vector instructions, not by memory.
 * One tile product forms a block's integer sums for 16 W rows x 16 x rows; the vector units are
 * left the float steps, a quarter of an instruction per (pair, block). On the Xeon measured, tile
 * and float instructions do not overlap, which bounds the gain at about 1.5x the VNNI kernels
 * (docs/PERFORMANCE.md "AMX-INT8 for the block dtypes"); below 16 x rows (ROE_CPU_QAMX_MIN_ROWS)
 * the per-call repack of W costs more than it saves.
 *
 * The tiles, for one block b of a group: C[m][r] = sum over k < 32 of xq[m][b][k] q[r][b][k]
 * (TDPBSSD for Q8's signed values, TDPBSUD for Q4's unsigned ones):
 *   A = 16 x rows x the block's 32 bytes, in value order (struct qamx_x, written by the prep);
 *   B = the block's 32 values of 16 W rows in the VNNI layout [k/4][r][k%4]: 8 rows x 64 bytes.
 * W's layout stores chunk k of a group as dword k (values 4k..4k+3) of each of its 16 blocks
 * side by side, so B's row k is a column of the 16 x 16 dword matrix [W row][block] of chunk k:
 * each thread transposes its 16 W rows once per call (Q4: then splits low nibbles into B rows
 * 0-3 and high ones into rows 4-7), with the scales (and mins) transposed to [block][r] beside.
 *
 * The float steps, over r in one zmm: a[m] for lane l (l = b mod 16, one zmm of 16 r) =
 * fma(C[m][r] x dx[m][b], d[r][b], acc) then, Q4, fma(m[r][b], sx[m][b], acc) — what the other
 * paths do in lane l of a (W row, x row) pair — and at the end lanes16.h's tree over the 16 l,
 * elementwise over r. So y's bits do not depend on the path, the tile, the batch or the threads
 * (tests/unit/test_quant.c compares them with the portable path).
 */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "cpu_impl.h"
#include "kernels/quant.h"
#include "lanes16.h"
#include "matmul_q.h"

int roe_cpu_amx_int8_usable(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 roe_cpu_amx_tiles(1u << 24 | 1u << 25); /* AMX-TILE, AMX-INT8 */
    }
    return cached;
}

/* Per thread: B tiles of 16 W rows [nbm][8][64], their d and m transposed [nbm][16] each, the
 * accumulators [16 m][16 l][16 r], two C tiles. */
static size_t wtiles_bytes(int max_cols) { return roe_dtype_row_blocks(ROE_DTYPE_Q8, (size_t)max_cols) * 512; }
size_t roe_cpu_qamx_thread_bytes(int max_cols) {
    return wtiles_bytes(max_cols) + 2 * roe_dtype_row_blocks(ROE_DTYPE_Q8, (size_t)max_cols) * 16 * sizeof(float) +
           16 * 16 * 16 * sizeof(float) + 2 * 256 * sizeof(int32_t);
}
/* Shared: the prepared rows as A tiles [m block][block][16 m][32], then their dx and sx as
 * [m block][block][16 m] each (one block's 16 rows side by side: the float steps' broadcasts). */
size_t roe_cpu_qamx_x_bytes(int max_cols, int rows) {
    return (size_t)(rows + 15) / 16 * 16 * roe_dtype_row_blocks(ROE_DTYPE_Q8, (size_t)max_cols) * (ROE_QBLOCK + 8);
}

struct qamx_x roe_cpu_qamx_x(const struct roe_cpu *cpu) {
    const size_t n = (size_t)(cpu->q_rows + 15) / 16 * 16 * roe_dtype_row_blocks(ROE_DTYPE_Q8, (size_t)cpu->max_cols);
    struct qamx_x x = {.a = cpu->qamx_xscratch};
    x.dx = (float *)(void *)(cpu->qamx_xscratch + n * ROE_QBLOCK);
    x.sx = x.dx + n;
    return x;
}

#define T_AMX __attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma,amx-tile,amx-int8")))

/* Tiles 0-1: C (16 x 16 int32); 2-3: A (16 x rows x 32 bytes); 4-5: B (8 rows x 64 bytes).
 * A constant (see matmul_bf16.c's TILECFG: GCC drops stores to a local configuration). */
static const _Alignas(64) uint8_t QTILECFG[64] = {
    [0] = 1,   [16] = 64, [18] = 64, [20] = 32, [22] = 32, [24] = 64, [26] = 64,
    [48] = 16, [49] = 16, [50] = 16, [51] = 16, [52] = 8,  [53] = 8,
};

/* out[j] element i = in[i] element j, for 16 x 16 dwords. */
T_AMX static inline void transpose16(const __m512i in[16], __m512i out[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* u[4i + c], 128-bit lane L: in[4i..4i+3] element 4L + c */
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) { /* out[4L + c]: lane L of u[c], u[4 + c], u[8 + c], u[12 + c] */
        const __m512i a = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), b = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xee);
        const __m512i e = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44), f = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xee);
        out[c] = _mm512_shuffle_i32x4(a, e, 0x88);
        out[4 + c] = _mm512_shuffle_i32x4(a, e, 0xdd);
        out[8 + c] = _mm512_shuffle_i32x4(b, f, 0x88);
        out[12 + c] = _mm512_shuffle_i32x4(b, f, 0xdd);
    }
}

/* The 16 fp16 per-block values of group g of rows r0..r0+R (zeros past R) as [block][r] fp32. */
T_AMX static void transpose_scales(const uint16_t *s, int nb, int r0, int R, int g, float *dst) {
    __m512i in[16], out[16];
    for (int r = 0; r < 16; r++)
        in[r] = r < R ? _mm512_castps_si512(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + (size_t)(r0 + r) * nb + 16 * g))))
                      : _mm512_setzero_si512();
    transpose16(in, out);
    for (int b = 0; b < 16; b++) _mm512_store_si512(dst + (size_t)(16 * g + b) * 16, out[b]);
}

/* W rows [r0, r0 + R) (R <= 16; the rest zeros) as B tiles, one per block, and their scales. */
T_AMX static void repack_w(const struct roe_mat *w, int r0, int R, int nb, uint8_t *bt, float *dsT, float *msT) {
    const int q8 = w->dtype == ROE_DTYPE_Q8, nk = q8 ? 8 : 4;
    const size_t rb = roe_dtype_row_bytes(w->dtype, (size_t)w->cols), gb = q8 ? 512 : 256;
    const __m512i nib = _mm512_set1_epi8(0x0f);
    for (int g = 0; g < nb / 16; g++) {
        for (int k = 0; k < nk; k++) {
            __m512i in[16], out[16];
            for (int r = 0; r < 16; r++) {
                const uint8_t *src = (const uint8_t *)w->data + (size_t)(r0 + r) * rb + g * gb + 64 * k;
                /* 16 row streams at once: the hardware prefetcher alone left the loads waiting on memory */
                if (r < R && g + 4 < nb / 16) _mm_prefetch((const char *)(src + 4 * gb), _MM_HINT_T0);
                in[r] = r < R ? _mm512_loadu_si512(src) : _mm512_setzero_si512();
            }
            transpose16(in, out); /* out[b]: dword k of block b for the 16 rows */
            for (int b = 0; b < 16; b++) {
                uint8_t *tile = bt + (size_t)(16 * g + b) * 512;
                if (q8) _mm512_store_si512(tile + 64 * k, out[b]);
                else {
                    _mm512_store_si512(tile + 64 * k, _mm512_and_si512(out[b], nib));
                    _mm512_store_si512(tile + 64 * (4 + k), _mm512_and_si512(_mm512_srli_epi16(out[b], 4), nib));
                }
            }
        }
        transpose_scales(w->scales, nb, r0, R, g, dsT);
        if (!q8) transpose_scales(w->mins, nb, r0, R, g, msT);
    }
}

struct thread_bufs {
    uint8_t *bt;
    float *dsT, *msT, *acc;
    int32_t *c;
};

static struct thread_bufs thread_bufs(const struct roe_cpu *cpu, int tid) {
    const size_t nbm = roe_dtype_row_blocks(ROE_DTYPE_Q8, (size_t)cpu->max_cols);
    char *p = (char *)cpu->qamx_wscratch + (size_t)tid * roe_cpu_qamx_thread_bytes(cpu->max_cols);
    struct thread_bufs t;
    t.bt = (uint8_t *)p;
    p += wtiles_bytes(cpu->max_cols);
    t.dsT = (float *)(void *)p;
    p += nbm * 16 * sizeof(float);
    t.msT = (float *)(void *)p;
    p += nbm * 16 * sizeof(float);
    t.acc = (float *)(void *)p;
    p += 16 * 16 * 16 * sizeof(float);
    t.c = (int32_t *)(void *)p;
    return t;
}

/* Block b's integer sums for 16 x rows into C tile 0 or 1 (set = b % 2: A tile 2 or 3, B tile 4 or
 * 5), left in the tile: the next block's product runs while this one's float steps do. */
T_AMX static inline void tile_dp(int q8, int set, const int8_t *a, const uint8_t *bt) {
    if (set == 0) {
        _tile_zero(0);
        _tile_loadd(2, a, 32);
        _tile_loadd(4, bt, 64);
        if (q8) _tile_dpbssd(0, 2, 4);
        else _tile_dpbsud(0, 2, 4);
    } else {
        _tile_zero(1);
        _tile_loadd(3, a, 32);
        _tile_loadd(5, bt, 64);
        if (q8) _tile_dpbssd(1, 3, 5);
        else _tile_dpbsud(1, 3, 5);
    }
}
T_AMX static inline void tile_store(int set, int32_t *c) {
    if (set == 0) _tile_stored(0, c, 64);
    else _tile_stored(1, c, 64);
}

/* One block's float steps for 16 x rows (C: the tile's sums [m][r]): a[m] (16 W rows) +=
 * fma(C[m] x dx[m], d) (Q4: then fma(mn, sx[m])), the other paths' operations in their order. */
T_AMX static inline __attribute__((always_inline)) void block_steps(const int q8, const int32_t *c, const float *dsT,
                                                                     const float *msT, const float *dx, const float *sx,
                                                                     __m512 a[16]) {
    const __m512 d = _mm512_load_ps(dsT);
    if (q8) {
#pragma GCC unroll 16
        for (int m = 0; m < 16; m++) {
            const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * m)), _mm512_set1_ps(dx[m]));
            a[m] = _mm512_fmadd_ps(v, d, a[m]);
        }
    } else {
        const __m512 mn = _mm512_load_ps(msT);
#pragma GCC unroll 16
        for (int m = 0; m < 16; m++) {
            const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * m)), _mm512_set1_ps(dx[m]));
            a[m] = _mm512_fmadd_ps(mn, _mm512_set1_ps(sx[m]), _mm512_fmadd_ps(v, d, a[m]));
        }
    }
}

/* W rows [r0, r0 + R) against the prepared rows [0, n): y[i * rows + r0 + r]. q8 a constant in each
 * instantiation (wblock_q8, wblock_q4), so the loop keeps its accumulators in registers. */
T_AMX static inline __attribute__((always_inline)) void wblock(const int q8, const struct roe_mat *w, int r0, int R,
                                                               const struct qx *x, const struct qamx_x *xt, int n,
                                                               float *y, const struct thread_bufs *t, int next_rows) {
    const int nb = x->nb, ng = nb / 16;
    const size_t rb = roe_dtype_row_bytes(w->dtype, (size_t)w->cols);
    /* this thread's next W rows (next_rows of them, 0 if none), prefetched into L2 a sixteenth per
     * lane during this block's tiles */
    repack_w(w, r0, R, nb, t->bt, t->dsT, t->msT);
    __m512 *acc = (__m512 *)(void *)t->acc; /* [m][l] */
    const __mmask16 keep = R >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << R) - 1);
    for (int m0 = 0; m0 < n; m0 += 16) {
        const int nm = n - m0 < 16 ? n - m0 : 16;
        const int8_t *xm = xt->a + (size_t)(m0 / 16) * nb * 512;
        const float *dxm = xt->dx + (size_t)(m0 / 16) * nb * 16, *sxm = xt->sx + (size_t)(m0 / 16) * nb * 16;
        /* Lane by lane (blocks l, 16 + l, ...: a lane's accumulators stay in registers); at each step
         * the tiles multiply the next block while the vector units take this one's sums. */
        tile_dp(q8, 0, xm, t->bt);
        int s = 0;
        for (int l = 0; l < 16; l++) {
            if (m0 == 0)
                for (int r = 0; r < next_rows; r++)
                    for (size_t o = (size_t)l * rb / 16 & ~(size_t)63; o < (size_t)(l + 1) * rb / 16; o += 64)
                        _mm_prefetch((const char *)w->data + (size_t)(r0 + 16 + r) * rb + o, _MM_HINT_T1);
            __m512 a[16];
#pragma GCC unroll 16
            for (int m = 0; m < 16; m++) a[m] = _mm512_setzero_ps(); /* +0, as the other paths' lanes */
            for (int g = 0; g < ng; g++, s++) {
                const int b = 16 * g + l, nxt = g + 1 < ng ? b + 16 : l + 1;
                if (s + 1 < nb) tile_dp(q8, (s + 1) & 1, xm + (size_t)nxt * 512, t->bt + (size_t)nxt * 512);
                /* the x tile two steps ahead into L1 (the m blocks' tiles together outgrow it) */
                if (s + 2 < nb) {
                    const int b2 = g + 2 < ng ? b + 32 : g + 2 == ng ? l + 1 : l + 1 + 16;
                    for (int k = 0; k < 512; k += 64) _mm_prefetch((const char *)(xm + (size_t)b2 * 512 + k), _MM_HINT_T0);
                }
                int32_t *c = t->c + 256 * (s & 1);
                tile_store(s & 1, c);
                block_steps(q8, c, t->dsT + (size_t)b * 16, t->msT + (size_t)b * 16, dxm + (size_t)b * 16, sxm + (size_t)b * 16, a);
            }
            for (int m = 0; m < 16; m++) acc[16 * m + l] = a[m];
        }
        for (int m = 0; m < nm; m++) /* lanes16.h's tree over the 16 lanes, elementwise over r */
            _mm512_mask_storeu_ps(y + (size_t)(m0 + m) * w->rows + r0, keep, roe_lanes16_sum_x16(acc + 16 * m));
    }
}

T_AMX static void wblock_q8(const struct roe_mat *w, int r0, int R, const struct qx *x, const struct qamx_x *xt, int n,
                            float *y, const struct thread_bufs *t, int next_rows) {
    wblock(1, w, r0, R, x, xt, n, y, t, next_rows);
}
T_AMX static void wblock_q4(const struct roe_mat *w, int r0, int R, const struct qx *x, const struct qamx_x *xt, int n,
                            float *y, const struct thread_bufs *t, int next_rows) {
    wblock(0, w, r0, R, x, xt, n, y, t, next_rows);
}

__attribute__((target("amx-tile"))) static void tiles_on(void) { _tile_loadconfig(&QTILECFG); }
__attribute__((target("amx-tile"))) static void tiles_off(void) { _tile_release(); }

static void body(struct roe_cpu *cpu, const struct roe_mat *w, const struct qx *x, int n, float *y, int tid, int nth) {
    const int nwb = (w->rows + 15) / 16, b0 = (int)((long)nwb * tid / nth), b1 = (int)((long)nwb * (tid + 1) / nth);
    const struct thread_bufs t = thread_bufs(cpu, tid);
    const struct qamx_x xt = roe_cpu_qamx_x(cpu);
    tiles_on();
    for (int b = b0; b < b1; b++) {
        const int rows = w->rows - 16 * b < 16 ? w->rows - 16 * b : 16, left = w->rows - 16 * (b + 1);
        const int next = b + 1 < b1 ? (left < 16 ? left : 16) : 0; /* this thread's next block's rows */
        (w->dtype == ROE_DTYPE_Q8 ? wblock_q8 : wblock_q4)(w, 16 * b, rows, x, &xt, n, y, &t, next);
    }
    tiles_off();
}

void roe_cpu_matmul_q_amx(struct roe_cpu *cpu, const struct roe_mat *w, const struct qx *x, int n, float *y) {
    if (w->rows > 16 && (size_t)n * (size_t)w->rows * (size_t)w->cols >= ((size_t)1 << 18)) {
#pragma omp parallel num_threads(cpu->n_threads)
        body(cpu, w, x, n, y, omp_get_thread_num(), omp_get_num_threads());
    } else
        body(cpu, w, x, n, y, 0, 1);
}
