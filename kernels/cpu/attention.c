/*
 * attention.c — causal grouped-query attention of each row against its sequence's clean
 * KV history plus its own current K/V (ROE.md: the clean cache), read through the rows' block
 * tables (struct roe_kv_pages: the same arithmetic whatever the blocks).
 *
 * For row r, head h (kv head h / (n_heads / n_kv_heads)):
 *   s_j = scale * q . k_j   for history j in [hist_begin, hist_end), then the row itself
 *   p   = softmax(s)        (fp32, max-subtracted; with a sink logit z_h (gpt-oss) the max and
 *                            the denominator include it: p_j = e^(s_j - m) / (sum e^(s - m) + e^(z_h - m)))
 *   out = sum_j p_j v_j
 * A clean row whose own K/V are also in the cache gives exactly what a full causal
 * attention over [0, pos] gives. Work splits over (row, head) pairs; each pair's
 * arithmetic is fixed, so results are batch- and thread-invariant.
 */
#include <math.h>
#include <omp.h>

#include "cpu_impl.h"

/* The softmax over a pair's history scores s[0, len) (their max: mx): the row's own score goes to
 * s[len], every s[j] becomes e^(s_j - m), and the return is 1 / the denominator (the sink's term
 * included). Shared by every path: the same bits whatever computed the history's scores. */
static float softmax_tail(const struct roe_attn_args *a, int r, int h, int kvh, const float *q, float *s, int len,
                          float mx) {
    const int hd = a->head_dim, kd = a->n_kv_heads * hd;
    s[len] = roe_cpu_dot_f32(q, a->k_self + (size_t)r * kd + (size_t)kvh * hd, hd) * a->scale;
    if (s[len] > mx) mx = s[len];
    const float sink = a->sinks ? roe_mat_get(a->sinks, (size_t)h) : 0.0f;
    if (a->sinks && sink > mx) mx = sink;
    float sum = 0.0f;
    for (int j = 0; j <= len; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    if (a->sinks) sum += expf(sink - mx);
    return 1.0f / sum;
}

/* One (row, head) pair of the attention; `s` is this thread's [max_ctx] score scratch. */
static void attend_pair(const struct roe_attn_args *a, int p, float *s) {
    const int hd = a->head_dim, nh = a->n_heads, group = a->n_heads / a->n_kv_heads;
    const int qd = nh * hd, kd = a->n_kv_heads * hd;
    const int r = p / nh, h = p % nh, kvh = h / group;
    const int begin = a->hist_begin[r], end = a->hist_end[r], len = end - begin;
    const float *q = a->q + (size_t)r * qd + (size_t)h * hd;
    const int bf16 = a->pages.dtype == ROE_DTYPE_BF16, fp8 = a->pages.dtype == ROE_DTYPE_F8_E4M3;
    float mx = -INFINITY;
    for (int j = 0; j < len; j++) {
        const int64_t at = roe_kv_page_off(&a->pages, r, begin + j, kd) + (int64_t)kvh * hd;
        s[j] = (bf16  ? roe_cpu_dot_bf16(q, (const uint16_t *)a->k_cache + at, hd)
                : fp8 ? roe_cpu_dot_e4m3(q, (const uint8_t *)a->k_cache + at, hd)
                      : roe_cpu_dot_f32(q, (const float *)a->k_cache + at, hd)) * a->scale;
        if (s[j] > mx) mx = s[j];
    }
    const float inv = softmax_tail(a, r, h, kvh, q, s, len, mx);
    float *o = a->out + (size_t)r * qd + (size_t)h * hd;
    for (int d = 0; d < hd; d++) o[d] = 0.0f;
    for (int j = 0; j <= len; j++) {
        const float pj = s[j] * inv;
        const int64_t at = j < len ? roe_kv_page_off(&a->pages, r, begin + j, kd) + (int64_t)kvh * hd : 0;
        if (j < len && bf16) { /* widened as read: the same products as a widened copy */
            const uint16_t *v = (const uint16_t *)a->v_cache + at;
            for (int d = 0; d < hd; d++) o[d] += pj * roe_bf16_to_f32(v[d]);
            continue;
        }
        if (j < len && fp8) {
            const uint8_t *v = (const uint8_t *)a->v_cache + at;
            for (int d = 0; d < hd; d++) o[d] += pj * roe_cpu_e4m3(v[d]);
            continue;
        }
        const float *v = j < len ? (const float *)a->v_cache + at : a->v_self + (size_t)r * kd + (size_t)kvh * hd;
        for (int d = 0; d < hd; d++) o[d] += pj * v[d];
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

/* The AVX2 path of attend_pair for f32 and bf16 caches, head_dim a multiple of 8: the same
 * arithmetic, so the same bits. A score's 8 partial sums are the 8 lanes of one vector, each a
 * multiply then an add (no FMA: "avx2" without "fma"), reduced in roe_cpu_dot_f32's order; the
 * output is o[d] += p_j v_j[d] over j in order, 8 d at a time; softmax is the portable code's.
 * Positions are walked block by block (no division per position), K and V widened from bf16 in
 * registers. */
__attribute__((target("avx2"))) static inline __m256 load8_avx2(const void *base, int64_t at, int bf16) {
    if (!bf16) return _mm256_loadu_ps((const float *)base + at);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)base + at));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2"))) static inline float hsum8_avx2(__m256 acc) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)); /* a_i + a_(i+4) */
    const __m128 h = _mm_add_ps(s, _mm_shuffle_ps(s, s, _MM_SHUFFLE(2, 3, 0, 1)));           /* s0+s1, s2+s3 */
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehl_ps(h, h)));
}

/* Scores of positions [0, len) of the row's history (kept from `begin` through its block table),
 * each 8 lanes of partial sums as roe_cpu_dot_f32 keeps them, 4 positions side by side; returns
 * their max. bf16 is a constant where this is inlined (no branch in the loops). */
__attribute__((target("avx2"), always_inline)) static inline float scores_avx2(
    const struct roe_attn_args *a, const int32_t *table, int begin, int len, int64_t col, const float *q, float *s,
    int bf16) {
    const int hd = a->head_dim, kd = a->n_kv_heads * hd, bs = a->pages.block_size;
    float mx = -INFINITY;
    for (int j = 0; j < len;) { /* the positions of one block at a time */
        const int pos = begin + j, in = pos % bs, n = bs - in < len - j ? bs - in : len - j;
        int64_t at = (int64_t)table[pos / bs] * a->pages.block_elems + (int64_t)in * kd + col;
        int e = 0;
        for (; e + 4 <= n; e += 4, j += 4, at += 4 * (int64_t)kd) {
            __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
            for (int i = 0; i < hd; i += 8) {
                const __m256 qi = _mm256_loadu_ps(q + i);
                c0 = _mm256_add_ps(c0, _mm256_mul_ps(qi, load8_avx2(a->k_cache, at + i, bf16)));
                c1 = _mm256_add_ps(c1, _mm256_mul_ps(qi, load8_avx2(a->k_cache, at + kd + i, bf16)));
                c2 = _mm256_add_ps(c2, _mm256_mul_ps(qi, load8_avx2(a->k_cache, at + 2 * kd + i, bf16)));
                c3 = _mm256_add_ps(c3, _mm256_mul_ps(qi, load8_avx2(a->k_cache, at + 3 * kd + i, bf16)));
            }
            s[j] = hsum8_avx2(c0) * a->scale, s[j + 1] = hsum8_avx2(c1) * a->scale;
            s[j + 2] = hsum8_avx2(c2) * a->scale, s[j + 3] = hsum8_avx2(c3) * a->scale;
            for (int t = 0; t < 4; t++)
                if (s[j + t] > mx) mx = s[j + t];
        }
        for (; e < n; e++, j++, at += kd) {
            __m256 acc = _mm256_setzero_ps();
            for (int i = 0; i < hd; i += 8)
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(q + i), load8_avx2(a->k_cache, at + i, bf16)));
            s[j] = hsum8_avx2(acc) * a->scale;
            if (s[j] > mx) mx = s[j];
        }
    }
    return mx;
}

/* o[0, 8 nc) = sum over the history's positions j, in order, of (s[j] inv) v_j[col, col + 8 nc):
 * nc (1 or 8) accumulators held in registers over the whole history. */
__attribute__((target("avx2"), always_inline)) static inline void values_avx2(
    const struct roe_attn_args *a, const int32_t *table, int begin, int len, int64_t col, const float *s, float inv,
    float *o, int nc, int bf16) {
    const int kd = a->n_kv_heads * a->head_dim, bs = a->pages.block_size;
    __m256 acc[8];
    for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();
    for (int j = 0; j < len;) {
        const int pos = begin + j, in = pos % bs, n = bs - in < len - j ? bs - in : len - j;
        int64_t at = (int64_t)table[pos / bs] * a->pages.block_elems + (int64_t)in * kd + col;
        for (int e = 0; e < n; e++, j++, at += kd) {
            const __m256 pj = _mm256_set1_ps(s[j] * inv);
            for (int c = 0; c < nc; c++)
                acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(pj, load8_avx2(a->v_cache, at + 8 * c, bf16)));
        }
    }
    for (int c = 0; c < nc; c++) _mm256_storeu_ps(o + 8 * c, acc[c]);
}

/* values_avx2 for a bf16 cache, 16 columns a chunk (nc chunks, 1 or 4): one 256-bit load holds
 * 16 values, widened as the even ones (shifted up) and the odd ones (masked), each column still
 * summed over j in order in its own lane, interleaved back at the end (the same bits). */
__attribute__((target("avx2"), always_inline)) static inline void values_bf16x16_avx2(
    const struct roe_attn_args *a, const int32_t *table, int begin, int len, int64_t col, const float *s, float inv,
    float *o, int nc) {
    const int kd = a->n_kv_heads * a->head_dim, bs = a->pages.block_size;
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256 ev[4], od[4];
    for (int c = 0; c < nc; c++) ev[c] = od[c] = _mm256_setzero_ps();
    for (int j = 0; j < len;) {
        const int pos = begin + j, in = pos % bs, n = bs - in < len - j ? bs - in : len - j;
        int64_t at = (int64_t)table[pos / bs] * a->pages.block_elems + (int64_t)in * kd + col;
        for (int e = 0; e < n; e++, j++, at += kd) {
            const __m256 pj = _mm256_set1_ps(s[j] * inv);
            for (int c = 0; c < nc; c++) {
                const __m256i u = _mm256_loadu_si256((const __m256i *)((const uint16_t *)a->v_cache + at + 16 * c));
                ev[c] = _mm256_add_ps(ev[c], _mm256_mul_ps(pj, _mm256_castsi256_ps(_mm256_slli_epi32(u, 16))));
                od[c] = _mm256_add_ps(od[c], _mm256_mul_ps(pj, _mm256_castsi256_ps(_mm256_and_si256(u, hi))));
            }
        }
    }
    for (int c = 0; c < nc; c++) {
        const __m256 lo = _mm256_unpacklo_ps(ev[c], od[c]), up = _mm256_unpackhi_ps(ev[c], od[c]);
        _mm256_storeu_ps(o + 16 * c, _mm256_permute2f128_ps(lo, up, 0x20));
        _mm256_storeu_ps(o + 16 * c + 8, _mm256_permute2f128_ps(lo, up, 0x31));
    }
}

__attribute__((target("avx2"))) static void values_bf16x16(const struct roe_attn_args *a, const int32_t *table,
                                                           int begin, int len, int64_t col, const float *s,
                                                           float inv, float *o, int nc) {
    if (nc == 4) values_bf16x16_avx2(a, table, begin, len, col, s, inv, o, 4);
    else values_bf16x16_avx2(a, table, begin, len, col, s, inv, o, 1);
}

__attribute__((target("avx2"))) static void values_f32_avx2(const struct roe_attn_args *a, const int32_t *table,
                                                            int begin, int len, int64_t col, const float *s,
                                                            float inv, float *o, int nc) {
    if (nc == 8) values_avx2(a, table, begin, len, col, s, inv, o, 8, 0);
    else values_avx2(a, table, begin, len, col, s, inv, o, 1, 0);
}
__attribute__((target("avx2"))) static void values_bf16_avx2(const struct roe_attn_args *a, const int32_t *table,
                                                             int begin, int len, int64_t col, const float *s,
                                                             float inv, float *o, int nc) {
    if (nc == 8) values_avx2(a, table, begin, len, col, s, inv, o, 8, 1);
    else values_avx2(a, table, begin, len, col, s, inv, o, 1, 1);
}

__attribute__((target("avx2"))) static void attend_pair_avx2(const struct roe_attn_args *a, int p, float *s) {
    const int hd = a->head_dim, nh = a->n_heads, group = a->n_heads / a->n_kv_heads;
    const int qd = nh * hd, kd = a->n_kv_heads * hd;
    const int r = p / nh, h = p % nh, kvh = h / group;
    const int begin = a->hist_begin[r], end = a->hist_end[r], len = end - begin;
    const float *q = a->q + (size_t)r * qd + (size_t)h * hd;
    const int bf16 = a->pages.dtype == ROE_DTYPE_BF16;
    const int32_t *table = a->pages.table + (size_t)r * (size_t)a->pages.stride;
    const int64_t col = (int64_t)kvh * hd;
    float mx = bf16 ? scores_avx2(a, table, begin, len, col, q, s, 1) : scores_avx2(a, table, begin, len, col, q, s, 0);
    const float inv = softmax_tail(a, r, h, kvh, q, s, len, mx);
    float *o = a->out + (size_t)r * qd + (size_t)h * hd;
    for (int d = 0; d < hd;) { /* 64 columns a pass while they last, then 16 (bf16), then 8 */
        if (bf16 && hd - d >= 16) {
            const int nc = hd - d >= 64 ? 4 : 1;
            values_bf16x16(a, table, begin, len, col + d, s, inv, o + d, nc);
            d += 16 * nc;
            continue;
        }
        const int nc = hd - d >= 64 ? 8 : 1;
        (bf16 ? values_bf16_avx2 : values_f32_avx2)(a, table, begin, len, col + d, s, inv, o + d, nc);
        d += 8 * nc;
    }
    const float pj = s[len] * inv, *v = a->v_self + (size_t)r * kd + (size_t)kvh * hd;
    for (int d = 0; d < hd; d++) o[d] += pj * v[d];
}
#endif

/* One pair on the best path this backend runs. */
static void attend(const struct roe_cpu *cpu, const struct roe_attn_args *a, int p, float *s) {
#if defined(__x86_64__)
    if (cpu->isa != ROE_CPU_ISA_PORTABLE && a->head_dim % 8 == 0 &&
        (a->pages.dtype == ROE_DTYPE_F32 || a->pages.dtype == ROE_DTYPE_BF16)) {
        attend_pair_avx2(a, p, s);
        return;
    }
#endif
    (void)cpu;
    attend_pair(a, p, s);
}

void roe_cpu_attention(roe_backend *be, const struct roe_attn_args *a) {
    struct roe_cpu *cpu = roe_cpu_of(be);
    const int pairs = a->n_rows * a->n_heads;
    size_t work = 0; /* multiply-adds, to decide whether a team pays off */
    for (int r = 0; r < a->n_rows; r++)
        work += (size_t)(a->hist_end[r] - a->hist_begin[r] + 1) * a->n_heads * a->head_dim;
    if (pairs > 1 && work >= ((size_t)1 << 16)) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(cpu->n_threads)
        for (int p = 0; p < pairs; p++)
            attend(cpu, a, p, cpu->ascratch + (size_t)omp_get_thread_num() * (size_t)cpu->max_ctx);
    } else
        for (int p = 0; p < pairs; p++) attend(cpu, a, p, cpu->ascratch);
}
