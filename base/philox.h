/*
 * philox.h — Philox4x32-10, the counter-based generator behind every random decision
 * (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
 *
 * A random value is a pure function of (key, counter): no state, so a decision made at
 * (request seed, position, sample, layer, expert) is the same whatever the batch, the
 * rank count or the backend. The same arithmetic compiles as CUDA C (all uint32 ops).
 */
#ifndef ROE_PHILOX_H
#define ROE_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define ROE_HD __host__ __device__
#else
#define ROE_HD
#endif

struct roe_philox_out {
    uint32_t v[4];
};

static inline ROE_HD struct roe_philox_out roe_philox4x32(uint32_t c0, uint32_t c1, uint32_t c2,
                                                          uint32_t c3, uint32_t k0, uint32_t k1) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += W0;
        k1 += W1;
    }
    struct roe_philox_out o = {{c0, c1, c2, c3}};
    return o;
}

/* A uniform float in the open interval (0, 1) from 32 random bits (24-bit mantissa). */
static inline ROE_HD float roe_u32_to_unit(uint32_t x) {
    return ((float)(x >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

#endif
