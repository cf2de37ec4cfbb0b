/*
 * matmul_bf16.c — y = x W^T for bf16 W on the AVX-512 path with bf16 multipliers: AMX-BF16 tiles
 * (Sapphire Rapids and later) or AVX512-BF16 dot products (vdpbf16ps: Cooper Lake, Zen 4).
 * matmul.c's fp32 kernels widen W and run 16 FMAs an instruction; these multiply bf16 pairs in
 * hardware: a tile product is 16 x 16 x 32 multiply-adds, vdpbf16ps 32.
 *
 * Precision: x stays fp32 in effect. Each x row is split once per call into bf16 hi = rne(x)
 * and lo = rne(x - hi) (x - hi is exact; |x - hi - lo| <= 2^-18 |x|), and W is multiplied by
 * both: bf16 x bf16 products are exact in fp32, so y differs from the fp32 kernels only in
 * summation order and that 2^-18 (tests/unit/test_bf16mm.c bounds it against a double
 * reference; the transformers fixtures' 1e-4 of max|logit| holds on the bf16 checkpoints).
 *
 * AMX layout (no weight repacking): the tiles compute y^T = W x^T. A = 16 W rows x 32 k, loaded
 * straight from the row-major W with its row stride; B = x^T, packed once per call into the
 * VNNI pair layout [m block][k/2][16 m][2] (hi and lo); C = 16 W rows x 16 x rows, stored
 * transposed into y. A thread owns 32 W rows (two A tiles) and walks the x rows two 16-row
 * blocks at a time: 4 C tiles, 2 A, 2 B (hi, then lo, loaded into the same two) = 8 tiles.
 * A W row count not a multiple of 16 or a k tail (cols % 32) goes through a zero-padded copy.
 *
 * Batch invariance: an output element is its own chain of tile (or vdpbf16ps) accumulations
 * over k in a fixed order — hi then lo for each 32-k step — whatever else shares the tile, so
 * y's row i depends only on x's row i and W, not on how many rows share the call nor on the
 * thread count (threads split W's rows, never k). The same kernel runs for every row count,
 * decode's single rows included, so a sequence alone and in a batch gets the same bits. The
 * paths differ from each other and from matmul.c's fp32 kernels (summation order): one
 * backend uses one of them for all bf16 weights (struct roe_cpu.bf16, chosen at creation).
 *
 * AVX512-BF16 (same split): an output is two 16-lane vdpbf16ps chains over 32-column steps
 * (hi and lo separately, so one row has two independent chains), reduced as
 * reduce(acc_hi + acc_lo). Rows are dotted one W row after another for a lone x row (one
 * sequential read stream, as matmul.c's decode kernel), 4 W rows x 2 x rows otherwise.
 */
#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <string.h>
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "cpu_impl.h"

int roe_cpu_has_avx512bf16(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512bf16");
}

int roe_cpu_amx_tiles(unsigned edx_bits) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    /* CPUID.(7,0):EDX (bit 22 AMX-BF16, 24 AMX-TILE, 25 AMX-INT8); then Linux's opt-in to the 8 KiB
     * XTILEDATA state (ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18), refused by kernels
     * before 5.16 and where the state is disabled: then no AMX. Granted once per process. */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || (d & edx_bits) != edx_bits) return 0;
#ifdef __linux__
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
    return 0;
#endif
}

int roe_cpu_amx_usable(void) {
    static int cached = -1;
    if (cached < 0) cached = roe_cpu_has_avx512bf16() && roe_cpu_amx_tiles(1u << 22 | 1u << 24);
    return cached;
}

enum { KSTEP = 32 }; /* k per tile / vdpbf16ps step */

static int kpad_of(int cols) { return (cols + KSTEP - 1) / KSTEP * KSTEP; }

size_t roe_cpu_bf16_xscratch_bytes(int max_cols) {
    return (size_t)2 * ROE_CPU_BF16_MCHUNK * (size_t)kpad_of(max_cols) * sizeof(uint16_t);
}
size_t roe_cpu_bf16_wscratch_bytes(int max_cols) {
    return ((size_t)16 * (size_t)kpad_of(max_cols) + 2 * 16 * KSTEP) * sizeof(uint16_t);
}

/* Thread tid's share of bf16_wscratch: [16, kpad(max_cols)] (a short W block, or the packing's
 * split rows), then two [16, 32] k tails. */
static uint16_t *thread_wscratch(const struct roe_cpu *cpu, int tid) {
    return cpu->bf16_wscratch + (size_t)tid * (roe_cpu_bf16_wscratch_bytes(cpu->max_cols) / sizeof(uint16_t));
}

/* hi[c] = rne(x[c]), lo[c] = rne(x[c] - hi[c]) for c < cols, zeros up to kpad (a multiple of 32). */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void split_row(const float *x, int cols, int kpad,
                                                                                     uint16_t *hi, uint16_t *lo) {
    for (int c = 0; c < kpad; c += 16) {
        const __mmask16 m = c + 16 <= cols ? (__mmask16)0xffff : c < cols ? (__mmask16)((1u << (cols - c)) - 1) : 0;
        const __m512 v = _mm512_maskz_loadu_ps(m, x + c);
        const __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
        const __m512 hf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        const __m256i l = (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(v, hf));
        _mm256_storeu_si256((__m256i *)(void *)(hi + c), h);
        _mm256_storeu_si256((__m256i *)(void *)(lo + c), l);
    }
}

/* ---- AMX ---- */

/* The tile configuration (palette 1): byte 0 the palette, bytes 16-47 each tile's bytes per row
 * (uint16), 48-63 its rows; tiles 0-7 all 16 rows x 64 bytes. A constant: GCC 12 drops stores to
 * a local configuration before ldtilecfg (it does not see the instruction read them), leaving the
 * tiles unconfigured (#UD). */
static const _Alignas(64) uint8_t TILECFG[64] = {
    [0] = 1,   [16] = 64, [18] = 64, [20] = 64, [22] = 64, [24] = 64, [26] = 64, [28] = 64, [30] = 64,
    [48] = 16, [49] = 16, [50] = 16, [51] = 16, [52] = 16, [53] = 16, [54] = 16, [55] = 16,
};

__attribute__((target("amx-tile"))) static void amx_config(void) { _tile_loadconfig(&TILECFG); }

__attribute__((target("amx-tile"))) static void amx_release(void) { _tile_release(); }

/* x rows [m0, m0 + 16) as the B operand: hi/lo pairs at [(mb * kpairs + p) * 16 + j] (32-bit
 * units), mb = this block's index in the chunk. Rows >= n are left as they are (an earlier call's,
 * or the zeros of the allocation): they reach only C columns that are not stored. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void pack_block(const float *x, int n, int cols,
                                                                                      int kpad, int m0, int mb,
                                                                                      uint16_t *tmp, uint32_t *bh,
                                                                                      uint32_t *bl) {
    const int kpairs = kpad / 2;
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(16));
    uint16_t *th = tmp, *tl = tmp + kpad;
    for (int j = 0; j < 16 && m0 + j < n; j++) {
        split_row(x + (size_t)(m0 + j) * cols, cols, kpad, th, tl);
        uint32_t *dh = bh + (size_t)mb * kpairs * 16 + j, *dl = bl + (size_t)mb * kpairs * 16 + j;
        for (int p = 0; p < kpairs; p += 16) {
            _mm512_i32scatter_epi32(dh + (size_t)p * 16, idx, _mm512_loadu_si512(th + 2 * p), 4);
            _mm512_i32scatter_epi32(dl + (size_t)p * 16, idx, _mm512_loadu_si512(tl + 2 * p), 4);
        }
    }
}

/* One A operand: 16 W rows; k step kb reads data + kb * 32 (stride bytes) for kb < nfull, else
 * the 16 x 32 zero-padded tail. */
struct ablock {
    const uint16_t *data, *tail;
    size_t stride;
    int nfull;
};

/* C tiles 0..3 = (W block 0, m block 0), (W block 1, m block 0), (W 0, m 1), (W 1, m 1). */
__attribute__((target("amx-tile,amx-bf16"))) static void amx_tile_loop(const struct ablock *a0, const struct ablock *a1,
                                                                       const uint16_t *bh0, const uint16_t *bl0,
                                                                       const uint16_t *bh1, const uint16_t *bl1, int nk) {
    const uint16_t *const b0[2] = {bh0, bl0}, *const b1[2] = {bh1, bl1}; /* B: x rows 0-15, 16-31 */
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int kb = 0; kb < nk; kb++) {
        if (kb < a0->nfull) _tile_loadd(4, a0->data + (size_t)kb * KSTEP, a0->stride);
        else _tile_loadd(4, a0->tail, 64);
        if (a1) {
            if (kb < a1->nfull) _tile_loadd(5, a1->data + (size_t)kb * KSTEP, a1->stride);
            else _tile_loadd(5, a1->tail, 64);
        }
        const size_t off = (size_t)kb * 16 * 32; /* 16 pairs x 16 m x 2 */
        for (int part = 0; part < 2; part++) {  /* hi, then lo: each output's fixed order */
            _tile_loadd(6, b0[part] + off, 64);
            if (b1[part]) _tile_loadd(7, b1[part] + off, 64);
            _tile_dpbf16ps(0, 4, 6);
            if (a1) _tile_dpbf16ps(1, 5, 6);
            if (b1[part]) _tile_dpbf16ps(2, 4, 7);
            if (a1 && b1[part]) _tile_dpbf16ps(3, 5, 7);
        }
    }
}

__attribute__((target("amx-tile"))) static void amx_store(float c[4][256]) {
    _tile_stored(0, c[0], 64);
    _tile_stored(1, c[1], 64);
    _tile_stored(2, c[2], 64);
    _tile_stored(3, c[3], 64);
}

/* The A operand of W rows [r0, r0 + 16): in place, or (a short last block) a zero-padded copy
 * in wpad; a k tail copied zero-padded into tail (16 x 32). */
static struct ablock ablock_of(const struct roe_mat *w, int r0, int kpad, uint16_t *wpad, uint16_t *tail) {
    const int rows = w->rows, cols = w->cols, nr = rows - r0 < 16 ? rows - r0 : 16;
    const uint16_t *src = (const uint16_t *)w->data + (size_t)r0 * cols;
    /* cppcheck 2.10 takes the ternary that defines nr for "always 16": the suppression */
    // cppcheck-suppress knownConditionTrueFalse
    if (nr < 16) {
        memset(wpad, 0, (size_t)16 * kpad * sizeof(uint16_t));
        for (int i = 0; i < nr; i++) memcpy(wpad + (size_t)i * kpad, src + (size_t)i * cols, (size_t)cols * sizeof(uint16_t));
        // cppcheck-suppress unreadVariable ; cppcheck 2.10 misreads a returned compound literal
        return (struct ablock){.data = wpad, .tail = NULL, .stride = (size_t)kpad * sizeof(uint16_t), .nfull = kpad / KSTEP};
    }
    const struct ablock a = {.data = src, .tail = tail, .stride = (size_t)cols * sizeof(uint16_t), .nfull = cols / KSTEP};
    if (cols % KSTEP) {
        const int k0 = cols / KSTEP * KSTEP, r = cols - k0;
        memset(tail, 0, 16 * KSTEP * sizeof(uint16_t));
        for (int i = 0; i < 16; i++) memcpy(tail + i * KSTEP, src + (size_t)i * cols + k0, (size_t)r * sizeof(uint16_t));
    }
    return a;
}

/* This thread's share (threads split W's 32-row pairs) of y for x rows [m0, m0 + nm) of the
 * packed chunk. */
static void amx_rows(struct roe_cpu *cpu, const struct roe_mat *w, float *y, int m0, int nm, const uint16_t *bh,
                     const uint16_t *bl, int tid, int nth) {
    const int rows = w->rows, kpad = kpad_of(w->cols), nk = kpad / KSTEP, kpairs = kpad / 2;
    const int npairs = (rows + 31) / 32, nmb = (nm + 15) / 16;
    const int p0 = (int)((long)npairs * tid / nth), p1 = (int)((long)npairs * (tid + 1) / nth);
    uint16_t *wpad = thread_wscratch(cpu, tid);
    uint16_t *tail0 = wpad + (size_t)16 * kpad_of(cpu->max_cols), *tail1 = tail0 + 16 * KSTEP;
    _Alignas(64) float c[4][256];
    for (int p = p0; p < p1; p++) {
        const int r0 = p * 32, two = r0 + 16 < rows;
        /* only the last pair can be short, so one wpad serves both blocks (the second is the short one
         * when the first is whole) */
        const struct ablock a0 = ablock_of(w, r0, kpad, wpad, tail0);
        struct ablock a1s;
        if (two) a1s = ablock_of(w, r0 + 16, kpad, wpad, tail1);
        for (int mb = 0; mb < nmb; mb += 2) {
            const int m2 = mb + 1 < nmb;
            const uint16_t *bh0 = bh + (size_t)mb * kpairs * 32, *bl0 = bl + (size_t)mb * kpairs * 32;
            amx_tile_loop(&a0, two ? &a1s : NULL, bh0, bl0, m2 ? bh0 + (size_t)kpairs * 32 : NULL,
                          m2 ? bl0 + (size_t)kpairs * 32 : NULL, nk);
            amx_store(c);
            for (int t = 0; t < 4; t++) {
                const int wb = t & 1, mm = mb + (t >> 1);
                if ((wb && !two) || (t >> 1 && !m2)) continue;
                const int rb = r0 + 16 * wb, nr = rows - rb < 16 ? rows - rb : 16;
                const int mbase = mm * 16, nj = nm - mbase < 16 ? nm - mbase : 16;
                for (int j = 0; j < nj; j++) {
                    float *yj = y + (size_t)(m0 + mbase + j) * rows + rb;
                    for (int i = 0; i < nr; i++) yj[i] = c[t][i * 16 + j];
                }
            }
        }
    }
}

/* In a team (nth > 1) every thread runs this; the barriers are the team's. Alone (nth = 1) no
 * barrier, so a call from inside some other parallel region cannot wait on that region's team. */
static void amx_body(struct roe_cpu *cpu, const float *x, int n, const struct roe_mat *w, float *y, int tid, int nth) {
    const int cols = w->cols, kpad = kpad_of(cols);
    uint16_t *bh = cpu->bf16_xscratch, *bl = bh + (size_t)ROE_CPU_BF16_MCHUNK * kpad;
    uint16_t *tmp = thread_wscratch(cpu, tid);
    amx_config();
    for (int m0 = 0; m0 < n; m0 += ROE_CPU_BF16_MCHUNK) {
        const int nm = n - m0 < ROE_CPU_BF16_MCHUNK ? n - m0 : ROE_CPU_BF16_MCHUNK, nmb = (nm + 15) / 16;
        for (int mb = tid; mb < nmb; mb += nth) /* the split rows in tmp, this thread's wpad (idle now) */
            pack_block(x, n, cols, kpad, m0 + mb * 16, mb, tmp, (uint32_t *)(void *)bh, (uint32_t *)(void *)bl);
        if (nth > 1) {
#pragma omp barrier
        }
        amx_rows(cpu, w, y, m0, nm, bh, bl, tid, nth);
        if (nth > 1) {
#pragma omp barrier
        }
    }
    amx_release();
}

/* ---- AVX512-BF16 ---- */

__attribute__((target("avx512f,avx512bw"))) static inline __m512i loadw(const uint16_t *w, int c, int cols) {
    if (c + KSTEP <= cols) return _mm512_loadu_si512(w + c);
    return _mm512_maskz_loadu_epi16((__mmask32)((1ull << (cols - c)) - 1), w + c);
}

/* One W row against one split x row: two chains (hi, lo) over 32-column steps. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static float dp_1(const uint16_t *xh, const uint16_t *xl,
                                                                        const uint16_t *w, int cols) {
    __m512 ah = _mm512_setzero_ps(), al = ah;
    for (int c = 0; c < cols; c += KSTEP) {
        const __m512bh wv = (__m512bh)loadw(w, c, cols);
        ah = _mm512_dpbf16_ps(ah, (__m512bh)_mm512_loadu_si512(xh + c), wv);
        al = _mm512_dpbf16_ps(al, (__m512bh)_mm512_loadu_si512(xl + c), wv);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(ah, al));
}

/* Four W rows against two split x rows: sixteen chains, each dp_1's. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void dp_4x2(const uint16_t *xh0, const uint16_t *xl0,
                                                                         const uint16_t *xh1, const uint16_t *xl1,
                                                                         const uint16_t *const w[4], int cols,
                                                                         float o0[4], float o1[4]) {
    __m512 h0[4], l0[4], h1[4], l1[4];
    for (int k = 0; k < 4; k++) h0[k] = l0[k] = h1[k] = l1[k] = _mm512_setzero_ps();
    for (int c = 0; c < cols; c += KSTEP) {
        const __m512bh a = (__m512bh)_mm512_loadu_si512(xh0 + c), b = (__m512bh)_mm512_loadu_si512(xl0 + c);
        const __m512bh u = (__m512bh)_mm512_loadu_si512(xh1 + c), v = (__m512bh)_mm512_loadu_si512(xl1 + c);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const __m512bh wv = (__m512bh)loadw(w[k], c, cols);
            h0[k] = _mm512_dpbf16_ps(h0[k], a, wv), l0[k] = _mm512_dpbf16_ps(l0[k], b, wv);
            h1[k] = _mm512_dpbf16_ps(h1[k], u, wv), l1[k] = _mm512_dpbf16_ps(l1[k], v, wv);
        }
    }
    for (int k = 0; k < 4; k++) {
        o0[k] = _mm512_reduce_add_ps(_mm512_add_ps(h0[k], l0[k]));
        o1[k] = _mm512_reduce_add_ps(_mm512_add_ps(h1[k], l1[k]));
    }
}

static void dp_block(const struct roe_mat *w, float *y, int m0, int nm, const uint16_t *xs, int kpad, int b) {
    const int rows = w->rows, cols = w->cols, r0 = b * 4, nr = rows - r0 < 4 ? rows - r0 : 4;
    const uint16_t *wr[4];
    for (int k = 0; k < 4; k++) /* a short last block repeats its last row; the extra outputs are discarded */
        // cppcheck-suppress knownConditionTrueFalse
        wr[k] = (const uint16_t *)w->data + (size_t)(r0 + (k < nr ? k : nr - 1)) * cols;
    int i = 0;
    for (; i + 2 <= nm; i += 2) {
        float o0[4], o1[4];
        const uint16_t *x0 = xs + (size_t)(2 * i) * kpad, *x1 = x0 + 2 * (size_t)kpad;
        dp_4x2(x0, x0 + kpad, x1, x1 + kpad, wr, cols, o0, o1);
        float *y0 = y + (size_t)(m0 + i) * rows + r0, *y1 = y0 + rows;
        for (int k = 0; k < nr; k++) y0[k] = o0[k], y1[k] = o1[k];
    }
    if (i < nm) {
        const uint16_t *x0 = xs + (size_t)(2 * i) * kpad;
        float *y0 = y + (size_t)(m0 + i) * rows + r0;
        for (int k = 0; k < nr; k++) y0[k] = dp_1(x0, x0 + kpad, wr[k], cols);
    }
}

/* ---- entry ---- */

void roe_cpu_matmul_bf16(struct roe_cpu *cpu, const float *x, int n, const struct roe_mat *w, float *y) {
    const size_t work = (size_t)n * (size_t)w->rows * (size_t)w->cols;
    const int par = work >= ((size_t)1 << 18) && w->rows > 32; /* as matmul.c: small products stay serial */
    if (cpu->bf16 == ROE_CPU_BF16_AMX) {
        if (par) {
#pragma omp parallel num_threads(cpu->n_threads)
            amx_body(cpu, x, n, w, y, omp_get_thread_num(), omp_get_num_threads());
        } else amx_body(cpu, x, n, w, y, 0, 1);
        return;
    }
    /* AVX512-BF16: the chunk's rows split as [row][hi kpad, lo kpad], then W's 4-row blocks across threads */
    const int cols = w->cols, kpad = kpad_of(cols), n_blocks = (w->rows + 3) / 4;
    uint16_t *xs = cpu->bf16_xscratch;
    for (int m0 = 0; m0 < n; m0 += ROE_CPU_BF16_MCHUNK) {
        const int nm = n - m0 < ROE_CPU_BF16_MCHUNK ? n - m0 : ROE_CPU_BF16_MCHUNK;
        for (int i = 0; i < nm; i++)
            split_row(x + (size_t)(m0 + i) * cols, cols, kpad, xs + (size_t)(2 * i) * kpad, xs + (size_t)(2 * i + 1) * kpad);
        if (par) {
#pragma omp parallel for schedule(static) num_threads(cpu->n_threads)
            for (int b = 0; b < n_blocks; b++) dp_block(w, y, m0, nm, xs, kpad, b);
        } else
            for (int b = 0; b < n_blocks; b++) dp_block(w, y, m0, nm, xs, kpad, b);
    }
}
