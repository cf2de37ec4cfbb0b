/*
 * matmul_block.cu — matmuls over FP8 (e4m3, an fp32 scale per 128 x 128 tile) and MXFP4 (e2m1,
 * an e8m0 exponent per 32) weights as the checkpoint stores them: the device holds the same bytes
 * and scales as the file (weights.cu), nothing is widened in memory. fp32 activations as they
 * come (no bf16 rounding, unlike the bf16 path's cuBLAS GEMM).
 *
 * One (x row, W row) dot per 16 lanes (a half-warp): lane l runs lane l of the CPU's 16-lane
 * arithmetic (kernels/block_dot.h, the same functions the host test runs), then the 16 lanes are
 * reduced by __shfl_xor 8, 4, 2, 1, the CPU's tree. So every output should be the CPU backend's
 * bits, whatever the batch (batch-invariant, deterministic): tests/cuda/test_cuda_ops.c asserts
 * exactly that when a device is lent. Block of 256 threads = 16 outputs of one (row, head); grid
 * (ceil(out / 16), n_heads, n_rows).
 *
 * A first version, correctness first: every x row re-reads W (from L2 when it fits), lanes load
 * one weight byte at a time (16 consecutive bytes per half-warp and step: no alignment
 * assumption beyond cudaMalloc's, any cols), no shared-memory tiles for batched rows. So decode is
 * likely well under the memory bandwidth; unmeasured (docs/GPU.md).
 *
 * Written and compiled, NOT YET RUN ON A GPU (docs/GPU.md).
 */
#include <assert.h>

#include "matmul_block.h"

#include "kernels/block_dot.h" /* static inline only: no linkage to declare */

/* What a launch reads, by value. */
struct roe_bd_dev {
    const float *x;
    const uint8_t *w;
    const float *ts;  /* FP8: tile scales */
    const uint8_t *e8; /* MXFP4: block exponents */
    int tile_row0, cols, x_stride, n_heads, head_rows, row0, out, y_stride;
    float *y;
};

/* The sum of v over the 16 lanes of each half-warp, the CPU's tree (block_dot.h); lane 0 of the
 * half-warp holds it. Every lane of the warp must call it. */
static __device__ __forceinline__ float roe_cuda_tree16(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 8);
    v += __shfl_xor_sync(0xffffffffu, v, 4);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v;
}

template <int MX>
__global__ void roe_k_matmul_block(struct roe_bd_dev d) {
    const int l = threadIdx.x & 15, o = blockIdx.x * 16 + (threadIdx.x >> 4), h = blockIdx.y, r = blockIdx.z;
    /* a half-warp past `out` recomputes output out - 1 and writes nothing, so that every lane of
     * the warp reaches the shuffles (out >= 1: the host does not launch otherwise) */
    const int oc = o < d.out ? o : d.out - 1;
    const size_t rh = (size_t)r * d.n_heads + h, wrow = (size_t)h * d.head_rows + d.row0 + oc;
    const float *x = d.x + rh * d.x_stride;
    float v = MX ? roe_bd_mxfp4_lane(d.w, d.e8, wrow, d.cols, x, l)
                 : roe_bd_fp8_lane(d.w, d.ts, d.tile_row0, wrow, d.cols, x, l);
    v = roe_cuda_tree16(v);
    if (l == 0 && o < d.out) d.y[rh * d.y_stride + o] = v;
}

void roe_cuda_matmul_block(struct roe_cuda *cu, const struct roe_mat *w, const struct roe_cuda_bd_args *a) {
    if (a->n_rows <= 0 || a->n_heads <= 0 || a->out <= 0) return;
    const int mx = w->dtype == ROE_DTYPE_MXFP4;
    assert(mx ? w->e8m0 != NULL && w->cols % ROE_BD_MXBLOCK == 0 : w->dtype == ROE_DTYPE_F8_E4M3 && w->tile_scale);
    assert(a->n_rows <= 65535 && a->n_heads <= 65535);
    const struct roe_bd_dev d = {a->x,         (const uint8_t *)w->data, w->tile_scale, w->e8m0, w->tile_row0,
                                 w->cols,      a->x_stride,              a->n_heads,    a->head_rows, a->row0,
                                 a->out,       a->y_stride,              a->y};
    const dim3 grid(roe_cuda_blocks((size_t)a->out, 16), (unsigned)a->n_heads, (unsigned)a->n_rows);
    if (mx) roe_k_matmul_block<1><<<grid, 256, 0, cu->stream>>>(d);
    else roe_k_matmul_block<0><<<grid, 256, 0, cu->stream>>>(d);
    ROE_CUDA_LAUNCHED(cu, mx ? "matmul (MXFP4)" : "matmul (FP8)");
}
