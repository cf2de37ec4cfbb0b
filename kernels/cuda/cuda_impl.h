/*
 * cuda_impl.h — private state of the CUDA backend and the entry points its files share
 * (one op per file, the way ggml-cuda splits them). CUDA C++; only kernels/cuda/ includes
 * it.
 *
 * Execution model: every op is queued on the backend's one stream, in call order, and
 * returns at once. Host arrays an op takes (ids, positions, row indices, history pointers,
 * gate weights) are packed into a host staging area and sent with one cudaMemcpyAsync
 * from pageable memory, which returns once the bytes are staged, so the caller may reuse
 * its arrays right after the call; the device staging area is reused by the next op,
 * which the stream orders after this op's kernels.
 *
 * cuBLAS is loaded with dlopen when the first CUDA backend is created, not linked: linking it
 * (libcublas + libcublasLt, ~370k relocations) cost every roe process, CPU runs included,
 * seconds of start-up and 200 MB of memory on a loaded machine. The CUDA runtime is linked
 * statically (cheap at start-up; nothing runs until the first CUDA call).
 *
 * Errors: a failing launch or cuBLAS call is recorded (the first one wins) and reported,
 * as a status, by the next sync or download: compute ops have no status to return.
 *
 * NOTHING HERE HAS RUN ON A GPU YET (docs/GPU.md): it compiles and links; the kernels are
 * checked against the CPU ops by tests/cuda/ once a device is available.
 */
#ifndef ROE_CUDA_IMPL_H
#define ROE_CUDA_IMPL_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

extern "C" {
#include "kernels/backend.h"
}

/* The cuBLAS entry points roe uses, from dlopen (cuda_backend.cu). */
struct roe_cublas_api {
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetStream_v2) set_stream;
    decltype(&cublasSetMathMode) set_math_mode;
    /* the C entry point (C++ sees an overload taking cudaDataType as the compute type) */
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                              const void *, const void *, cudaDataType, int, const void *, cudaDataType,
                              int, const void *, void *, cudaDataType, int, cublasComputeType_t,
                              cublasGemmAlgo_t);
    decltype(&cublasGetStatusString) status_string;
};

struct roe_cuda {
    int device;
    struct roe_cublas_api blas_api; /* loaded functions (the library stays loaded: see roe_cuda_load_cublas) */
    cudaStream_t stream;
    cublasHandle_t blas;
    int max_rows;          /* rows an op may see (staging sizes) */
    int max_cols;          /* widest input dimension of a matmul */
    __nv_bfloat16 *xb;     /* [max_rows, max_cols] activations rounded to bf16 for cuBLAS */
    size_t stage_bytes;    /* size of both staging areas */
    unsigned char *hstage; /* host staging for index arrays */
    unsigned char *dstage; /* device staging, same size */
    cudaError_t err;       /* first CUDA error seen by an op, cudaSuccess if none */
    cublasStatus_t blas_err;
    char err_where[64];    /* the op that saw it */
    char name[96];         /* "cuda:0 NVIDIA H200" */
};

static inline struct roe_cuda *roe_cuda_of(roe_backend *be) { return (struct roe_cuda *)be->impl; }

/* Records a CUDA error of an op (the first one is kept). */
void roe_cuda_note(struct roe_cuda *cu, cudaError_t e, const char *where);
/* cudaGetLastError after a launch, recorded. */
#define ROE_CUDA_LAUNCHED(cu, where) roe_cuda_note((cu), cudaGetLastError(), (where))

/* Copies `n` host arrays (ptrs[i], bytes[i]) into the device staging area, each at an
 * offset aligned to 16 bytes; dev[i] receives its device address. They must fit (the
 * area is sized from max_rows at creation; asserted). */
void roe_cuda_stage(struct roe_cuda *cu, int n, const void *const *ptrs, const size_t *bytes,
                    void **dev);

/* Element i of a cache of pg->dtype (F32 or BF16), as fp32. */
static __device__ __forceinline__ float roe_cuda_kv_ld(const void *cache, roe_dtype dt, size_t i) {
    return dt == ROE_DTYPE_BF16     ? __bfloat162float(((const __nv_bfloat16 *)cache)[i])
           : dt == ROE_DTYPE_F8_E4M3 ? float(__nv_fp8_e4m3(__nv_fp8_storage_t(((const uint8_t *)cache)[i])))
                                     : ((const float *)cache)[i];
}

/* kernels/backend.h roe_kv_page_off on the device (pg->table in device memory). */
static __device__ __forceinline__ size_t roe_cuda_page_off(const struct roe_kv_pages *pg, int r, int pos, int width) {
    return (size_t)pg->table[(size_t)r * pg->stride + pos / pg->block_size] * (size_t)pg->block_elems +
           (size_t)(pos % pg->block_size) * (size_t)width;
}

static inline unsigned roe_cuda_blocks(size_t n, unsigned threads) {
    return (unsigned)((n + threads - 1) / threads);
}

/* One tile of the online softmax of attention.cu and mla_attention.cu, called by every thread of
 * the block alike: s[0, cnt) holds the tile's scores (every thread reads them all, so every
 * thread computes the same max); on return s holds exp(s - m_new), the running max *m and sum *l
 * are updated, and the factor that rescales the accumulators is returned (0 on the first tile,
 * where *m is -inf). */
static __device__ __forceinline__ float roe_cuda_softmax_tile(float *s, int cnt, float *m, float *l) {
    float tmax = -INFINITY;
    for (int i = 0; i < cnt; i++) tmax = fmaxf(tmax, s[i]);
    const float m_new = fmaxf(*m, tmax);
    const float corr = expf(*m - m_new);
    __syncthreads();
    for (int i = threadIdx.x; i < cnt; i += blockDim.x) s[i] = expf(s[i] - m_new);
    __syncthreads();
    float psum = 0.0f;
    for (int i = 0; i < cnt; i++) psum += s[i];
    *l = *l * corr + psum;
    *m = m_new;
    return corr;
}

/* one op per file */
void roe_cuda_matmul(roe_backend *be, const float *x, int n, const struct roe_mat *w, float *y);
void roe_cuda_matmul_f32(roe_backend *be, const float *x, int n, const struct roe_mat *w, float *y);
void roe_cuda_rmsnorm(roe_backend *be, const float *x, int n, const struct roe_mat *w, float eps,
                      float *y);
void roe_cuda_rope(roe_backend *be, float *x, int n, int n_heads, int head_dim, const int *pos,
                   const struct roe_rope_args *r);
void roe_cuda_attention(roe_backend *be, const struct roe_attn_args *a);
void roe_cuda_mla_attention(roe_backend *be, const struct roe_mla_args *a);
void roe_cuda_matmul_heads(roe_backend *be, const struct roe_matmul_heads_args *a);
void roe_cuda_swiglu(roe_backend *be, const float *gate, const float *up, size_t count, float *out);
void roe_cuda_swiglu_oai(roe_backend *be, const float *gu, int n, int inter, float alpha, float limit,
                         float *out);
void roe_cuda_add_bias(roe_backend *be, float *y, int n, const struct roe_mat *b);
void roe_cuda_embed(roe_backend *be, const struct roe_mat *table, const int32_t *ids, int n,
                    float *out);
void roe_cuda_add(roe_backend *be, float *y, const float *x, size_t count);
void roe_cuda_clamp(roe_backend *be, float *x, size_t count, float lim);
void roe_cuda_kv_store(roe_backend *be, void *dst, roe_dtype dtype, const int64_t *dst_idx, const float *src,
                       const int64_t *src_idx, int n, int width);
void roe_cuda_copy_rows(roe_backend *be, float *dst, const int64_t *dst_idx, const float *src,
                        const int64_t *src_idx, int n, int width);
void roe_cuda_moe_combine(roe_backend *be, float *h, int n, int width, int top_k, const float *y,
                          const int *y_row, const float *w);
roe_status roe_cuda_mat_upload(roe_backend *be, const struct roe_mat *host, struct roe_mat *dev);
roe_status roe_cuda_mat_random(roe_backend *be, int rows, int cols, float scale, uint64_t seed,
                               struct roe_mat *dev);
void roe_cuda_mat_free(roe_backend *be, struct roe_mat *dev);

#endif
