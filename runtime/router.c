/* router.c — the family gate functions, clean and noisy; see router.h. */
#include "router.h"

#include "kernels/route_order.h"

/* Orders the k chosen experts by index (weights follow), then renormalises if the model does. */
static void finish(const struct roe_model_config *cfg, int32_t *idx, float *weight) {
    roe_route_order(idx, weight, cfg->top_k, cfg->norm_topk_prob);
}

void roe_route_row(const struct roe_model_config *cfg, const float *logits, float *probs,
                   int32_t *idx, float *weight) {
    const int E = cfg->n_experts, k = cfg->top_k;
    roe_route_softmax(logits, E, probs);
    roe_route_topk(probs, E, k, idx);
    for (int j = 0; j < k; j++) weight[j] = probs[idx[j]];
    finish(cfg, idx, weight);
}

void roe_route_row_noisy(const struct roe_model_config *cfg, const float *logits, float tau,
                         roe_gate_mode gate, struct roe_noise_key key, float *scratch,
                         int32_t *idx, float *weight) {
    const int E = cfg->n_experts, k = cfg->top_k;
    float *noisy = scratch, *probs = scratch + E;
    for (int e = 0; e < E; e++) noisy[e] = logits[e] + tau * roe_gumbel(key, e);
    roe_route_topk(noisy, E, k, idx);
    roe_route_softmax(gate == ROE_GATE_NOISY ? noisy : logits, E, probs);
    for (int j = 0; j < k; j++) weight[j] = probs[idx[j]];
    finish(cfg, idx, weight);
}
