/*
 * rmsnorm.cu — y = w * x / sqrt(mean(x^2) + eps) per row of dim = w.cols; y may alias x.
 * Covers OLMoE's full-projection q/k norm (rows of n_heads*head_dim) and Qwen3's per-head
 * norm (the caller passes n * n_heads rows of head_dim) like the CPU op. One block per row;
 * the sum of squares is fp32 per thread, combined in a fixed tree (the CPU uses a double
 * accumulator: differences are fp32 rounding, tolerance 1e-5 normalised).
 */
#include "cuda_impl.h"

__global__ void roe_k_rmsnorm(const float *x, const __nv_bfloat16 *__restrict__ w, int dim, float eps,
                              float *y) {
    __shared__ float part[32];
    const float *xr = x + (size_t)blockIdx.x * dim;
    float *yr = y + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        const int nw = blockDim.x >> 5;
        float v = (int)threadIdx.x < nw ? part[threadIdx.x] : 0.0f;
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    const float inv = 1.0f / sqrtf(part[0] / (float)dim + eps);
    /* every read of x above happened before the barrier: writing y (= x) is safe */
    for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = __bfloat162float(w[i]) * (xr[i] * inv);
}

void roe_cuda_rmsnorm(roe_backend *be, const float *x, int n, const struct roe_mat *w, float eps,
                      float *y) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (n <= 0) return;
    const int threads = w->cols >= 1024 ? 1024 : (w->cols >= 256 ? 256 : 64);
    roe_k_rmsnorm<<<(unsigned)n, threads, 0, cu->stream>>>(x, (const __nv_bfloat16 *)w->data, w->cols, eps, y);
    ROE_CUDA_LAUNCHED(cu, "rmsnorm");
}
