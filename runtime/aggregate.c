/* aggregate.c — mean of per-sample softmax; see aggregate.h. */
#include "aggregate.h"

#include <math.h>
#include <string.h>

void roe_aggregate(const float *const *logits, int k, int vocab, float *z, float *scratch) {
    /* K = 1, or K samples that never diverged (all tau 0, or the same routing everywhere):
     * the mean of identical softmaxes is that softmax, and the logits themselves are exact
     * scores for it — so the plain model is reproduced bit for bit */
    int same = 1;
    for (int s = 1; s < k && same; s++)
        same = memcmp(logits[s], logits[0], (size_t)vocab * sizeof(float)) == 0;
    if (same) {
        memcpy(z, logits[0], (size_t)vocab * sizeof(float));
        return;
    }
    for (int v = 0; v < vocab; v++) scratch[v] = 0.0f;
    for (int s = 0; s < k; s++) {
        const float *l = logits[s];
        float mx = -INFINITY;
        for (int v = 0; v < vocab; v++) mx = l[v] > mx ? l[v] : mx;
        double sum = 0.0;
        for (int v = 0; v < vocab; v++) sum += expf(l[v] - mx);
        const float inv = (float)(1.0 / sum);
        for (int v = 0; v < vocab; v++) scratch[v] += expf(l[v] - mx) * inv;
    }
    const float invk = 1.0f / (float)k;
    for (int v = 0; v < vocab; v++) z[v] = logf(scratch[v] * invk);
}

double roe_log_prob(const float *z, int vocab, int token) {
    double mx = -INFINITY;
    for (int v = 0; v < vocab; v++) mx = z[v] > mx ? z[v] : mx;
    double sum = 0.0;
    for (int v = 0; v < vocab; v++) sum += exp((double)z[v] - mx);
    // cppcheck-suppress invalidFunctionArg ; sum >= 1: the largest logit adds exp(0)
    return (double)z[token] - mx - log(sum);
}

double roe_log_probs_top(const float *z, int vocab, int token, int top, int32_t *ids, float *lps) {
    double mx = -INFINITY;
    for (int v = 0; v < vocab; v++) mx = z[v] > mx ? z[v] : mx;
    double sum = 0.0;
    for (int v = 0; v < vocab; v++) sum += exp((double)z[v] - mx);
    // cppcheck-suppress invalidFunctionArg ; sum >= 1: the largest logit adds exp(0)
    const double lse = log(sum);
    int n = 0; /* ids[0, n): the best so far, in order (insertion: top is small) */
    for (int v = 0; v < vocab && top > 0; v++) {
        if (n == top && z[v] <= z[ids[n - 1]]) continue;
        int j = n < top ? n++ : top - 1;
        while (j > 0 && z[ids[j - 1]] < z[v]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = v;
    }
    for (int j = 0; j < n; j++) lps[j] = (float)((double)z[ids[j]] - mx - lse);
    return (double)z[token] - mx - lse;
}

void roe_log_softmax(const float *z, int vocab, float *out) {
    double mx = -INFINITY;
    for (int v = 0; v < vocab; v++) mx = z[v] > mx ? z[v] : mx;
    double sum = 0.0;
    for (int v = 0; v < vocab; v++) sum += exp((double)z[v] - mx);
    // cppcheck-suppress invalidFunctionArg ; sum >= 1: the largest logit adds exp(0)
    const double lse = log(sum);
    for (int v = 0; v < vocab; v++) out[v] = (float)((double)z[v] - mx - lse);
}

double roe_entropy(const float *z, int vocab) {
    double mx = -INFINITY;
    for (int v = 0; v < vocab; v++) mx = z[v] > mx ? z[v] : mx;
    double sum = 0.0, acc = 0.0;
    for (int v = 0; v < vocab; v++) {
        const double ev = exp((double)z[v] - mx);
        sum += ev;
        acc += ev * ((double)z[v] - mx);
    }
    // cppcheck-suppress invalidFunctionArg ; sum >= 1: the largest logit adds exp(0)
    return log(sum) - acc / sum;
}
