/* add.cu — the residual: y[i] += x[i]. */
#include "cuda_impl.h"

__global__ void roe_k_add(float *__restrict__ y, const float *__restrict__ x, size_t count) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

void roe_cuda_add(roe_backend *be, float *y, const float *x, size_t count) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (!count) return;
    unsigned blocks = roe_cuda_blocks(count, 256);
    if (blocks > 65535u) blocks = 65535u;
    roe_k_add<<<blocks, 256, 0, cu->stream>>>(y, x, count);
    ROE_CUDA_LAUNCHED(cu, "add");
}
