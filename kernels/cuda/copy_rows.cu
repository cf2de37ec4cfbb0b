/*
 * copy_rows.cu — row gather/scatter with host index lists: the MoE permute (pair rows
 * grouped by expert), the KV-cache append (clean rows to their cache rows), the rows that
 * want logits. dst row (dst_idx ? dst_idx[i] : i) = src row (src_idx ? src_idx[i] : i).
 * Exact copies.
 */
#include "cuda_impl.h"

__global__ void roe_k_copy_rows(float *__restrict__ dst, const int64_t *__restrict__ di,
                                const float *__restrict__ src, const int64_t *__restrict__ si, int width) {
    const int i = blockIdx.x;
    const int64_t d = di ? di[i] : i, s = si ? si[i] : i;
    for (int c = threadIdx.x; c < width; c += blockDim.x) dst[d * width + c] = src[s * width + c];
}

void roe_cuda_copy_rows(roe_backend *be, float *dst, const int64_t *dst_idx, const float *src,
                        const int64_t *src_idx, int n, int width) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (n <= 0) return;
    const void *hs[2] = {dst_idx ? (const void *)dst_idx : (const void *)"", src_idx ? (const void *)src_idx : (const void *)""};
    size_t bytes[2] = {dst_idx ? (size_t)n * sizeof(int64_t) : 0, src_idx ? (size_t)n * sizeof(int64_t) : 0};
    void *dev[2];
    roe_cuda_stage(cu, 2, hs, bytes, dev);
    roe_k_copy_rows<<<(unsigned)n, 256, 0, cu->stream>>>(dst, dst_idx ? (const int64_t *)dev[0] : NULL, src,
                                                         src_idx ? (const int64_t *)dev[1] : NULL, width);
    ROE_CUDA_LAUNCHED(cu, "copy_rows");
}

/* The KV-cache append into an F32 or BF16 cache (round to nearest even). */
__global__ void roe_k_kv_store_bf16(__nv_bfloat16 *__restrict__ dst, const int64_t *__restrict__ di,
                                    const float *__restrict__ src, const int64_t *__restrict__ si, int width) {
    const int i = blockIdx.x;
    const int64_t d = di[i], s = si[i];
    for (int c = threadIdx.x; c < width; c += blockDim.x) dst[d * width + c] = __float2bfloat16_rn(src[s * width + c]);
}

/* ... and into an fp8 e4m3 cache (scale 1.0: round to nearest even, saturating to +-448). */
__global__ void roe_k_kv_store_e4m3(uint8_t *__restrict__ dst, const int64_t *__restrict__ di,
                                    const float *__restrict__ src, const int64_t *__restrict__ si, int width) {
    const int i = blockIdx.x;
    const int64_t d = di[i], s = si[i];
    for (int c = threadIdx.x; c < width; c += blockDim.x)
        dst[d * width + c] = (uint8_t)__nv_cvt_float_to_fp8(src[s * width + c], __NV_SATFINITE, __NV_E4M3);
}

void roe_cuda_kv_store(roe_backend *be, void *dst, roe_dtype dtype, const int64_t *dst_idx, const float *src,
                       const int64_t *src_idx, int n, int width) {
    if (dtype == ROE_DTYPE_F32) {
        roe_cuda_copy_rows(be, (float *)dst, dst_idx, src, src_idx, n, width);
        return;
    }
    struct roe_cuda *cu = roe_cuda_of(be);
    if (n <= 0) return;
    const void *hs[2] = {dst_idx, src_idx};
    size_t bytes[2] = {(size_t)n * sizeof(int64_t), (size_t)n * sizeof(int64_t)};
    void *dev[2];
    roe_cuda_stage(cu, 2, hs, bytes, dev);
    if (dtype == ROE_DTYPE_F8_E4M3)
        roe_k_kv_store_e4m3<<<(unsigned)n, 256, 0, cu->stream>>>((uint8_t *)dst, (const int64_t *)dev[0], src,
                                                                 (const int64_t *)dev[1], width);
    else
        roe_k_kv_store_bf16<<<(unsigned)n, 256, 0, cu->stream>>>((__nv_bfloat16 *)dst, (const int64_t *)dev[0], src,
                                                                 (const int64_t *)dev[1], width);
    ROE_CUDA_LAUNCHED(cu, "kv_store");
}
