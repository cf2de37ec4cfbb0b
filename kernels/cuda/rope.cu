/*
 * rope.cu — Hugging Face "rotate half" RoPE in place on x[n, n_heads, head_dim] at host
 * positions pos[n]: dimension j pairs with j + head_dim/2, inv_freq_j = theta^(-2j/d) in
 * fp32 as transformers computes it. Device powf/sinf/cosf are within 2 ulp of glibc's
 * (not bit-identical; tolerance 1e-5 normalised). Not compiled with fast math: sinf of
 * large angles (long contexts) keeps its full range reduction.
 */
#include "cuda_impl.h"

/* grid (n), threads over (head, j < half) */
__global__ void roe_k_rope(float *x, int n_heads, int head_dim, const int *__restrict__ pos, float theta) {
    const int half = head_dim / 2, r = blockIdx.x;
    for (int t = threadIdx.x; t < n_heads * half; t += blockDim.x) {
        const int h = t / half, j = t % half;
        const float inv_freq = 1.0f / powf(theta, (float)(2 * j) / (float)head_dim);
        const float ang = (float)pos[r] * inv_freq;
        const float c = cosf(ang), s = sinf(ang);
        float *v = x + ((size_t)r * n_heads + h) * head_dim;
        const float a = v[j], b = v[j + half];
        v[j] = a * c - b * s;
        v[j + half] = b * c + a * s;
    }
}

void roe_cuda_rope(roe_backend *be, float *x, int n, int n_heads, int head_dim, const int *pos,
                   float theta) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (n <= 0) return;
    const void *src[1] = {pos};
    size_t bytes[1] = {(size_t)n * sizeof(int)};
    void *dev[1];
    roe_cuda_stage(cu, 1, src, bytes, dev);
    roe_k_rope<<<(unsigned)n, 256, 0, cu->stream>>>(x, n_heads, head_dim, (const int *)dev[0], theta);
    ROE_CUDA_LAUNCHED(cu, "rope");
}
