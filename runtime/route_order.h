/*
 * route_order.h — the last step of routing a row, one source for the CPU (runtime/router.c)
 * and CUDA (kernels/cuda/router.cu), so both hand the expert exchange the same (expert,
 * weight) pairs in the same order: the k chosen experts sorted by index (their weights
 * following), then renormalised to sum 1 where the model renormalises (Mixtral; Qwen3 with
 * norm_topk_prob). The slot order fixes the order of the weighted sum, hence bit-exactness.
 */
#ifndef ROE_ROUTE_ORDER_H
#define ROE_ROUTE_ORDER_H

#include <stdint.h>

#include "philox.h" /* ROE_HD */

static inline ROE_HD void roe_route_order(int32_t *idx, float *w, int k, int renormalise) {
    for (int i = 1; i < k; i++) { /* insertion sort: k is small */
        const int32_t e = idx[i];
        const float wi = w[i];
        int j = i;
        while (j > 0 && idx[j - 1] > e) {
            idx[j] = idx[j - 1];
            w[j] = w[j - 1];
            j--;
        }
        idx[j] = e;
        w[j] = wi;
    }
    if (renormalise) {
        float sum = 0.0f;
        for (int j = 0; j < k; j++) sum += w[j];
        for (int j = 0; j < k; j++) w[j] /= sum;
    }
}

#endif
