/*
 * matmul_heads.cu — one small matrix per head (struct roe_matmul_heads_args: MLA's absorbed
 * up-projections), y[r, h, o] = W[h * head_rows + row0 + o] . x[r, h], with the strides of the
 * args. Our own kernel, as matmul_f32: fp32 activations, bf16 weights widened exactly, fp32
 * accumulation, one warp per output element (grid: output blocks of 8, heads, rows). The inputs
 * are read in place, so the scratch of the args is not used. Batch-invariant: a warp's sum does not
 * depend on the other rows. FP8 weights (DeepSeek-V3-FP8's kv_b_proj, for W_uv) go to
 * matmul_block.cu, which reads the heads' rows and their tile scales in place (tile_row0 included).
 *
 * Written and compiled, NOT YET RUN ON A GPU (docs/GPU.md).
 */
#include <assert.h>

#include "matmul_block.h"

__global__ void roe_k_matmul_heads(const float *__restrict__ x, int x_stride, const __nv_bfloat16 *__restrict__ w,
                                   int cols, int head_rows, int row0, int out, int n_heads, float *__restrict__ y,
                                   int y_stride) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int o = blockIdx.x * 8 + warp, h = blockIdx.y, r = blockIdx.z;
    if (o >= out) return;
    const size_t rh = (size_t)r * n_heads + h;
    const float *xr = x + rh * x_stride;
    const __nv_bfloat16 *wr = w + ((size_t)h * head_rows + row0 + o) * cols;
    float acc = 0.0f;
    for (int k = lane; k < cols; k += 32) acc += xr[k] * __bfloat162float(wr[k]);
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) y[rh * y_stride + o] = acc;
}

void roe_cuda_matmul_heads(roe_backend *be, const struct roe_matmul_heads_args *a) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (a->n_rows <= 0) return;
    if (a->w->dtype == ROE_DTYPE_F8_E4M3 || a->w->dtype == ROE_DTYPE_MXFP4) { /* an FP8 kv_b_proj: matmul_block.cu */
        const struct roe_cuda_bd_args b = {a->x,   a->x_stride, a->n_rows, a->n_heads, a->head_rows,
                                           a->row0, a->out,     a->y,      a->y_stride};
        roe_cuda_matmul_block(cu, a->w, &b);
        return;
    }
    assert(a->w->dtype == ROE_DTYPE_BF16 && a->n_rows <= 65535 && a->n_heads <= 65535);
    dim3 grid(roe_cuda_blocks((size_t)a->out, 8), (unsigned)a->n_heads, (unsigned)a->n_rows);
    roe_k_matmul_heads<<<grid, 256, 0, cu->stream>>>(a->x, a->x_stride, (const __nv_bfloat16 *)a->w->data,
                                                     a->w->cols, a->head_rows, a->row0, a->out, a->n_heads, a->y,
                                                     a->y_stride);
    ROE_CUDA_LAUNCHED(cu, "matmul_heads");
}
