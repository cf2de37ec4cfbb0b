/* cpu_backend.c — the CPU backend's vtable, scratch buffers and ISA choice. */
#include <omp.h>

#include "cpu_impl.h"
#include "runtime/alloc.h"

static void cpu_destroy(roe_backend *be) {
    struct roe_cpu *cpu = roe_cpu_of(be);
    if (cpu) {
        roe_free_aligned(cpu->wscratch);
        roe_free_aligned(cpu->ascratch);
        roe_free(cpu);
    }
    roe_free(be);
}

static const struct roe_backend_ops roe_cpu_ops = {
    .matmul = roe_cpu_matmul,
    .rmsnorm = roe_cpu_rmsnorm,
    .rope = roe_cpu_rope,
    .attention = roe_cpu_attention,
    .swiglu = roe_cpu_swiglu,
    .embed = roe_cpu_embed,
    .destroy = cpu_destroy,
};

static const char *backend_name(roe_cpu_isa isa) {
    switch (isa) {
    case ROE_CPU_ISA_AVX512: return "cpu-avx512";
    case ROE_CPU_ISA_AVX2: return "cpu-avx2";
    default: return "cpu-portable";
    }
}

roe_status roe_backend_cpu_create(const struct roe_backend_opts *opts, roe_backend **out) {
    *out = NULL;
    if (opts->max_cols <= 0 || opts->max_ctx <= 0 || opts->n_threads < 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "cpu backend: max_cols %d, max_ctx %d, n_threads %d",
                        opts->max_cols, opts->max_ctx, opts->n_threads);
    roe_backend *be = roe_calloc(1, sizeof *be);
    struct roe_cpu *cpu = roe_calloc(1, sizeof *cpu);
    if (!be || !cpu) {
        roe_free(be);
        roe_free(cpu);
        return roe_fail(ROE_ERR_NOMEM, "cpu backend: out of memory");
    }
    be->ops = &roe_cpu_ops;
    be->impl = cpu;
    cpu->n_threads = opts->n_threads > 0 ? opts->n_threads : omp_get_max_threads();
    cpu->max_cols = opts->max_cols;
    cpu->max_ctx = opts->max_ctx + 1;
    cpu->isa = roe_cpu_select_isa(opts->isa, &cpu->widen, &cpu->dot4);
    be->name = backend_name(cpu->isa);
    cpu->wscratch = roe_malloc_aligned((size_t)cpu->n_threads * 4 * (size_t)cpu->max_cols * sizeof(float));
    cpu->ascratch = roe_malloc_aligned((size_t)cpu->n_threads * (size_t)cpu->max_ctx * sizeof(float));
    if (!cpu->wscratch || !cpu->ascratch) {
        roe_status st = roe_fail(ROE_ERR_NOMEM, "cpu backend: out of memory for scratch (%d threads)",
                                 cpu->n_threads);
        cpu_destroy(be); /* after the message, which reads cpu */
        return st;
    }
    *out = be;
    return ROE_OK;
}

void roe_backend_free(roe_backend *be) {
    if (be) be->ops->destroy(be);
}
