/*
 * matmul_block.h — the FP8 (128 x 128 tile scales) and MXFP4 matmuls of matmul_block.cu, for
 * matmul.cu and matmul_heads.cu (a header of its own so that cuda_impl.h, which every .cu file
 * includes, stays as it was).
 */
#ifndef ROE_CUDA_MATMUL_BLOCK_H
#define ROE_CUDA_MATMUL_BLOCK_H

#include "cuda_impl.h"

/* For r < n_rows, h < n_heads, o < out, with rh = r * n_heads + h:
 *   y[rh * y_stride + o] = sum_i x[rh * x_stride + i] * W[h * head_rows + row0 + o][i],  i < w->cols
 * (struct roe_matmul_heads_args' arithmetic; a plain matmul is n_heads 1, head_rows 0, row0 0,
 * x_stride cols, out = y_stride = rows). W is F8_E4M3 with tile_scale or MXFP4 with e8m0, as
 * mat_upload left it on the device. */
struct roe_cuda_bd_args {
    const float *x;
    int x_stride;
    int n_rows;
    int n_heads;
    int head_rows;
    int row0;
    int out;
    float *y;
    int y_stride;
};
void roe_cuda_matmul_block(struct roe_cuda *cu, const struct roe_mat *w, const struct roe_cuda_bd_args *a);

#endif
