/*
 * moe_combine.cu — the MoE unpermute and weighted sum: h[j] += sum over s < top_k, in slot
 * order, of y[y_row[j*K+s]] * w[j*K+s] (acc from 0, then one add to h), the CPU's order.
 * nvcc contracts the multiply-add into an FMA, so results differ from the CPU's by fp32
 * rounding (tolerance 1e-6 normalised).
 */
#include "cuda_impl.h"

__global__ void roe_k_moe_combine(float *__restrict__ h, int width, int top_k, const float *__restrict__ y,
                                  const int *__restrict__ y_row, const float *__restrict__ w) {
    const int j = blockIdx.x;
    for (int d = threadIdx.x; d < width; d += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < top_k; s++)
            acc += y[(size_t)y_row[j * top_k + s] * width + d] * w[j * top_k + s];
        h[(size_t)j * width + d] += acc;
    }
}

void roe_cuda_moe_combine(roe_backend *be, float *h, int n, int width, int top_k, const float *y,
                          const int *y_row, const float *w) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (n <= 0) return;
    const void *src[2] = {y_row, w};
    size_t bytes[2] = {(size_t)n * top_k * sizeof(int), (size_t)n * top_k * sizeof(float)};
    void *dev[2];
    roe_cuda_stage(cu, 2, src, bytes, dev);
    roe_k_moe_combine<<<(unsigned)n, 256, 0, cu->stream>>>(h, width, top_k, y, (const int *)dev[0],
                                                           (const float *)dev[1]);
    ROE_CUDA_LAUNCHED(cu, "moe_combine");
}
