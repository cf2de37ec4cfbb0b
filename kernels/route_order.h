/*
 * route_order.h — the arithmetic of routing a row (runtime/router.c), written to compile for
 * the device too (ROE_HD), so that a device router (docs/GPU.md "Not done") chooses the same
 * experts with the same weights in the same order: the softmax, the sigmoid and the top-k
 * selection (plain, or group-limited as DeepSeek-V3 and GLM-4.5 route), then the k chosen experts
 * sorted by index (their weights following) and renormalised to sum 1 where the model
 * renormalises (Mixtral; Qwen3 with norm_topk_prob). The slot order fixes the order of the
 * weighted sum, hence bit-exactness.
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

static inline ROE_HD float roe_route_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Group-limited top-k (DeepSeek-V3, GLM-4.5; their routers' torch code): the E choice scores c
 * split into G groups of E/G; a group scores the sum of its 2 largest; the topk_group best groups
 * are kept (ties to the lower group), every expert of the others masked to -inf, and idx[0..k)
 * receives the k largest masked scores (largest first, ties to the lower index). gscore [G] and
 * masked [E] are scratch. The config ensures E/G >= 2 and k <= topk_group * E/G. */
static inline ROE_HD void roe_route_group_topk(const float *c, int E, int G, int topk_group, int k,
                                               float *gscore, float *masked, int32_t *idx) {
    const int per = E / G;
    for (int g = 0; g < G; g++) {
        float a = -INFINITY, b = -INFINITY; /* the two largest of the group */
        for (int e = g * per; e < (g + 1) * per; e++) {
            if (c[e] > a) {
                b = a;
                a = c[e];
            } else if (c[e] > b)
                b = c[e];
        }
        gscore[g] = a + b;
    }
    for (int g = 0; g < G; g++) {
        int better = 0; /* groups ranked before g */
        for (int h = 0; h < G; h++) {
            const int before = h < g; /* ties go to the lower group */
            better += gscore[h] > gscore[g] || (before && gscore[h] == gscore[g]);
        }
        for (int e = g * per; e < (g + 1) * per; e++) masked[e] = better < topk_group ? c[e] : -INFINITY;
    }
    roe_route_topk(masked, E, k, idx);
}

/* The group router's weights after the choice: divided by their sum + 1e-20 iff the model
 * renormalises, then times routed_scaling_factor (Glm4MoeTopkRouter, DeepseekV3TopkRouter). */
static inline ROE_HD void roe_route_scale(float *w, int k, int renormalise, float scaling) {
    if (renormalise) {
        float sum = 0.0f;
        for (int j = 0; j < k; j++) sum += w[j];
        sum += 1e-20f;
        for (int j = 0; j < k; j++) w[j] /= sum;
    }
    for (int j = 0; j < k; j++) w[j] *= scaling;
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
