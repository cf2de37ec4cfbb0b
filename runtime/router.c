/* router.c — the family gate functions, clean and noisy; see router.h. */
#include "router.h"

#include "kernels/route_order.h"

size_t roe_route_scratch_floats(const struct roe_model_config *cfg) {
    const int E = cfg->n_experts > 0 ? cfg->n_experts : 1, G = cfg->n_group > 0 ? cfg->n_group : 1;
    return (size_t)3 * E + (size_t)G + (size_t)2 * (cfg->top_k > 0 ? cfg->top_k : 1);
}

/* The gate weights of the chosen experts from the (clean or noisy) logits x, ordered by expert
 * with the model's normalisation. scratch: [2k] (TOPK_SOFTMAX), [E] (SOFTMAX). */
static void gate_weights(const struct roe_model_config *cfg, const float *x, float *scratch, int32_t *idx,
                         float *w) {
    const int E = cfg->n_experts, k = cfg->top_k;
    switch (cfg->router) {
    case ROE_ROUTER_SOFTMAX:
        roe_route_softmax(x, E, scratch);
        for (int j = 0; j < k; j++) w[j] = scratch[idx[j]];
        roe_route_order(idx, w, k, cfg->norm_topk_prob);
        return;
    case ROE_ROUTER_TOPK_SOFTMAX:
        for (int j = 0; j < k; j++) scratch[j] = x[idx[j]];
        roe_route_softmax(scratch, k, w);
        roe_route_order(idx, w, k, 0); /* the softmax over k already sums to 1 */
        return;
    case ROE_ROUTER_SIGMOID_GROUP:
        for (int j = 0; j < k; j++) w[j] = roe_route_sigmoid(x[idx[j]]);
        roe_route_order(idx, w, k, 0);
        roe_route_scale(w, k, cfg->norm_topk_prob, cfg->routed_scaling);
        return;
    }
}

/* The k experts the family chooses from logits x (largest first): the top-k of x (gpt-oss; and
 * Gumbel-Top-K for the softmax routers, whose clean choice roe_route_row makes from p), or the
 * group-limited choice by sigmoid + bias. scratch: [2E + G]. */
static void choose(const struct roe_model_config *cfg, const float *x, const float *bias, float *scratch,
                   int32_t *idx) {
    const int E = cfg->n_experts, k = cfg->top_k;
    if (cfg->router != ROE_ROUTER_SIGMOID_GROUP) {
        roe_route_topk(x, E, k, idx);
        return;
    }
    float *choice = scratch, *masked = scratch + E, *gscore = scratch + 2 * E;
    for (int e = 0; e < E; e++) choice[e] = roe_route_sigmoid(x[e]) + (bias ? bias[e] : 0.0f);
    roe_route_group_topk(choice, E, cfg->n_group, cfg->topk_group, k, gscore, masked, idx);
}

void roe_route_row(const struct roe_model_config *cfg, const float *logits, const float *bias,
                   float *scratch, int32_t *idx, float *weight) {
    if (cfg->router == ROE_ROUTER_SOFTMAX) { /* one softmax serves the choice and the weights */
        const int E = cfg->n_experts, k = cfg->top_k;
        roe_route_softmax(logits, E, scratch);
        roe_route_topk(scratch, E, k, idx);
        for (int j = 0; j < k; j++) weight[j] = scratch[idx[j]];
        roe_route_order(idx, weight, k, cfg->norm_topk_prob);
        return;
    }
    choose(cfg, logits, bias, scratch, idx);
    gate_weights(cfg, logits, scratch, idx, weight);
}

void roe_route_row_noisy(const struct roe_model_config *cfg, const float *logits, const float *bias,
                         float tau, roe_gate_mode gate, struct roe_noise_key key, float *scratch,
                         int32_t *idx, float *weight) {
    const int E = cfg->n_experts;
    float *noisy = scratch, *rest = scratch + E;
    for (int e = 0; e < E; e++) noisy[e] = logits[e] + tau * roe_gumbel(key, e);
    choose(cfg, noisy, bias, rest, idx);
    gate_weights(cfg, gate == ROE_GATE_NOISY ? noisy : logits, rest, idx, weight);
}
