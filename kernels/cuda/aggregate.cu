/*
 * aggregate.cu — RoE aggregation on the device (runtime/aggregate.c): for each group of
 * consecutive rows (one token's K samples), z = log(mean over the rows of softmax(row)),
 * or a copy of the first row when every row of the group is identical (K = 1, or samples
 * that never diverged: the plain model bit for bit, as on the CPU). One block per group;
 * the normaliser is a double sum like the CPU's, in a different order (tolerance 1e-5).
 */
#include "cuda.h"
#include "cuda_impl.h"

enum { ROE_AGG_THREADS = 256 };

__device__ static double block_sum_d(double v, double *sh) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    double t = 0.0;
    for (int w = 0; w < ROE_AGG_THREADS / 32; w++) t += sh[w];
    return t;
}

__device__ static float block_max_f(float v, float *sh) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = -INFINITY;
    for (int w = 0; w < ROE_AGG_THREADS / 32; w++) t = fmaxf(t, sh[w]);
    return t;
}

__global__ void roe_k_aggregate(const float *__restrict__ logits, const int *__restrict__ first,
                                const int *__restrict__ count, int vocab, float *__restrict__ out) {
    __shared__ double shd[ROE_AGG_THREADS / 32];
    __shared__ float shf[ROE_AGG_THREADS / 32];
    __shared__ int differ;
    const int g = blockIdx.x, k = count[g];
    const float *base = logits + (size_t)first[g] * vocab;
    float *z = out + (size_t)g * vocab;
    if (threadIdx.x == 0) differ = 0;
    __syncthreads();
    for (int s = 1; s < k; s++)
        for (int v = threadIdx.x; v < vocab; v += ROE_AGG_THREADS)
            if (__float_as_uint(base[(size_t)s * vocab + v]) != __float_as_uint(base[v])) differ = 1;
    __syncthreads();
    if (!differ) {
        for (int v = threadIdx.x; v < vocab; v += ROE_AGG_THREADS) z[v] = base[v];
        return;
    }
    for (int v = threadIdx.x; v < vocab; v += ROE_AGG_THREADS) z[v] = 0.0f;
    for (int s = 0; s < k; s++) {
        const float *l = base + (size_t)s * vocab;
        float mx = -INFINITY;
        for (int v = threadIdx.x; v < vocab; v += ROE_AGG_THREADS) mx = fmaxf(mx, l[v]);
        mx = block_max_f(mx, shf);
        double sum = 0.0;
        for (int v = threadIdx.x; v < vocab; v += ROE_AGG_THREADS) sum += expf(l[v] - mx);
        sum = block_sum_d(sum, shd);
        const float inv = (float)(1.0 / sum);
        for (int v = threadIdx.x; v < vocab; v += ROE_AGG_THREADS) z[v] += expf(l[v] - mx) * inv;
    }
    const float invk = 1.0f / (float)k;
    for (int v = threadIdx.x; v < vocab; v += ROE_AGG_THREADS) z[v] = logf(z[v] * invk);
}

extern "C" void roe_cuda_aggregate(roe_backend *be, const float *logits, int n_groups, const int *group_rows,
                                   int vocab, float *out) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (n_groups <= 0) return;
    /* first row of each group, then the counts: packed in the host staging area's tail */
    int *first = (int *)(cu->hstage + cu->stage_bytes / 2);
    for (int g = 0, r = 0; g < n_groups; r += group_rows[g++]) first[g] = r;
    const void *src[2] = {first, group_rows};
    size_t bytes[2] = {(size_t)n_groups * sizeof(int), (size_t)n_groups * sizeof(int)};
    void *dev[2];
    roe_cuda_stage(cu, 2, src, bytes, dev);
    roe_k_aggregate<<<(unsigned)n_groups, ROE_AGG_THREADS, 0, cu->stream>>>(logits, (const int *)dev[0],
                                                                            (const int *)dev[1], vocab, out);
    ROE_CUDA_LAUNCHED(cu, "aggregate");
}
