/* clamp.cu — OLMoE's clip_qkv: x[i] = min(max(x[i], -lim), lim). Exact (same as the CPU). */
#include "cuda_impl.h"

__global__ void roe_k_clamp(float *x, size_t count, float lim) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        x[i] = fminf(fmaxf(x[i], -lim), lim);
}

void roe_cuda_clamp(roe_backend *be, float *x, size_t count, float lim) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (!count) return;
    unsigned blocks = roe_cuda_blocks(count, 256);
    if (blocks > 65535u) blocks = 65535u;
    roe_k_clamp<<<blocks, 256, 0, cu->stream>>>(x, count, lim);
    ROE_CUDA_LAUNCHED(cu, "clamp");
}
