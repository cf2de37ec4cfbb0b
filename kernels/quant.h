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
 *       q. Value i (< 16) of a block is the low nibble of its byte i, value 16 + i the high.
 *   Values past `cols` (the last block's padding, and the zero blocks that round a row up to
 *   whole groups) are 0 with d = m = 0.
 *
 * Layout: a row is groups of 16 blocks; within a group the blocks are interleaved 4 bytes at a
 * time (roe_q8_pos, roe_q4_pos): 64-byte chunk k holds bytes 4k..4k+3 of block 0, then of block
 * 1, ... of block 15. So one vector lane of 4 bytes belongs to one block, an int8 dot product
 * instruction (vpdpbusd, vpmaddubsw) sums within blocks, and after the group's 8 (Q8) or 4 (Q4)
 * chunks lane l holds block l's whole integer sum: one convert, one scale, one FMA per 16
 * blocks. Scales are plain [rows, blocks] (lane l of a group takes scale l).
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

/* Where element i (< 32) of block b of a row lies: its byte (Q8), or the byte whose low (i < 16)
 * or high nibble it is (Q4). */
static inline size_t roe_q8_pos(int b, int i) {
    return (size_t)(b / 16) * 512 + (size_t)(i / 4) * 64 + (size_t)(b % 16) * 4 + (size_t)(i % 4);
}
static inline size_t roe_q4_pos(int b, int i) {
    const int p = i % 16;
    return (size_t)(b / 16) * 256 + (size_t)(p / 4) * 64 + (size_t)(b % 16) * 4 + (size_t)(p % 4);
}

/* fp32 -> fp16, round to nearest even (overflow to infinity, NaN stays NaN). */
uint16_t roe_f32_to_f16(float f);

/* Quantizes one row of `cols` fp32 values into dtype t (Q8 or Q4): blocks[roe_dtype_row_bytes],
 * scales[roe_dtype_row_blocks], mins[same] (Q4 only; NULL for Q8). Padding is written too. */
void roe_quantize_row(roe_dtype t, const float *src, int cols, void *blocks, uint16_t *scales,
                      uint16_t *mins);
/* The weights a quantized row stands for: dst[cols] = d q (+ m), in fp32 (exact). */
void roe_dequantize_row(roe_dtype t, const void *blocks, const uint16_t *scales, const uint16_t *mins,
                        int cols, float *dst);

/* The weights an MXFP4 row stands for (base/dtype.h ROE_DTYPE_MXFP4): dst[cols] = e2m1 value x
 * 2^(e - 127), exact in fp32 (e = 255: NaN). cols a multiple of 32. */
void roe_mxfp4_dequantize_row(const uint8_t *blocks, const uint8_t *e8m0, int cols, float *dst);

#endif
