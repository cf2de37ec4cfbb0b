/* embed.cu — the embedding gather: out[r] = table[ids[r]] widened from bf16 to fp32 (exact). */
#include "cuda_impl.h"

__global__ void roe_k_embed(const __nv_bfloat16 *__restrict__ table, const int32_t *__restrict__ ids,
                            int cols, float *__restrict__ out) {
    const int r = blockIdx.x;
    const __nv_bfloat16 *src = table + (size_t)ids[r] * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) out[(size_t)r * cols + i] = __bfloat162float(src[i]);
}

void roe_cuda_embed(roe_backend *be, const struct roe_mat *table, const int32_t *ids, int n, float *out) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (n <= 0) return;
    const void *src[1] = {ids};
    size_t bytes[1] = {(size_t)n * sizeof(int32_t)};
    void *dev[1];
    roe_cuda_stage(cu, 1, src, bytes, dev);
    roe_k_embed<<<(unsigned)n, 256, 0, cu->stream>>>((const __nv_bfloat16 *)table->data, (const int32_t *)dev[0],
                                                     table->cols, out);
    ROE_CUDA_LAUNCHED(cu, "embed");
}
