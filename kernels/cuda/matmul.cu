/*
 * matmul.cu — dense matmuls y[n, rows] = x[n, cols] . W^T with W [rows, cols] bf16.
 *
 * roe_cuda_matmul: cuBLAS (cublasGemmEx), A = W and B = x both CUDA_R_16BF, C = y
 * CUDA_R_32F, CUBLAS_COMPUTE_32F: tensor cores with fp32 accumulation. cuBLAS has no
 * bf16 x fp32 mixed-input GEMM, so x is first rounded to bf16 (round to nearest even) in
 * a scratch buffer. Numerics: each input element carries a relative error <= 2^-9, the
 * products and sums are fp32; the normalised error max|y - y_cpu| / max|y_cpu| is a few
 * 1e-3 for random inputs (tests/cuda tolerance 2e-2). Not batch-invariant: cuBLAS picks
 * kernels (and split-K) by shape, so a row's result may depend on n.
 *
 * roe_cuda_matmul_f32: our own kernel, fp32 activations, bf16 weights widened exactly,
 * fp32 accumulation; one warp per output element. For small matrices whose outputs take
 * discrete decisions (the router: [n_experts, hidden]): no bf16 rounding of x, so the
 * expert choices match the CPU's except where two logits tie within fp32 summation-order
 * noise.
 *
 * FP8 (128 x 128 tile scales) and MXFP4 weights go to matmul_block.cu instead: fp32
 * activations, the CPU's arithmetic lane for lane, batch-invariant.
 *
 * Layout for cuBLAS (column-major): W row-major [rows, cols] is W^T column-major with
 * ld = cols; op(A) = T gives [rows, cols]. x row-major [n, cols] is x^T column-major
 * [cols, n], ld = cols. y row-major [n, rows] is column-major [rows, n], ld = rows.
 */
#include <assert.h>
#include <stdio.h>

#include "matmul_block.h"

__global__ void roe_k_f32_to_bf16(const float *__restrict__ x, __nv_bfloat16 *__restrict__ y, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16_rn(x[i]);
}

void roe_cuda_matmul(roe_backend *be, const float *x, int n, const struct roe_mat *w, float *y) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (n <= 0) return;
    if (w->dtype == ROE_DTYPE_F8_E4M3 || w->dtype == ROE_DTYPE_MXFP4) { /* our kernel, fp32 x: matmul_block.cu */
        const struct roe_cuda_bd_args a = {x, w->cols, n, 1, 0, 0, w->rows, y, w->rows};
        roe_cuda_matmul_block(cu, w, &a);
        return;
    }
    assert(w->dtype == ROE_DTYPE_BF16 && n <= cu->max_rows && w->cols <= cu->max_cols);
    const size_t count = (size_t)n * w->cols;
    unsigned blocks = roe_cuda_blocks(count, 256);
    if (blocks > 65535u) blocks = 65535u;
    roe_k_f32_to_bf16<<<blocks, 256, 0, cu->stream>>>(x, cu->xb, count);
    ROE_CUDA_LAUNCHED(cu, "matmul: rounding x to bf16");
    const float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t s = cu->blas_api.gemm_ex(cu->blas, CUBLAS_OP_T, CUBLAS_OP_N, w->rows, n, w->cols, &alpha,
                                    w->data, CUDA_R_16BF, w->cols, cu->xb, CUDA_R_16BF, w->cols,
                                    &beta, y, CUDA_R_32F, w->rows, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS && cu->blas_err == CUBLAS_STATUS_SUCCESS && cu->err == cudaSuccess) {
        cu->blas_err = s;
        snprintf(cu->err_where, sizeof cu->err_where, "matmul [%d, %d] x %d rows", w->rows, w->cols, n);
    }
}

/* grid (ceil(rows / 8), n), 8 warps per block: warp w computes y[r, o] for o = block*8 + w */
__global__ void roe_k_matmul_f32(const float *__restrict__ x, const __nv_bfloat16 *__restrict__ w,
                                 int rows, int cols, float *__restrict__ y) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int o = blockIdx.x * 8 + warp, r = blockIdx.y;
    if (o >= rows) return;
    const float *xr = x + (size_t)r * cols;
    const __nv_bfloat16 *wr = w + (size_t)o * cols;
    float acc = 0.0f;
    for (int k = lane; k < cols; k += 32) acc += xr[k] * __bfloat162float(wr[k]);
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) y[(size_t)r * rows + o] = acc;
}

void roe_cuda_matmul_f32(roe_backend *be, const float *x, int n, const struct roe_mat *w, float *y) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (n <= 0) return;
    assert(w->dtype == ROE_DTYPE_BF16 && n <= 65535);
    dim3 grid(roe_cuda_blocks((size_t)w->rows, 8), (unsigned)n);
    roe_k_matmul_f32<<<grid, 256, 0, cu->stream>>>(x, (const __nv_bfloat16 *)w->data, w->rows, w->cols, y);
    ROE_CUDA_LAUNCHED(cu, "matmul_f32");
}
