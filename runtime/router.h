/*
 * router.h — each family's gate function: router logits -> k experts and their weights.
 *
 * OLMoE / Mixtral / Qwen3-MoE: p = softmax(logits) over all E experts (fp32), the k
 * largest p are chosen (ties: lower expert index first), and their weights are p,
 * renormalised to sum to 1 iff the model renormalises (MODELS.md).
 */
#ifndef ROE_ROUTER_H
#define ROE_ROUTER_H

#include <stdint.h>

#include "config.h"

/* Routes one row. probs is scratch [n_experts]. idx/weight receive k entries in rank order. */
void roe_route_row(const struct roe_model_config *cfg, const float *logits, float *probs,
                   int32_t *idx, float *weight);

/* softmax over n values (fp32, max-subtracted) */
void roe_softmax(const float *x, int n, float *out);

/* indices of the k largest values of x[n], in decreasing order (ties: lower index first) */
void roe_topk(const float *x, int n, int k, int32_t *idx);

#endif
