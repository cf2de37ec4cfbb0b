/*
 * gumbel.h — the Gumbel(0,1) noise of RoE routing (included by runtime/router.h), written
 * to compile for the device too, so that a device router draws the same noise.
 *
 * G(key, expert) = -log(-log(U)), U in (0,1) from Philox4x32-10 with counter (pos,
 * sample, layer, expert) and key (seed lo, seed hi). The Philox bits are identical on
 * host and device; the logarithms are glibc's logf on the host and, on the device, the double
 * log rounded to float (the correctly rounded value). glibc's logf is not correctly rounded
 * (< 0.52 ulp): measured over 8,192,000 draws (glibc 2.36, x86-64; bench/gumbel_ulp), the
 * first logf differs by 1 ulp in 0.73% of draws and G itself in 1.08% (an independent audit
 * found 1.04%): host and device noise differ in about 1 draw in 100, by an ulp; a routing
 * decision flips only where that ulp crosses a top-k boundary.
 * CUDA's own logf (up to 1 ulp) would differ more often.
 */
#ifndef ROE_GUMBEL_H
#define ROE_GUMBEL_H

#include <math.h>
#include <stdint.h>

#include "base/philox.h"

/* Where the noise of one routing decision comes from. */
struct roe_noise_key {
    uint64_t seed;
    int pos;
    int sample;
    int layer;
};

static inline ROE_HD float roe_gumbel_log(float x) {
#ifdef __CUDA_ARCH__
    return (float)log((double)x);
#else
    return logf(x);
#endif
}

static inline ROE_HD float roe_gumbel(struct roe_noise_key k, int expert) {
    struct roe_philox_out r = roe_philox4x32((uint32_t)k.pos, (uint32_t)k.sample, (uint32_t)k.layer,
                                             (uint32_t)expert, (uint32_t)k.seed, (uint32_t)(k.seed >> 32));
    return -roe_gumbel_log(-roe_gumbel_log(roe_u32_to_unit(r.v[0])));
}

#endif
