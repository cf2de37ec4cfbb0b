/* dtype.c — dtype names and sizes, fp16 widening; see dtype.h. */
#include "dtype.h"

static const struct {
    const char *name;
    size_t size;
} roe__dtypes[ROE_DTYPE_COUNT] = {
    [ROE_DTYPE_F32] = {"F32", 4},         [ROE_DTYPE_F16] = {"F16", 2},
    [ROE_DTYPE_BF16] = {"BF16", 2},       [ROE_DTYPE_F64] = {"F64", 8},
    [ROE_DTYPE_I64] = {"I64", 8},         [ROE_DTYPE_I32] = {"I32", 4},
    [ROE_DTYPE_I16] = {"I16", 2},         [ROE_DTYPE_I8] = {"I8", 1},
    [ROE_DTYPE_U8] = {"U8", 1},           [ROE_DTYPE_BOOL] = {"BOOL", 1},
    [ROE_DTYPE_F8_E4M3] = {"F8_E4M3", 1}, [ROE_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
    [ROE_DTYPE_Q8] = {"Q8", 0},           [ROE_DTYPE_Q4] = {"Q4", 0},
    [ROE_DTYPE_MXFP4] = {"MXFP4", 0},
};

const char *roe_dtype_name(roe_dtype t) {
    return (unsigned)t < ROE_DTYPE_COUNT ? roe__dtypes[t].name : "?";
}

size_t roe_dtype_size(roe_dtype t) {
    return (unsigned)t < ROE_DTYPE_COUNT ? roe__dtypes[t].size : 0;
}

int roe_dtype_parse(const char *s, roe_dtype *out) {
    for (int i = 0; i <= ROE_DTYPE_F8_E5M2; i++) { /* the file dtypes only */
        if (strcmp(s, roe__dtypes[i].name) == 0) {
            *out = (roe_dtype)i;
            return 1;
        }
    }
    return 0;
}

float roe_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            u = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) u = sign | 0x7f800000u | (man << 13);
    else u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

size_t roe_dtype_row_blocks(roe_dtype t, size_t cols) {
    const size_t nb = (cols + ROE_QBLOCK - 1) / ROE_QBLOCK;
    if (t == ROE_DTYPE_MXFP4) return nb; /* as the checkpoint stores it: no group padding */
    return roe_dtype_is_block(t) ? (nb + ROE_QGROUP - 1) / ROE_QGROUP * ROE_QGROUP : 0;
}

size_t roe_dtype_row_bytes(roe_dtype t, size_t cols) {
    if (t == ROE_DTYPE_Q8) return roe_dtype_row_blocks(t, cols) * ROE_QBLOCK;
    if (t == ROE_DTYPE_Q4 || t == ROE_DTYPE_MXFP4) return roe_dtype_row_blocks(t, cols) * (ROE_QBLOCK / 2);
    return cols * roe_dtype_size(t);
}

size_t roe_dtype_row_bytes_all(roe_dtype t, size_t cols) {
    const size_t params = t == ROE_DTYPE_Q8 ? 2 : t == ROE_DTYPE_Q4 ? 4 : t == ROE_DTYPE_MXFP4 ? 1 : 0; /* fp16 d (and m); e8m0 */
    return roe_dtype_row_bytes(t, cols) + roe_dtype_row_blocks(t, cols) * params;
}
