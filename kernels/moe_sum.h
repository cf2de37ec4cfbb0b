/*
 * moe_sum.h — the MoE weighted sum of one row, the one arithmetic both the CPU backend's
 * moe_combine and the engine's exchange path (runtime/moe.c) run, so a row's result is the
 * same bits whichever path computed it: acc = 0; acc += y[s] * w[s] for s < top_k in order;
 * h += acc. In chunks of 256 elements, s outer and the elements inner (contiguous, vectorised),
 * which leaves every element's sequence of operations as written.
 */
#ifndef ROE_MOE_SUM_H
#define ROE_MOE_SUM_H

#include <stddef.h>

enum { ROE_MOE_SUM_CHUNK = 256 };

/* h[width] += sum over s < top_k of y[s][width] * w[s]. */
static inline void roe_moe_sum_row(float *h, int width, int top_k, const float *const *y, const float *w) {
    float acc[ROE_MOE_SUM_CHUNK];
    for (int d0 = 0; d0 < width; d0 += ROE_MOE_SUM_CHUNK) {
        const int nd = width - d0 < ROE_MOE_SUM_CHUNK ? width - d0 : ROE_MOE_SUM_CHUNK;
        for (int d = 0; d < nd; d++) acc[d] = 0.0f;
        for (int s = 0; s < top_k; s++) {
            const float *ys = y[s] + d0, ws = w[s];
            for (int d = 0; d < nd; d++) acc[d] += ys[d] * ws;
        }
        for (int d = 0; d < nd; d++) h[d0 + d] += acc[d];
    }
}

#endif
