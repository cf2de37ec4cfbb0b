/* quant.c — block quantization of weight rows; see quant.h. */
#include "quant.h"

#include <math.h>
#include <string.h>

uint16_t roe_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: rounds to infinity */
    if (a < 0x38800000u) { /* below 2^-14: a subnormal fp16 (or zero) */
        float m;
        memcpy(&m, &a, sizeof m);
        return (uint16_t)(sign | (uint16_t)nearbyintf(m * 16777216.0f)); /* units of 2^-24 */
    }
    const uint32_t e = (a >> 23) - 127 + 15, man = a & 0x7fffffu;
    uint32_t h = (e << 10) | (man >> 13);
    const uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* may carry into the exponent: right */
    return (uint16_t)(sign | h);
}

/* nearbyintf for |v| < 2^22 in the default rounding mode (to nearest, ties to even), without a
 * libm call: adding and removing 1.5 * 2^23 leaves v rounded to an integer (IEEE arithmetic, which
 * the compiler keeps as written without -ffast-math). */
static inline float round_even(float v) {
    const float big = 12582912.0f;
    return (v + big) - big;
}

static void block_q8(const float *x, int b, int8_t *row, uint16_t *d16) {
    float amax = 0.0f;
    for (int i = 0; i < ROE_QBLOCK; i++) {
        const float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
    }
    *d16 = roe_f32_to_f16(amax / 127.0f);
    const float d = roe_f16_to_f32(*d16), id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < ROE_QBLOCK; i++) {
        const float v = round_even(x[i] * id);
        row[roe_q8_pos(b, i)] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : v);
    }
}

static void choose_q4(const float *x, float d, float m, uint8_t *q) {
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < ROE_QBLOCK; i++) {
        const float v = round_even((x[i] - m) * id);
        q[i] = (uint8_t)(v < 0.0f ? 0 : v > 15.0f ? 15 : v);
    }
}

/* The (d, m) minimising sum (x - d q - m)^2 for fixed q (least squares); keeps the old pair
 * when every q is equal (d is then free). */
static void refit_q4(const float *x, const uint8_t *q, float *d, float *m) {
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < ROE_QBLOCK; i++) {
        sq += q[i], sqq += (double)q[i] * q[i], sx += x[i], sqx += (double)q[i] * x[i];
    }
    const double n = ROE_QBLOCK, det = n * sqq - sq * sq;
    if (det <= 0.0) return;
    const double dd = (n * sqx - sq * sx) / det;
    if (dd <= 0.0) return;
    *d = (float)dd;
    *m = (float)((sx - dd * sq) / n);
}

/* Squared error of the block with (d, m) as stored (fp16) and the q they choose. */
static double sse_q4(const float *x, uint16_t d16, uint16_t m16, uint8_t *q) {
    const float d = roe_f16_to_f32(d16), m = roe_f16_to_f32(m16);
    choose_q4(x, d, m, q);
    double e = 0;
    for (int i = 0; i < ROE_QBLOCK; i++) {
        const double r = (double)x[i] - fmaf(d, (float)q[i], m);
        e += r * r;
    }
    return e;
}

/* Candidates: (max - min) / 15 and min, then up to two least-squares refits of (d, m) to the q
 * the previous pair chose; the one of least squared error (as stored in fp16) wins. */
static void block_q4(const float *x, int b, uint8_t *row, uint16_t *d16, uint16_t *m16) {
    float mn = x[0], mx = x[0];
    for (int i = 1; i < ROE_QBLOCK; i++) mn = x[i] < mn ? x[i] : mn, mx = x[i] > mx ? x[i] : mx;
    float d = (mx - mn) / 15.0f, m = mn;
    uint8_t q[ROE_QBLOCK];
    *d16 = roe_f32_to_f16(d), *m16 = roe_f32_to_f16(m);
    double best = sse_q4(x, *d16, *m16, q);
    for (int it = 0; it < 2 && d > 0.0f; it++) {
        choose_q4(x, d, m, q);
        refit_q4(x, q, &d, &m);
        const uint16_t dc = roe_f32_to_f16(d), mc = roe_f32_to_f16(m);
        const double e = sse_q4(x, dc, mc, q);
        if (e < best) best = e, *d16 = dc, *m16 = mc;
    }
    choose_q4(x, roe_f16_to_f32(*d16), roe_f16_to_f32(*m16), q);
    for (int i = 0; i < ROE_QBLOCK / 2; i++) row[roe_q4_pos(b, i)] = (uint8_t)(q[i] | (q[i + ROE_QBLOCK / 2] << 4));
}

void roe_quantize_row(roe_dtype t, const float *src, int cols, void *blocks, uint16_t *scales,
                      uint16_t *mins) {
    const int nb = (int)roe_dtype_row_blocks(t, (size_t)cols);
    memset(blocks, 0, roe_dtype_row_bytes(t, (size_t)cols)); /* padding blocks: 0 with d = m = 0 */
    for (int b = 0; b < nb; b++) {
        float x[ROE_QBLOCK];
        const int c0 = b * ROE_QBLOCK;
        for (int i = 0; i < ROE_QBLOCK; i++) x[i] = c0 + i < cols ? src[c0 + i] : 0.0f;
        scales[b] = 0;
        if (mins) mins[b] = 0;
        if (c0 >= cols) continue;
        if (t == ROE_DTYPE_Q8) block_q8(x, b, blocks, &scales[b]);
        else block_q4(x, b, blocks, &scales[b], &mins[b]);
    }
}

void roe_dequantize_row(roe_dtype t, const void *blocks, const uint16_t *scales, const uint16_t *mins,
                        int cols, float *dst) {
    for (int c = 0; c < cols; c++) {
        const int b = c / ROE_QBLOCK, i = c % ROE_QBLOCK;
        const float d = roe_f16_to_f32(scales[b]);
        if (t == ROE_DTYPE_Q8) {
            dst[c] = d * (float)((const int8_t *)blocks)[roe_q8_pos(b, i)];
        } else {
            const uint8_t byte = ((const uint8_t *)blocks)[roe_q4_pos(b, i)];
            const int q = i < 16 ? byte & 15 : byte >> 4;
            dst[c] = fmaf(d, (float)q, roe_f16_to_f32(mins[b]));
        }
    }
}

void roe_mxfp4_dequantize_row(const uint8_t *blocks, const uint8_t *e8m0, int cols, float *dst) {
    static const double e2m1[8] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0}; /* the OCP MX table */
    for (int c = 0; c < cols; c++) {
        const int code = c % 2 ? blocks[c / 2] >> 4 : blocks[c / 2] & 15; /* value 2j: low nibble */
        const int e = e8m0[c / ROE_QBLOCK];
        const double v = (code & 8 ? -1.0 : 1.0) * e2m1[code & 7];
        dst[c] = e == 255 ? NAN : (float)ldexp(v, e - 127);
    }
}
