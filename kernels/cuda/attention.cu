/*
 * attention.cu — grouped-query attention of each row against its sequence's clean KV
 * history [hist_begin, hist_end) plus its own current K/V (struct roe_attn_args; the
 * same semantics as kernels/cpu/attention.c), for prefill and decode rows alike. The history is
 * read through the rows' block tables (struct roe_kv_pages, staged with the other index arrays).
 *
 * One block per (head, row), 4 warps. The span (history, then the row itself) is walked
 * in tiles of TILE positions with an online softmax (running max m, running sum l, output
 * accumulator rescaled by exp(m_old - m_new) per tile): scores of a tile by the warps
 * (one position per warp at a time, lanes over head_dim), then each thread updates the
 * output dimensions it owns. Any context length works with TILE floats of shared memory.
 * A sink logit per head (gpt-oss; NULL: none) joins the softmax after the last tile: the
 * running max and sum take it in, the output is rescaled. Numerics: fp32 throughout; the order
 * of the sums differs from the CPU's (tolerance 1e-4 normalised). K/V of a kv head are re-read by each query head of its group (from L2).
 */
#include <assert.h>

#include "cuda_impl.h"

enum { ROE_ATT_TILE = 64, ROE_ATT_THREADS = 128, ROE_ATT_MAX_HD = 256 };

__global__ void roe_k_attention(const float *__restrict__ q, const float *__restrict__ k_self,
                                const float *__restrict__ v_self, const void *__restrict__ k_cache,
                                const void *__restrict__ v_cache, struct roe_kv_pages pg, const int *__restrict__ hbeg,
                                const int *__restrict__ hend, int n_heads, int n_kv_heads, int head_dim,
                                float scale, const __nv_bfloat16 *__restrict__ sinks, float *__restrict__ out) {
    __shared__ float qs[ROE_ATT_MAX_HD];
    __shared__ float s[ROE_ATT_TILE];
    const int h = blockIdx.x, r = blockIdx.y;
    const int group = n_heads / n_kv_heads, kvh = h / group;
    const int qd = n_heads * head_dim, kd = n_kv_heads * head_dim;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = ROE_ATT_THREADS / 32;
    const int begin = hbeg[r], len = hend[r] - begin; /* history positions; then the row itself */
    const int total = len + 1;
    const size_t hoff = (size_t)kvh * head_dim; /* the kv head's columns in a cached row */
    const float *ks = k_self + (size_t)r * kd + (size_t)kvh * head_dim;
    const float *vs = v_self + (size_t)r * kd + (size_t)kvh * head_dim;
    for (int d = threadIdx.x; d < head_dim; d += ROE_ATT_THREADS) qs[d] = q[(size_t)r * qd + (size_t)h * head_dim + d];
    /* each thread owns output dimensions d = threadIdx.x + i * ROE_ATT_THREADS */
    float acc[ROE_ATT_MAX_HD / ROE_ATT_THREADS] = {0.0f, 0.0f};
    float m = -INFINITY, l = 0.0f;
    __syncthreads();
    for (int t0 = 0; t0 < total; t0 += ROE_ATT_TILE) {
        const int cnt = min(ROE_ATT_TILE, total - t0);
        for (int i = warp; i < cnt; i += nwarps) {
            const int j = t0 + i;
            const size_t at = j < len ? roe_cuda_page_off(&pg, r, begin + j, kd) + hoff : 0;
            float dot = 0.0f;
            for (int d = lane; d < head_dim; d += 32)
                dot += qs[d] * (j < len ? roe_cuda_kv_ld(k_cache, pg.dtype, at + d) : ks[d]);
            for (int off = 16; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
            if (lane == 0) s[i] = dot * scale;
        }
        __syncthreads();
        const float corr = roe_cuda_softmax_tile(s, cnt, &m, &l);
        for (int a = 0; a < ROE_ATT_MAX_HD / ROE_ATT_THREADS; a++) {
            const int d = threadIdx.x + a * ROE_ATT_THREADS;
            if (d >= head_dim) break;
            float o = acc[a] * corr;
            for (int i = 0; i < cnt; i++) {
                const int j = t0 + i;
                o += s[i] * (j < len ? roe_cuda_kv_ld(v_cache, pg.dtype, roe_cuda_page_off(&pg, r, begin + j, kd) + hoff + d)
                                     : vs[d]);
            }
            acc[a] = o;
        }
        __syncthreads(); /* s is rewritten by the next tile */
    }
    float fin = 1.0f; /* the sink: one more logit in the denominator, none in the output */
    if (sinks) {
        const float z = __bfloat162float(sinks[h]), m_new = fmaxf(m, z), corr = expf(m - m_new);
        l = l * corr + expf(z - m_new);
        fin = corr;
    }
    const float inv = fin / l;
    for (int a = 0; a < ROE_ATT_MAX_HD / ROE_ATT_THREADS; a++) {
        const int d = threadIdx.x + a * ROE_ATT_THREADS;
        if (d < head_dim) out[(size_t)r * qd + (size_t)h * head_dim + d] = acc[a] * inv;
    }
}

void roe_cuda_attention(roe_backend *be, const struct roe_attn_args *a) {
    struct roe_cuda *cu = roe_cuda_of(be);
    const int n = a->n_rows;
    if (n <= 0) return;
    assert(a->head_dim <= ROE_ATT_MAX_HD && a->n_heads % a->n_kv_heads == 0 && n <= 65535);
    const void *src[3] = {a->pages.table, a->hist_begin, a->hist_end};
    size_t bytes[3] = {(size_t)n * (size_t)a->pages.stride * sizeof(int32_t), (size_t)n * sizeof(int),
                       (size_t)n * sizeof(int)};
    void *dev[3];
    roe_cuda_stage(cu, 3, src, bytes, dev);
    struct roe_kv_pages pg = a->pages;
    pg.table = (const int32_t *)dev[0];
    dim3 grid((unsigned)a->n_heads, (unsigned)n);
    roe_k_attention<<<grid, ROE_ATT_THREADS, 0, cu->stream>>>(
        a->q, a->k_self, a->v_self, a->k_cache, a->v_cache, pg, (const int *)dev[1], (const int *)dev[2], a->n_heads, a->n_kv_heads, a->head_dim, a->scale,
        a->sinks ? (const __nv_bfloat16 *)a->sinks->data : NULL, a->out);
    ROE_CUDA_LAUNCHED(cu, "attention");
}
