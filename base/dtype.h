/*
 * dtype.h — element types of tensors (safetensors' names) and the one set of conversions
 * between fp32 and the 16-bit floats that the whole project uses: the CPU kernels, the
 * CUDA weight upload, the expert exchange's bf16 wire and the tests.
 *
 * bf16 -> fp32 and fp16 -> fp32 are exact. fp32 -> bf16 rounds to nearest, ties to even;
 * a NaN stays a (quiet) NaN, infinities stay infinite.
 */
#ifndef ROE_DTYPE_H
#define ROE_DTYPE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum roe_dtype {
    ROE_DTYPE_F32 = 0,
    ROE_DTYPE_F16,
    ROE_DTYPE_BF16,
    ROE_DTYPE_F64,
    ROE_DTYPE_I64,
    ROE_DTYPE_I32,
    ROE_DTYPE_I16,
    ROE_DTYPE_I8,
    ROE_DTYPE_U8,
    ROE_DTYPE_BOOL,
    ROE_DTYPE_F8_E4M3,
    ROE_DTYPE_F8_E5M2,
    /* Block-quantized weights (roe's own, not safetensors dtypes): a row of `cols` values is
     * ceil(cols / 32) blocks of 32, padded with zero blocks to whole groups of 16 blocks
     * (roe_dtype_row_blocks), each group's values interleaved (kernels/quant.h); struct
     * roe_mat's `scales` (and `mins`) hold the per-block parameters. docs/QUANTIZATION.md. */
    ROE_DTYPE_Q8, /* w = d * q: q int8 in [-127, 127], d fp16 per block */
    ROE_DTYPE_Q4, /* w = d * q + m: q 4-bit in [0, 15] (two per byte), d and m fp16 per block */
    /* OCP MXFP4 as gpt-oss checkpoints store it (kept as mapped): per block of 32 values 16 bytes
     * of e2m1 (value 2j the low nibble of byte j), struct roe_mat's `e8m0` one scale byte s,
     * w = e2m1 * 2^(s - 127). Rows are cols / 32 blocks, no group padding (cols % 32 == 0). */
    ROE_DTYPE_MXFP4,
    ROE_DTYPE_COUNT
} roe_dtype;

enum { ROE_QBLOCK = 32, /* values per block of every block-quantized dtype */
       ROE_QGROUP = 16 }; /* blocks per group: a row is whole groups (one vector lane per block) */

#ifdef __cplusplus
extern "C" {
#endif

const char *roe_dtype_name(roe_dtype t); /* "BF16"; "?" if out of range */
size_t roe_dtype_size(roe_dtype t);      /* bytes per element; 0 if out of range */
/* The dtype named `s` (safetensors' spelling, "BF16"): 1, or 0 if none is. */
int roe_dtype_parse(const char *s, roe_dtype *out);

/* 1 for the block-quantized dtypes (Q8, Q4, MXFP4). */
static inline int roe_dtype_is_block(roe_dtype t) {
    return t == ROE_DTYPE_Q8 || t == ROE_DTYPE_Q4 || t == ROE_DTYPE_MXFP4;
}
/* Blocks a row of `cols` values is stored in (padding included): ceil(cols / 32) rounded up to
 * a multiple of 16, so a row is whole groups (Q8: 512 bytes, Q4: 256); MXFP4: cols / 32. */
size_t roe_dtype_row_blocks(roe_dtype t, size_t cols);
/* Bytes of one row's values: cols x element size, or the row's blocks' data (Q8: 32 per
 * block, Q4 and MXFP4: 16) without their scales. */
size_t roe_dtype_row_bytes(roe_dtype t, size_t cols);
/* Bytes of one row with its per-block parameters (what reading the row costs). */
size_t roe_dtype_row_bytes_all(roe_dtype t, size_t cols);

static inline float roe_bf16_to_f32(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t roe_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float roe_f16_to_f32(uint16_t h);

/* FP8 E4M3 (OCP "e4m3fn": bias 7, no infinities; 0x7f/0xff are NaN): block-scaled weights
 * (DeepSeek-V3's weight_scale_inv per ROE_FP8_TILE x ROE_FP8_TILE tile, kernels/backend.h
 * struct roe_mat::tile_scale). roe_e4m3_to_f16 is the byte's fp16 bits for value x 2^-8, exact
 * for every finite value, subnormals included (sign, then the 7 bits shifted into place; what
 * the CPU kernels do per vector). The NaN codes come out as 1.875 (480 x 2^-8). */
enum { ROE_FP8_TILE = 128 };
static inline uint16_t roe_e4m3_to_f16(uint8_t b) {
    return (uint16_t)(((uint16_t)(int16_t)(int8_t)b << 7) & 0xbf80u);
}
static inline float roe_e4m3_to_f32(uint8_t b) { return roe_f16_to_f32(roe_e4m3_to_f16(b)) * 256.0f; }

/* f rounded to the nearest e4m3 byte (ties to even), saturating to +-448 (the largest finite
 * value: vLLM's fp8 KV cache with a scale of 1.0), NaN to 0x7f / 0xff; subnormals below 2^-6 in
 * steps of 2^-9. The inverse of roe_e4m3_to_f32 on its 254 finite codes. */
static inline uint8_t roe_f32_to_e4m3(float f) {
    const uint8_t sign = signbit(f) ? 0x80u : 0;
    const float a = fabsf(f);
    if (isnan(f)) return (uint8_t)(sign | 0x7fu);
    if (a >= 448.0f) return (uint8_t)(sign | 0x7eu);
    if (a < 0.015625f) /* subnormal (or zero): m x 2^-9, m = 8 is the smallest normal, code 8 */
        return (uint8_t)(sign | (uint8_t)rintf(a * 512.0f));
    int e;
    frexpf(a, &e);                                   /* a = x 2^e, x in [0.5, 1): a in [2^(e-1), 2^e) */
    const float mant = rintf(ldexpf(a, 4 - e));         /* 3 mantissa bits: mant in [8, 16] */
    const int code = ((e - 1 + 7) << 3) + (int)mant - 8; /* mant = 16 carries into the exponent */
    return (uint8_t)(sign | (code > 0x7e ? 0x7e : code));
}

/* Element i of an array of a KV cache element type (f32, bf16 or e4m3 with a scale of 1.0)
 * widened to f32; what the CPU attention reads for each type. */
static inline float roe_kv_elem_f32(const void *base, roe_dtype t, size_t i) {
    if (t == ROE_DTYPE_BF16) return roe_bf16_to_f32(((const uint16_t *)base)[i]);
    if (t == ROE_DTYPE_F8_E4M3) return roe_e4m3_to_f32(((const uint8_t *)base)[i]);
    return ((const float *)base)[i];
}

/* x[i] = x[i] rounded to bf16 and widened back, i < n: what a bf16 round trip does. */
static inline void roe_bf16_round(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = roe_bf16_to_f32(roe_f32_to_bf16(x[i]));
}

#ifdef __cplusplus
}
#endif

#endif
