/*
 * block_dot.h — one lane's share of an FP8 (128 x 128 tile scales) or MXFP4 dot product, exactly
 * as lane l of the CPU's 16-lane arithmetic computes it (kernels/cpu/matmul_fp8.c,
 * kernels/cpu/matmul_mxfp4.c; docs/QUANTIZATION.md), written to compile for the device too (as
 * gumbel.h). The CUDA kernels (kernels/cuda/matmul_block.cu) give one (x row, W row) dot to 16
 * lanes of a warp, each running these functions, then reduce the 16 lanes with __shfl_xor at
 * offsets 8, 4, 2, 1, which adds the same pairs in the same order as the CPU's tree
 *     s8[i] = a[i] + a[i + 8],  s4[i] = s8[i] + s8[i + 4],  y = (s4[0] + s4[2]) + (s4[1] + s4[3])
 * (after xor 8 lane i < 8 holds s8[i], after xor 4 lane i < 4 holds s4[i], after xor 2 lanes 0
 * and 1 hold s4[0] + s4[2] and s4[1] + s4[3], after xor 1 lane 0 holds y; fp32 addition is
 * commutative, so lane i + 8's a[i + 8] + a[i] is the same bits). So the device gives the CPU's
 * bits, for any batch. tests/unit/test_block_dot.c runs these functions over 16 emulated lanes on
 * the host against the CPU backend, bit for bit (that test runs everywhere; the device itself is
 * checked by tests/cuda/test_cuda_ops.c when one is lent).
 *
 * Every product that must not be fused is written as roe_bd_mul (device: __fmul_rn, which nvcc
 * never contracts), every fused one as fmaf: the same operations as the CPU code's on both sides.
 */
#ifndef ROE_BLOCK_DOT_H
#define ROE_BLOCK_DOT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/philox.h" /* ROE_HD */

enum { ROE_BD_LANES = 16, ROE_BD_TILE = 128, ROE_BD_MXBLOCK = 32 };

static inline ROE_HD float roe_bd_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

static inline ROE_HD float roe_bd_mul(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

/* An e4m3 byte's value x 2^-8, as the CPU's fp16 widening gives it (the 2^8 joins the tile scale).
 * Normal (exponent field e in 1..15): 2^(e - 7 - 8) x 1.m, so fp32 exponent field e - 15 + 127 =
 * e + 112 and the 3 mantissa bits at the top of fp32's 23 (0x38 = 1.0 -> 2^-8; 0x7e = 448 ->
 * 1.75; the NaN codes 0x7f/0xff read as +-1.875, i.e. 480, as on the CPU). Subnormal (e = 0):
 * m/8 x 2^-6 x 2^-8 = m x 2^-17, exact in fp32. 0x80 is -0 (fp16 0x8000 on the CPU). */
static inline ROE_HD float roe_bd_e4m3(uint8_t b) {
    const uint32_t e = (b >> 3) & 15u, m = b & 7u;
    const float v = e ? roe_bd_bits((e + 112u) << 23 | m << 20) : (float)m * 7.62939453125e-06f;
    return (b & 0x80u) ? -v : v;
}

/* Lane l's partial sum of one row over tile k: p = fma(x[c], h(w[c]), p) for c = 128k + 16j + l,
 * j = 0, 1, ... while 128k + 16j < cols; past cols x and h are 0 (the CPU's padding: an fma with
 * +0, which also turns a -0 p into +0, as there). w and x are the row's first column. */
static inline ROE_HD float roe_bd_fp8_tile(const uint8_t *w, const float *x, int cols, int k, int l) {
    float p = 0.0f;
    for (int c0 = ROE_BD_TILE * k; c0 < cols && c0 < ROE_BD_TILE * (k + 1); c0 += ROE_BD_LANES) {
        const int c = c0 + l;
        p = fmaf(c < cols ? x[c] : 0.0f, c < cols ? roe_bd_e4m3(w[c]) : 0.0f, p);
    }
    return p;
}

/* The tile scales of W row `wrow` (counted from the view's first row) when the view starts at row
 * tile_row0 of its first tile: row tile (tile_row0 + wrow) / 128 of [*, ceil(cols / 128)].
 * E.g. tile_row0 = 100, wrow = 30: tile row 1 (the view's rows 28.. are the second tile's). */
static inline ROE_HD const float *roe_bd_fp8_scales(const float *tile_scale, int tile_row0, size_t wrow, int cols) {
    const size_t nt = (size_t)((cols + ROE_BD_TILE - 1) / ROE_BD_TILE);
    return tile_scale + ((size_t)tile_row0 + wrow) / ROE_BD_TILE * nt;
}

/* Lane l's accumulator of the FP8 dot of W row `wrow` (w: the view's first row) with x:
 * acc = fma(p_k, scale[k] x 256, acc) over the tiles k in order. */
static inline ROE_HD float roe_bd_fp8_lane(const uint8_t *w, const float *tile_scale, int tile_row0, size_t wrow,
                                           int cols, const float *x, int l) {
    const uint8_t *wr = w + wrow * (size_t)cols;
    const float *s = roe_bd_fp8_scales(tile_scale, tile_row0, wrow, cols);
    const int nt = (cols + ROE_BD_TILE - 1) / ROE_BD_TILE;
    float acc = 0.0f;
    for (int k = 0; k < nt; k++) acc = fmaf(roe_bd_fp8_tile(wr, x, cols, k, l), s[k] * 256.0f, acc);
    return acc;
}

/* 2 x the e2m1 value of code c (the CPU's mx_lut: 0 1 2 3 4 6 8 12, then the same negated, code 8
 * an integer 0, so +0): magnitudes m < 4 are m; 4..7 are (2 or 3) << (m / 2 - 1) = 4, 6, 8, 12. */
static inline ROE_HD float roe_bd_e2m1x2(unsigned c) {
    const unsigned m = c & 7u;
    const int v = (int)(m < 4u ? m : (2u + (m & 1u)) << ((m >> 1) - 1u));
    return (float)((c & 8u) ? -v : v);
}

/* 2^(e - 128), the scale of the doubled values, by bits (the CPU's mx_scale_bits): exponent field
 * e - 1 for e >= 2; 2^-127 and 2^-128 are the subnormals 0x400000 and 0x200000; e = 255 is NaN. */
static inline ROE_HD float roe_bd_mx_scale(uint8_t e) {
    return roe_bd_bits(e == 255 ? 0x7fc00000u : e >= 2 ? (uint32_t)(e - 1) << 23 : e == 1 ? 0x400000u : 0x200000u);
}

/* Lane l's sum of the MXFP4 dot of W row `wrow` with x (cols a multiple of 32, nb = cols / 32
 * blocks of 16 bytes and one exponent each; code 2j is the low nibble of byte j, so lane l's byte
 * l of block b holds columns 32b + 2l (low) and 32b + 2l + 1 (high)): even blocks accumulate into
 * A0, odd ones into A1, p = q_lo x_lo; p = fma(q_hi, x_hi, p); A = fma(p, s_b, A); then A0 + A1. */
static inline ROE_HD float roe_bd_mxfp4_lane(const uint8_t *q, const uint8_t *e8m0, size_t wrow, int cols,
                                             const float *x, int l) {
    const int nb = cols / ROE_BD_MXBLOCK;
    const uint8_t *qr = q + wrow * (size_t)(cols / 2), *er = e8m0 + wrow * (size_t)nb;
    float A0 = 0.0f, A1 = 0.0f;
    for (int b = 0; b < nb; b++) {
        const unsigned byte = qr[16 * (size_t)b + l];
        const float *xb = x + 32 * (size_t)b + 2 * l;
        float p = roe_bd_mul(roe_bd_e2m1x2(byte & 15u), xb[0]);
        p = fmaf(roe_bd_e2m1x2(byte >> 4), xb[1], p);
        if (b & 1) A1 = fmaf(p, roe_bd_mx_scale(er[b]), A1);
        else A0 = fmaf(p, roe_bd_mx_scale(er[b]), A0);
    }
    return A0 + A1;
}

#endif
