/*
 * lanes16.h — the one reduction of the block-dtype kernels (matmul_q.c, matmul_fp8.c,
 * matmul_mxfp4.c): 16 accumulator lanes summed by a fixed tree, (l, l+8), then (l, l+4), then
 * (0+2) + (1+3). The portable, AVX2 (lanes in two ymm) and AVX-512 (one zmm) forms add the same
 * pairs in the same order, which is what keeps those kernels bit-identical across ISAs.
 */
#ifndef ROE_CPU_LANES16_H
#define ROE_CPU_LANES16_H

#include <immintrin.h>

static inline float roe_lanes16_sum(const float a[16]) {
    float s8[8], s4[4];
    for (int i = 0; i < 8; i++) s8[i] = a[i] + a[i + 8];
    for (int i = 0; i < 4; i++) s4[i] = s8[i] + s8[i + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/* lanes 0-7 in lo, 8-15 in hi */
__attribute__((target("avx2"))) static inline float roe_lanes16_sum_avx2(__m256 lo, __m256 hi) {
    const __m256 s8 = _mm256_add_ps(lo, hi);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

__attribute__((target("avx512f"))) static inline float roe_lanes16_sum_avx512(__m512 a) {
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

/* The same tree over 16 lane vectors at once: element r of the result sums element r of a[0..15]
 * (matmul_q_amx.c, whose lanes hold 16 W rows each). */
__attribute__((target("avx512f"))) static inline __m512 roe_lanes16_sum_x16(const __m512 a[16]) {
    __m512 s8[8], s4[4];
    for (int i = 0; i < 8; i++) s8[i] = _mm512_add_ps(a[i], a[i + 8]);
    for (int i = 0; i < 4; i++) s4[i] = _mm512_add_ps(s8[i], s8[i + 4]);
    return _mm512_add_ps(_mm512_add_ps(s4[0], s4[2]), _mm512_add_ps(s4[1], s4[3]));
}

#endif
