/* swiglu.cu — out[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up; out may alias gate. */
#include "cuda_impl.h"

__global__ void roe_k_swiglu(const float *gate, const float *__restrict__ up, size_t count, float *out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        const float g = gate[i];
        out[i] = (g / (1.0f + expf(-g))) * up[i];
    }
}

void roe_cuda_swiglu(roe_backend *be, const float *gate, const float *up, size_t count, float *out) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (!count) return;
    unsigned blocks = roe_cuda_blocks(count, 256);
    if (blocks > 65535u) blocks = 65535u;
    roe_k_swiglu<<<blocks, 256, 0, cu->stream>>>(gate, up, count, out);
    ROE_CUDA_LAUNCHED(cu, "swiglu");
}
