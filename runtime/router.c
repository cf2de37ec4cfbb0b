/* router.c — the family gate functions; see router.h. */
#include "router.h"

#include <math.h>

void roe_softmax(const float *x, int n, float *out) {
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

void roe_topk(const float *x, int n, int k, int32_t *idx) {
    /* insertion into a sorted list of k: k is small (<= 8 or so) and n is E */
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

void roe_route_row(const struct roe_model_config *cfg, const float *logits, float *probs,
                   int32_t *idx, float *weight) {
    const int E = cfg->n_experts, k = cfg->top_k;
    roe_softmax(logits, E, probs);
    roe_topk(probs, E, k, idx);
    float sum = 0.0f;
    for (int j = 0; j < k; j++) {
        weight[j] = probs[idx[j]];
        sum += weight[j];
    }
    if (cfg->norm_topk_prob)
        for (int j = 0; j < k; j++) weight[j] /= sum;
}
