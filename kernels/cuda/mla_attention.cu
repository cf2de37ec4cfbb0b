/*
 * mla_attention.cu — multi-head latent attention with absorbed up-projections (struct
 * roe_mla_args; the same semantics as kernels/cpu/mla.c): every head of a row attends the cached
 * [latent | roped key] vectors of its sequence's history [hist_begin, hist_end), then its own;
 * the history through the rows' block tables (struct roe_kv_pages).
 *
 * One block per (head, row), 4 warps, as attention.cu: the span is walked in tiles of TILE
 * positions with an online softmax (running max, running sum, the accumulator rescaled per tile);
 * the warps score a tile (lanes over the latent + rope width of the query, held in shared memory),
 * then each thread accumulates the latent dimensions it owns. Numerics: fp32 throughout; the sums'
 * order differs from the CPU's (tolerance 1e-4 normalised). The cached vectors are shared by every
 * head of a row and re-read by each head's block (from L2).
 *
 * Written and compiled, NOT YET RUN ON A GPU (docs/GPU.md).
 */
#include <assert.h>

#include "cuda_impl.h"

enum { ROE_MLA_TILE = 64, ROE_MLA_THREADS = 128, ROE_MLA_MAX_LATENT = 1024 };

__global__ void roe_k_mla_attention(const float *__restrict__ q_lat, const float *__restrict__ q_rope,
                                    int q_rope_stride, const float *__restrict__ kv_self,
                                    const void *__restrict__ kv_cache, struct roe_kv_pages pg,
                                    const int *__restrict__ hbeg,
                                    const int *__restrict__ hend, int n_heads, int latent, int rope_dim,
                                    float scale, float *__restrict__ out) {
    extern __shared__ float sh[]; /* the query [latent + rope_dim], then a tile's scores [TILE] */
    float *qs = sh, *s = sh + latent + rope_dim;
    const int h = blockIdx.x, r = blockIdx.y, W = latent + rope_dim;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = ROE_MLA_THREADS / 32;
    const size_t rh = (size_t)r * n_heads + h;
    const int begin = hbeg[r], len = hend[r] - begin, total = len + 1;
    for (int d = threadIdx.x; d < latent; d += ROE_MLA_THREADS) qs[d] = q_lat[rh * latent + d];
    for (int d = threadIdx.x; d < rope_dim; d += ROE_MLA_THREADS) qs[latent + d] = q_rope[rh * q_rope_stride + d];
    const float *self = kv_self + (size_t)r * W;
    float acc[ROE_MLA_MAX_LATENT / ROE_MLA_THREADS] = {0.0f};
    float m = -INFINITY, l = 0.0f;
    __syncthreads();
    for (int t0 = 0; t0 < total; t0 += ROE_MLA_TILE) {
        const int cnt = min(ROE_MLA_TILE, total - t0);
        for (int i = warp; i < cnt; i += nwarps) {
            const int j = t0 + i;
            const size_t at = j < len ? roe_cuda_page_off(&pg, r, begin + j, W) : 0;
            float dot = 0.0f;
            for (int d = lane; d < W; d += 32) dot += qs[d] * (j < len ? roe_cuda_kv_ld(kv_cache, pg.dtype, at + d) : self[d]);
            for (int off = 16; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
            if (lane == 0) s[i] = dot * scale;
        }
        __syncthreads();
        const float corr = roe_cuda_softmax_tile(s, cnt, &m, &l);
        for (int a = 0; a < ROE_MLA_MAX_LATENT / ROE_MLA_THREADS; a++) {
            const int d = threadIdx.x + a * ROE_MLA_THREADS;
            if (d >= latent) break;
            float o = acc[a] * corr;
            for (int i = 0; i < cnt; i++) {
                const int j = t0 + i;
                o += s[i] * (j < len ? roe_cuda_kv_ld(kv_cache, pg.dtype, roe_cuda_page_off(&pg, r, begin + j, W) + d)
                                     : self[d]);
            }
            acc[a] = o;
        }
        __syncthreads(); /* s is rewritten by the next tile */
    }
    const float inv = 1.0f / l;
    for (int a = 0; a < ROE_MLA_MAX_LATENT / ROE_MLA_THREADS; a++) {
        const int d = threadIdx.x + a * ROE_MLA_THREADS;
        if (d < latent) out[rh * latent + d] = acc[a] * inv;
    }
}

void roe_cuda_mla_attention(roe_backend *be, const struct roe_mla_args *a) {
    struct roe_cuda *cu = roe_cuda_of(be);
    const int n = a->n_rows;
    if (n <= 0) return;
    assert(a->latent <= ROE_MLA_MAX_LATENT && a->rope_dim <= 1024 && n <= 65535);
    const void *src[3] = {a->pages.table, a->hist_begin, a->hist_end};
    size_t bytes[3] = {(size_t)n * (size_t)a->pages.stride * sizeof(int32_t), (size_t)n * sizeof(int),
                       (size_t)n * sizeof(int)};
    void *dev[3];
    roe_cuda_stage(cu, 3, src, bytes, dev);
    struct roe_kv_pages pg = a->pages;
    pg.table = (const int32_t *)dev[0];
    const size_t shmem = (size_t)(a->latent + a->rope_dim + ROE_MLA_TILE) * sizeof(float);
    dim3 grid((unsigned)a->n_heads, (unsigned)n);
    roe_k_mla_attention<<<grid, ROE_MLA_THREADS, shmem, cu->stream>>>(
        a->q_lat, a->q_rope, a->q_rope_stride, a->kv_self, a->kv_cache, pg, (const int *)dev[1],
        (const int *)dev[2], a->n_heads, a->latent, a->rope_dim, a->scale, a->out);
    ROE_CUDA_LAUNCHED(cu, "mla_attention");
}
