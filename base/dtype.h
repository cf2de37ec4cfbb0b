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
    ROE_DTYPE_COUNT
} roe_dtype;

#ifdef __cplusplus
extern "C" {
#endif

const char *roe_dtype_name(roe_dtype t); /* "BF16"; "?" if out of range */
size_t roe_dtype_size(roe_dtype t);      /* bytes per element; 0 if out of range */
/* The dtype named `s` (safetensors' spelling, "BF16"): 1, or 0 if none is. */
int roe_dtype_parse(const char *s, roe_dtype *out);

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

/* x[i] = x[i] rounded to bf16 and widened back, i < n: what a bf16 round trip does. */
static inline void roe_bf16_round(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = roe_bf16_to_f32(roe_f32_to_bf16(x[i]));
}

#ifdef __cplusplus
}
#endif

#endif
