/*
 * cuda.h — CUDA-only entry points beyond the backend vtable (kernels/backend.h), for the
 * backend's own files and its benchmarks. Plain C API; defined only when the build has CUDA
 * (ROE_HAVE_CUDA).
 */
#ifndef ROE_KERNELS_CUDA_H
#define ROE_KERNELS_CUDA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/backend.h"

/* A device-to-device copy of `bytes` timed with CUDA events, `reps` times after one
 * warm-up: seconds per copy, or a negative value on error (message recorded). */
double roe_cuda_time_copy(roe_backend *be, void *dst, const void *src, size_t bytes, int reps);

#ifdef __cplusplus
}
#endif

#endif
