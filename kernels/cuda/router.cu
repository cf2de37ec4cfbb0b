/*
 * router.cu — the family gate on the device: softmax over the experts, top-k, weights
 * (renormalised if the model does), clean or with RoE's Gumbel noise at temperature tau;
 * experts returned in ascending order. A line-by-line mirror of runtime/router.c (the
 * same comparisons, the same tie rule: lower index first), with the Gumbel values from
 * kernels/gumbel.h, the one source both compile. One thread per row: E and k are small
 * (<= 256, <= 32) and rows are at most a few hundred per layer; the work is tiny next to
 * the router matmul.
 *
 * Bit-for-bit: the choices equal router.c's for the same logits unless device expf (2 ulp)
 * and glibc's expf round a near-tie differently; tests/cuda/test_cuda_ops.c compares the
 * choices on random logits and the weights within 1e-6. The engine still routes on the host
 * (runtime/engine.c says why).
 */
#include <assert.h>

#include "cuda.h"
#include "cuda_impl.h"

extern "C" {
#include "kernels/gumbel.h"
#include "kernels/route_order.h"
}

/* per-thread arrays: the device reserves local memory for every resident thread, so keep them small */
enum { ROE_ROUTE_MAX_E = 256, ROE_ROUTE_MAX_K = 32 };

__global__ void roe_k_route(const float *__restrict__ logits, int n_rows, int E, int k, int norm, int noisy_gate,
                            const float *__restrict__ tau, const uint64_t *__restrict__ seed,
                            const int *__restrict__ pos, const int *__restrict__ sample, int layer,
                            int32_t *__restrict__ out_idx, float *__restrict__ out_w) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n_rows) return;
    float noisy[ROE_ROUTE_MAX_E], probs[ROE_ROUTE_MAX_E];
    int32_t idx[ROE_ROUTE_MAX_K];
    float w[ROE_ROUTE_MAX_K];
    const float *l = logits + (size_t)r * E;
    const float t = tau[r];
    if (t > 0.0f) {
        struct roe_noise_key key;
        key.seed = seed[r];
        key.pos = pos[r];
        key.sample = sample[r];
        key.layer = layer;
        for (int e = 0; e < E; e++) noisy[e] = l[e] + t * roe_gumbel(key, e);
        roe_route_topk(noisy, E, k, idx);
        roe_route_softmax(noisy_gate ? noisy : l, E, probs);
    } else { /* the CPU's own arithmetic (kernels/route_order.h): the same choices and weights */
        roe_route_softmax(l, E, probs);
        roe_route_topk(probs, E, k, idx);
    }
    for (int j = 0; j < k; j++) w[j] = probs[idx[j]];
    roe_route_order(idx, w, k, norm); /* the CPU's own ordering: kernels/route_order.h */
    for (int j = 0; j < k; j++) {
        out_idx[(size_t)r * k + j] = idx[j];
        out_w[(size_t)r * k + j] = w[j];
    }
}

extern "C" void roe_cuda_route(roe_backend *be, const struct roe_cuda_route_args *a) {
    struct roe_cuda *cu = roe_cuda_of(be);
    const int n = a->n_rows;
    if (n <= 0) return;
    assert(a->n_experts <= ROE_ROUTE_MAX_E && a->top_k <= ROE_ROUTE_MAX_K && a->top_k <= a->n_experts);
    const void *src[4] = {a->tau, a->seed, a->pos, a->sample};
    size_t bytes[4] = {(size_t)n * sizeof(float), (size_t)n * sizeof(uint64_t), (size_t)n * sizeof(int),
                       (size_t)n * sizeof(int)};
    void *dev[4];
    roe_cuda_stage(cu, 4, src, bytes, dev);
    roe_k_route<<<roe_cuda_blocks((size_t)n, 64), 64, 0, cu->stream>>>(
        a->logits, n, a->n_experts, a->top_k, a->norm_topk_prob, a->noisy_gate, (const float *)dev[0],
        (const uint64_t *)dev[1], (const int *)dev[2], (const int *)dev[3], a->layer, a->idx, a->weight);
    ROE_CUDA_LAUNCHED(cu, "route");
}
