/* rope.c — RoPE inverse frequencies and scale of a config; see rope.h. */
#include "rope.h"

#include <math.h>

/* yarn_get_mscale: 0.1 * mscale * ln(scale) + 1, or 1 for scale <= 1. */
static double yarn_mscale(double scale, double mscale) {
    return scale <= 1.0 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

/* find_correction_dim: the dimension whose wavelength makes num_rotations turns over max_pos. */
static double correction_dim(double rotations, int dim, double base, int max_pos) {
    return (dim * log(max_pos / (rotations * 2.0 * M_PI))) / (2.0 * log(base));
}

static float yarn_table(const struct roe_rope_config *r, float *inv_freq) {
    const int dim = r->dim, half = dim / 2;
    double low = correction_dim(r->beta_fast, dim, r->theta, r->original_max_position);
    double high = correction_dim(r->beta_slow, dim, r->theta, r->original_max_position);
    if (r->truncate) {
        low = floor(low);
        high = ceil(high);
    }
    low = low > 0.0 ? low : 0.0;
    high = high < dim - 1 ? high : dim - 1;
    if (low == high) high += 0.001; /* linear_ramp_factor: no singularity */
    for (int j = 0; j < half; j++) {
        const float pos_freq = powf(r->theta, (float)(2 * j) / (float)dim);
        const float extrap = 1.0f / pos_freq, interp = 1.0f / (r->factor * pos_freq);
        float ramp = ((float)j - (float)low) / (float)(high - low);
        ramp = ramp < 0.0f ? 0.0f : (ramp > 1.0f ? 1.0f : ramp);
        const float e = 1.0f - ramp; /* inv_freq_extrapolation_factor */
        inv_freq[j] = interp * (1.0f - e) + extrap * e;
    }
    if (r->attention_factor > 0.0f) return r->attention_factor;
    if (r->mscale > 0.0f && r->mscale_all_dim > 0.0f)
        return (float)(yarn_mscale(r->factor, r->mscale) / yarn_mscale(r->factor, r->mscale_all_dim));
    return (float)yarn_mscale(r->factor, 1.0);
}

float roe_rope_table(const struct roe_model_config *cfg, float *inv_freq) {
    const struct roe_rope_config *r = &cfg->rope;
    if (r->type == ROE_ROPE_YARN) return yarn_table(r, inv_freq);
    for (int j = 0; j < r->dim / 2; j++) inv_freq[j] = 1.0f / powf(r->theta, (float)(2 * j) / (float)r->dim);
    return 1.0f;
}

float roe_rope_mla_softmax_scale(const struct roe_model_config *cfg) {
    const struct roe_rope_config *r = &cfg->rope;
    double scale = pow((double)(cfg->mla_cfg.nope_dim + cfg->mla_cfg.rope_dim), -0.5);
    if (r->type == ROE_ROPE_YARN && r->mscale_all_dim != 0.0f) {
        const double m = yarn_mscale(r->factor, r->mscale_all_dim);
        scale = scale * m * m;
    }
    return (float)scale;
}
