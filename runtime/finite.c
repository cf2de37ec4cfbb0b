/* finite.c — NaN and infinities by bit pattern; see finite.h. */
#include "finite.h"

#include <stdint.h>
#include <string.h>

/* One value's kind: 0 finite, 1 NaN, 2 infinite; `bits` its raw bits, exp/man the masks. */
static int kind(uint64_t bits, uint64_t exp, uint64_t man) {
    if ((bits & exp) != exp) return 0;
    return (bits & man) ? 1 : 2;
}

int roe_tensor_nonfinite(const struct roe_tensor *t, struct roe_nonfinite *out) {
    memset(out, 0, sizeof *out);
    uint64_t exp, man;
    size_t w;
    switch (t->dtype) {
    case ROE_DTYPE_F32: exp = 0x7f800000u, man = 0x007fffffu, w = 4; break;
    case ROE_DTYPE_F16: exp = 0x7c00u, man = 0x03ffu, w = 2; break;
    case ROE_DTYPE_BF16: exp = 0x7f80u, man = 0x007fu, w = 2; break;
    case ROE_DTYPE_F64: exp = 0x7ff0000000000000ull, man = 0x000fffffffffffffull, w = 8; break;
    case ROE_DTYPE_F8_E5M2: exp = 0x7cu, man = 0x03u, w = 1; break;
    case ROE_DTYPE_F8_E4M3: exp = 0x7fu, man = 0x7fu, w = 1; break; /* e4m3fn: only S.1111.111, NaN */
    case ROE_DTYPE_U8: /* an MXFP4 NAME_scales (e8m0; roe's own Q8/Q4 scales are F16): 0xff is NaN */
        if (strlen(t->name) < 7 || strcmp(t->name + strlen(t->name) - 7, "_scales") != 0) return 0;
        exp = 0xffu, man = 0xffu, w = 1;
        break;
    default: return 0;
    }
    const unsigned char *p = t->data;
    const size_t n = t->nbytes / w;
    for (size_t i = 0; p && i < n; i++) {
        uint64_t bits = 0;
        memcpy(&bits, p + i * w, w); /* little-endian, as safetensors stores them */
        const int k = kind(bits, exp, man);
        if (!k) continue;
        if (out->nan + out->inf == 0) out->first = i;
        if (k == 1) out->nan++;
        else out->inf++;
    }
    return out->nan + out->inf > 0;
}
