/* add_bias.cu — y[r, :] += b for each of n rows of b.cols (a device-resident bf16 bias vector,
 * widened exactly: the same sums as the CPU op). */
#include "cuda_impl.h"

__global__ void roe_k_add_bias(float *y, size_t count, int cols, const __nv_bfloat16 *__restrict__ b) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        y[i] += __bfloat162float(b[i % (size_t)cols]);
}

void roe_cuda_add_bias(roe_backend *be, float *y, int n, const struct roe_mat *b) {
    struct roe_cuda *cu = roe_cuda_of(be);
    const size_t count = (size_t)n * (size_t)b->cols;
    if (!count) return;
    unsigned blocks = roe_cuda_blocks(count, 256);
    if (blocks > 65535u) blocks = 65535u;
    roe_k_add_bias<<<blocks, 256, 0, cu->stream>>>(y, count, b->cols, (const __nv_bfloat16 *)b->data);
    ROE_CUDA_LAUNCHED(cu, "add_bias");
}
