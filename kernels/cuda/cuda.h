/*
 * cuda.h — CUDA-only entry points beyond the backend vtable (kernels/backend.h): the GPU
 * router and the RoE aggregation/sampling kernels, for tests and benchmarks. Plain C API;
 * defined only when the build has CUDA (ROE_HAVE_CUDA).
 *
 * The engine routes on the host (runtime/engine.c explains why: the same code decides on
 * both backends); roe_cuda_route is the device version of runtime/router.c, checked
 * against it by tests/cuda/test_cuda_ops.c, for a later engine that keeps routing on the
 * device.
 */
#ifndef ROE_KERNELS_CUDA_H
#define ROE_KERNELS_CUDA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/backend.h"

/* What roe_cuda_route needs of the model config (runtime/router.h). */
struct roe_cuda_route_args {
    int n_rows;
    int n_experts;       /* <= 256 */
    int top_k;           /* <= 32 */
    int norm_topk_prob;
    int noisy_gate;      /* 1: weights from softmax(logits + tau*G) (roster gate "noisy") */
    const float *logits; /* device [n_rows, n_experts] */
    /* host [n_rows]: tau (0 = clean routing) and the noise key per row */
    const float *tau;
    const uint64_t *seed;
    const int *pos;
    const int *sample;
    int layer;
    int32_t *idx;        /* device [n_rows, top_k], experts ascending */
    float *weight;       /* device [n_rows, top_k] */
};
void roe_cuda_route(roe_backend *be, const struct roe_cuda_route_args *a);

/* RoE aggregation (runtime/aggregate.c): out[g, V] = mean over the group's rows of
 * softmax(logits[row]); groups are consecutive runs of group_rows[g] rows. group_rows is a
 * host array [n_groups]. */
void roe_cuda_aggregate(roe_backend *be, const float *logits, int n_groups, const int *group_rows,
                        int vocab, float *out);
/* Greedy sampling: out[r] = argmax of x[r, V] (ties: lowest index); out is device memory. */
void roe_cuda_argmax(roe_backend *be, const float *x, int n, int vocab, int32_t *out);

/* A device-to-device copy of `bytes` timed with CUDA events, `reps` times after one
 * warm-up: seconds per copy, or a negative value on error (message recorded). */
double roe_cuda_time_copy(roe_backend *be, void *dst, const void *src, size_t bytes, int reps);

#ifdef __cplusplus
}
#endif

#endif
