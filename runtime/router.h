/*
 * router.h — each family's gate function: router logits -> k experts and their weights,
 * clean or with RoE's Gumbel noise (docs/ROE-ROUTING.md says where the noise enters and why).
 *
 *   SOFTMAX (OLMoE, Mixtral, Qwen2/3-MoE): p = softmax(R) over all E experts (fp32), the k
 *       largest are chosen, and their weights are p, renormalised to sum to 1 iff the model
 *       renormalises (MODELS.md).
 *   TOPK_SOFTMAX (gpt-oss): the k largest logits R (the router bias already added), weights the
 *       softmax over those k.
 *   SIGMOID_GROUP (GLM-4.5; DeepSeek-V3's rule): s = sigmoid(R); experts chosen by s + bias (the
 *       e_score_correction_bias) among the topk_group best of n_group groups (a group scores the
 *       sum of its 2 best), the others masked to -inf; weights s at the chosen, divided by their
 *       sum + 1e-20 iff norm_topk_prob, times routed_scaling_factor.
 *
 * With noise (tau > 0) the same rule runs on R + tau * G (G ~ Gumbel(0, 1) per expert): the
 * choice is the model's own on noisy logits; the weights are the model's gate function on the
 * clean logits at the chosen experts (ROE_GATE_CLEAN) or on the noisy ones (ROE_GATE_NOISY).
 *
 * The chosen experts are returned in ascending expert order (weights following), so two
 * routings that chose the same experts with the same weights are identical arrays (RoE's
 * dedup compares them). Routing is a pure function of the logits and the layer's bias: every
 * backend and every rank chooses alike.
 */
#ifndef ROE_ROUTER_H
#define ROE_ROUTER_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kernels/gumbel.h"
#include "roster.h"

/* Floats of scratch a routing of cfg needs (clean or noisy). */
size_t roe_route_scratch_floats(const struct roe_model_config *cfg);

/* Routes one row cleanly. bias: [n_experts] the layer's e_score_correction_bias (SIGMOID_GROUP;
 * NULL: none). scratch is [roe_route_scratch_floats]. idx/weight receive k entries. */
void roe_route_row(const struct roe_model_config *cfg, const float *logits, const float *bias,
                   float *scratch, int32_t *idx, float *weight);

/* Routes one row with Gumbel noise at temperature tau (> 0): the family's choice on R + tau*G;
 * weights by `gate`. */
void roe_route_row_noisy(const struct roe_model_config *cfg, const float *logits, const float *bias,
                         float tau, roe_gate_mode gate, struct roe_noise_key key, float *scratch,
                         int32_t *idx, float *weight);

/* The Gumbel(0,1) variate of (key, expert): kernels/gumbel.h (one source with CUDA). */

/* The softmax, top-k and group selection themselves: kernels/route_order.h (one source with
 * CUDA). */

#endif
