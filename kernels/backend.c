/* backend.c — choosing a backend by kind, and the CUDA entry points of a build without
 * CUDA (they say so instead of failing to link). */
#include "backend.h"

#include <stddef.h>

#include "base/clock.h"
#include "base/env.h"

const char *roe_backend_kind_name(roe_backend_kind kind) {
    switch (kind) {
    case ROE_BACKEND_CUDA: return "cuda";
    case ROE_BACKEND_CPU_STAGED: return "cpu-staged";
    default: return "cpu";
    }
}

roe_cpu_isa roe_env_cpu_isa(void) {
    switch ((roe_env_isa)roe_env_get("ROE_CPU_ISA").i) {
    case ROE_ENV_ISA_AVX512: return ROE_CPU_ISA_AVX512;
    case ROE_ENV_ISA_AVX2: return ROE_CPU_ISA_AVX2;
    case ROE_ENV_ISA_PORTABLE: return ROE_CPU_ISA_PORTABLE;
    default: return ROE_CPU_ISA_AUTO; /* unset: the best the CPU supports */
    }
}

roe_cpu_bf16 roe_env_cpu_bf16(void) {
    switch ((roe_env_bf16)roe_env_get("ROE_CPU_BF16").i) {
    case ROE_ENV_BF16_AMX: return ROE_CPU_BF16_AMX;
    case ROE_ENV_BF16_DPBF16: return ROE_CPU_BF16_DPBF16;
    case ROE_ENV_BF16_OFF: return ROE_CPU_BF16_OFF;
    default: return ROE_CPU_BF16_AUTO; /* unset: the best the CPU supports */
    }
}

roe_cpu_int8 roe_env_cpu_int8(void) {
    switch ((roe_env_int8)roe_env_get("ROE_CPU_INT8").i) {
    case ROE_ENV_INT8_AMX: return ROE_CPU_INT8_AMX;
    case ROE_ENV_INT8_OFF: return ROE_CPU_INT8_OFF;
    default: return ROE_CPU_INT8_AUTO; /* unset: the best the CPU supports */
    }
}

roe_status roe_backend_create(roe_backend_kind kind, const struct roe_backend_opts *opts,
                              roe_backend **out) {
    if (kind == ROE_BACKEND_CUDA) return roe_backend_cuda_create(opts, out);
    if (kind == ROE_BACKEND_CPU_STAGED) return roe_backend_cpu_staged_create(opts, out);
    return roe_backend_cpu_create(opts, out);
}

double roe_backend_copy_gbs(roe_backend *be, size_t bytes, int reps) {
    void *a = be->ops->alloc(be, bytes), *b = be->ops->alloc(be, bytes);
    double gbs = -1.0;
    if (!a || !b) {
        roe_fail(ROE_ERR_NOMEM, "%s: no memory for two %zu-byte copy buffers", be->name, bytes);
        goto done;
    }
    be->ops->copy(be, b, a, bytes); /* warm-up: pages mapped, clocks up */
    if (be->ops->sync(be) != ROE_OK) goto done;
    const double t0 = roe_now_s();
    for (int i = 0; i < reps; i++) be->ops->copy(be, b, a, bytes);
    if (be->ops->sync(be) != ROE_OK) goto done;
    const double dt = roe_now_s() - t0;
    gbs = 2.0 * (double)bytes * reps / (dt > 0 ? dt : 1e-12) / 1e9;
done:
    if (a) be->ops->free(be, a);
    if (b) be->ops->free(be, b);
    return gbs;
}

void roe_backend_free(roe_backend *be) {
    if (be) be->ops->destroy(be);
}

#ifndef ROE_HAVE_CUDA
roe_status roe_backend_cuda_create(const struct roe_backend_opts *opts, roe_backend **out) {
    *out = NULL;
    return roe_fail(ROE_ERR_UNSUPPORTED,
                    "--backend cuda: this roe was built without CUDA (no CUDA toolkit found at "
                    "configure time, or -DROE_WITH_CUDA=OFF)");
}

int roe_backend_cuda_device_count(void) {
    roe_fail(ROE_ERR_UNSUPPORTED, "this roe was built without CUDA");
    return -1;
}
#endif
