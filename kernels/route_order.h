/*
 * route_order.h — the arithmetic of routing a row (runtime/router.c), written to compile for
 * the device too (ROE_HD), so that a device router (docs/GPU.md "Not done") chooses the same
 * experts with the same weights in the same order: the softmax and the top-k selection, then the k chosen experts sorted by
 * index (their weights following) and renormalised to sum 1 where the model renormalises
 * (Mixtral; Qwen3 with norm_topk_prob). The slot order fixes the order of the weighted sum,
 * hence bit-exactness.
 */
#ifndef ROE_ROUTE_ORDER_H
#define ROE_ROUTE_ORDER_H

#include <math.h>
#include <stdint.h>

#include "base/philox.h" /* ROE_HD */

/* out = softmax(x[0..n)), max-subtracted, in fp32. */
static inline ROE_HD void roe_route_softmax(const float *x, int n, float *out) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        out[i] = expf(x[i] - mx);
        sum += out[i];
    }
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) out[i] *= inv;
}

/* idx[0..k) = the indices of the k largest x, largest first, ties to the lower index:
 * insertion into a sorted list of k (k is small, n is E). */
static inline ROE_HD void roe_route_topk(const float *x, int n, int k, int32_t *idx) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m == k && !(x[i] > x[idx[k - 1]])) continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && x[i] > x[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
}

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
