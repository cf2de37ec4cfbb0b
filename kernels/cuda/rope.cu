/*
 * rope.cu — Hugging Face "rotate half" RoPE in place on x[n, n_heads, head_dim] at host
 * positions pos[n] (struct roe_rope_args): of each head r->dim dimensions from r->offset rotate,
 * dimension j pairing with j + dim/2 at angle pos * inv_freq[j] (with r->interleave: the input
 * pair (2j, 2j + 1), written back to (j, j + dim/2); each head's rotary part is first read into
 * registers by the threads of that head, then written after a barrier) (a device table the engine
 * computed once on the host, runtime/rope.c), cos and sin scaled by r->scale. Device sinf/cosf
 * are within 2 ulp of glibc's (not bit-identical; tolerance 1e-5 normalised). Not compiled with
 * fast math: sinf of large angles (long contexts) keeps its full range reduction.
 */
#include <assert.h>

#include "cuda_impl.h"

/* grid (n), threads over (head, j < dim/2) */
__global__ void roe_k_rope(float *x, int n_heads, int head_dim, int dim, int offset, float scale,
                           const float *__restrict__ inv_freq, const int *__restrict__ pos) {
    const int half = dim / 2, r = blockIdx.x;
    for (int t = threadIdx.x; t < n_heads * half; t += blockDim.x) {
        const int h = t / half, j = t % half;
        const float ang = (float)pos[r] * inv_freq[j];
        const float c = cosf(ang) * scale, s = sinf(ang) * scale;
        float *v = x + ((size_t)r * n_heads + h) * head_dim + offset;
        const float a = v[j], b = v[j + half];
        v[j] = a * c - b * s;
        v[j + half] = b * c + a * s;
    }
}

/* interleaved pairs: grid (n, n_heads), threads over j < dim/2; reads first, then writes */
__global__ void roe_k_rope_interleaved(float *x, int n_heads, int head_dim, int dim, int offset, float scale,
                                       const float *__restrict__ inv_freq, const int *__restrict__ pos) {
    const int half = dim / 2, r = blockIdx.x, h = blockIdx.y, j = threadIdx.x;
    float *v = x + ((size_t)r * n_heads + h) * head_dim + offset;
    float a = 0.0f, b = 0.0f, c = 0.0f, s = 0.0f;
    if (j < half) {
        const float ang = (float)pos[r] * inv_freq[j];
        c = cosf(ang) * scale;
        s = sinf(ang) * scale;
        a = v[2 * j];
        b = v[2 * j + 1];
    }
    __syncthreads();
    if (j < half) {
        v[j] = a * c - b * s;
        v[j + half] = b * c + a * s;
    }
}

void roe_cuda_rope(roe_backend *be, float *x, int n, int n_heads, int head_dim, const int *pos,
                   const struct roe_rope_args *rp) {
    struct roe_cuda *cu = roe_cuda_of(be);
    if (n <= 0) return;
    assert(rp->offset + rp->dim <= head_dim && rp->dim / 2 <= 1024 && n_heads <= 65535);
    const void *src[1] = {pos};
    size_t bytes[1] = {(size_t)n * sizeof(int)};
    void *dev[1];
    roe_cuda_stage(cu, 1, src, bytes, dev);
    if (rp->interleave) {
        const unsigned threads = (unsigned)((rp->dim / 2 + 31) / 32 * 32);
        roe_k_rope_interleaved<<<dim3((unsigned)n, (unsigned)n_heads), threads, 0, cu->stream>>>(
            x, n_heads, head_dim, rp->dim, rp->offset, rp->scale, rp->inv_freq, (const int *)dev[0]);
    } else
        roe_k_rope<<<(unsigned)n, 256, 0, cu->stream>>>(x, n_heads, head_dim, rp->dim, rp->offset, rp->scale,
                                                       rp->inv_freq, (const int *)dev[0]);
    ROE_CUDA_LAUNCHED(cu, "rope");
}
