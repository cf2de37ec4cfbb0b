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
    const float inv = 1.0f / sum;
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

void roe_cpu_attention(roe_backend *be, const struct roe_attn_args *a) {
    struct roe_cpu *cpu = roe_cpu_of(be);
    const int pairs = a->n_rows * a->n_heads;
    size_t work = 0; /* multiply-adds, to decide whether a team pays off */
    for (int r = 0; r < a->n_rows; r++)
        work += (size_t)(a->hist_end[r] - a->hist_begin[r] + 1) * a->n_heads * a->head_dim;
    if (pairs > 1 && work >= ((size_t)1 << 16)) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(cpu->n_threads)
        for (int p = 0; p < pairs; p++)
            attend_pair(a, p, cpu->ascratch + (size_t)omp_get_thread_num() * (size_t)cpu->max_ctx);
    } else
        for (int p = 0; p < pairs; p++) attend_pair(a, p, cpu->ascratch);
}
