/*
 * rope.h — the RoPE of a config as numbers: the inverse frequency of each rotated pair and the
 * factor transformers multiplies cos and sin by (modeling_rope_utils.py).
 *
 *   default  inv_freq_j = 1 / theta^(2j / dim), scale 1
 *   yarn     inv_freq_j = interp_j (1 - e_j) + extrap_j e_j with extrap_j = 1 / theta^(2j/dim),
 *            interp_j = extrap_j / factor and e_j = 1 - ramp_j, ramp_j the linear ramp between the
 *            correction dims of beta_fast and beta_slow over original_max_position_embeddings
 *            (rounded out when truncate); scale = attention_factor, else 0.1 ln(factor) + 1
 *            (or the ratio of the mscale / mscale_all_dim terms when both are given)
 *
 * dim is the rotated width (partial rotary: int(head_dim * partial_rotary_factor)). Computed in
 * fp32 in the order transformers computes it (torch float32), so the default table is the one
 * the CPU kernel computed before it read a table: unscaled RoPE is unchanged bit for bit.
 */
#ifndef ROE_ROPE_H
#define ROE_ROPE_H

#include "config.h"

/* inv_freq[0 .. dim/2) for cfg->rope; returns the cos/sin scale. */
float roe_rope_table(const struct roe_model_config *cfg, float *inv_freq);

/* MLA's softmax scale (transformers' yarn_apply_mscale on qk_head_dim^-0.5): 1 / sqrt(qk_nope +
 * qk_rope), times mscale(factor, mscale_all_dim)^2 when the RoPE is YaRN with a nonzero
 * mscale_all_dim — YaRN's correction reaches the non-rotary dimensions too, on top of the cos/sin
 * scale of roe_rope_table. Computed in double as Python does, rounded once to fp32. */
float roe_rope_mla_softmax_scale(const struct roe_model_config *cfg);

#endif
