/*
 * router.h — each family's gate function: router logits -> k experts and their weights,
 * clean or with RoE's Gumbel noise.
 *
 * OLMoE / Mixtral / Qwen3-MoE: p = softmax(logits) over all E experts (fp32), the k
 * largest are chosen, and their weights are p, renormalised to sum to 1 iff the model
 * renormalises (MODELS.md). The chosen experts are returned in ascending expert order
 * (the order transformers sums them in), so two routings that chose the same experts
 * with the same weights are identical arrays.
 */
#ifndef ROE_ROUTER_H
#define ROE_ROUTER_H

#include <math.h>
#include <stdint.h>

#include "config.h"
#include "kernels/gumbel.h"
#include "roster.h"

/* Routes one row cleanly. probs is scratch [n_experts]. idx/weight receive k entries. */
void roe_route_row(const struct roe_model_config *cfg, const float *logits, float *probs,
                   int32_t *idx, float *weight);


/* Routes one row with Gumbel noise at temperature tau (> 0): experts = TopK(R + tau*G, k);
 * weights by `gate`. scratch is [2 * n_experts]. */
void roe_route_row_noisy(const struct roe_model_config *cfg, const float *logits, float tau,
                         roe_gate_mode gate, struct roe_noise_key key, float *scratch,
                         int32_t *idx, float *weight);

/* The Gumbel(0,1) variate of (key, expert): kernels/gumbel.h (one source with CUDA). */

/* The softmax and top-k themselves: roe_route_softmax, roe_route_topk (kernels/route_order.h,
 * one source with CUDA). */

#endif
