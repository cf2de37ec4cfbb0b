/*
 * quant.h — block quantization of weight rows and of activation rows: the formats' numbers,
 * independent of any ISA (docs/QUANTIZATION.md).
 *
 * Weights (load time, runtime/quant.c; `roe quantize`):
 *   Q8  per block of 32: d = max|w| / 127 rounded to fp16, q = round(w / d) in [-127, 127];
 *       w' = d q.
 *   Q4  per block of 32: w' = d q + m, q in [0, 15]; (d, m) start from (max - min) / 15 and
 *       min, then two least-squares refits of (d, m) to the chosen q (minimum squared error
 *       for that q), each followed by re-choosing q; d and m rounded to fp16 before the final
 *       q. Storage: value i (< 16) of a block in the low nibble of byte i, value 16 + i in
 *       its high nibble.
 *   Values past `cols` (the last block's padding, and the zero blocks that round a row up to
 *   whole 64-byte chunks) are 0 with d = m = 0.
 *
 * Activations (every matmul on a block dtype, kernels/cpu/matmul_q.c): each x row is
 * quantized per block of 32 as llama.cpp's Q8 activations are: dx = max|x| / 127 (fp32),
 * xq = nearbyint(x / dx) in [-127, 127]; so the dot product of a block is an exact integer
 * sum, and the only float arithmetic is the per-lane scaling that every ISA performs in the
 * same order (bit-identical results on AVX-512, AVX2 and portable code).
 */
#ifndef ROE_QUANT_H
#define ROE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"

/* fp32 -> fp16, round to nearest even (overflow to infinity, NaN stays NaN). */
uint16_t roe_f32_to_f16(float f);

/* Quantizes one row of `cols` fp32 values into dtype t (Q8 or Q4): blocks[roe_dtype_row_bytes],
 * scales[roe_dtype_row_blocks], mins[same] (Q4 only; NULL for Q8). Padding is written too. */
void roe_quantize_row(roe_dtype t, const float *src, int cols, void *blocks, uint16_t *scales,
                      uint16_t *mins);
/* The weights a quantized row stands for: dst[cols] = d q (+ m), in fp32 (exact). */
void roe_dequantize_row(roe_dtype t, const void *blocks, const uint16_t *scales, const uint16_t *mins,
                        int cols, float *dst);

#endif
