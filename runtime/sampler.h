/*
 * sampler.h — picks the next token from a row of scores z (logits, or log of the RoE
 * aggregate distribution): greedy (temperature 0) or sampling from softmax(z / T)
 * restricted by top-k then top-p, as Hugging Face's generate applies them.
 *
 * The uniform draw is Philox keyed on the request seed and counted by position, so a
 * request's tokens do not depend on what else is in the batch.
 */
#ifndef ROE_SAMPLER_H
#define ROE_SAMPLER_H

#include <stdint.h>

#include "base/status.h"

struct roe_sampling {
    float temperature;  /* 0: greedy */
    int top_k;          /* 0: off */
    float top_p;        /* 1: off */
    uint64_t seed;
};

struct roe_sampling roe_sampling_default(void);
roe_status roe_sampling_validate(const struct roe_sampling *s);

typedef struct roe_sampler roe_sampler;

roe_status roe_sampler_create(int vocab, roe_sampler **out);
void roe_sampler_free(roe_sampler *s);

/* Picks a token from z[vocab] for the token at `position` of a request. Allocates nothing. */
int32_t roe_sampler_pick(roe_sampler *s, const struct roe_sampling *opt, const float *z,
                         int position);

#endif
