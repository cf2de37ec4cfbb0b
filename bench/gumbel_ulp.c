/*
 * gumbel_ulp — how often the host's Gumbel noise differs from the device's (kernels/gumbel.h):
 * the host takes glibc's logf, the device the double log rounded to float. Counts, over Philox
 * draws (positions x samples x layers x experts, seed 1234), the draws whose first logarithm
 * differs and those whose G differs, on this machine's libm.
 *
 *   build/bench/gumbel_ulp [positions (2000)]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/gumbel.h"

static float device_log(float x) { return (float)log((double)x); }

int main(int argc, char **argv) {
    const int positions = argc > 1 ? atoi(argv[1]) : 2000;
    long n = 0, g_diff = 0, first_diff = 0;
    for (int pos = 0; pos < positions; pos++)
        for (int s = 0; s < 8; s++)
            for (int l = 0; l < 8; l++)
                for (int e = 0; e < 64; e++) {
                    const struct roe_noise_key k = {1234, pos, s, l};
                    const struct roe_philox_out r = roe_philox4x32((uint32_t)pos, (uint32_t)s, (uint32_t)l,
                                                                   (uint32_t)e, 1234u, 0u);
                    const float u = roe_u32_to_unit(r.v[0]);
                    const float device = -device_log(-device_log(u));
                    n++;
                    first_diff += logf(u) != device_log(u);
                    g_diff += roe_gumbel(k, e) != device;
                }
    printf("draws %ld: first log differs in %ld (%.3f%%), G differs in %ld (%.3f%%)\n", n, first_diff,
           100.0 * (double)first_diff / (double)n, g_diff, 100.0 * (double)g_diff / (double)n);
    return 0;
}
