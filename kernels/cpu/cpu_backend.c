/* cpu_backend.c — the CPU backend's vtable, scratch buffers and ISA choice. */
#include <omp.h>
#include <string.h>

#include "cpu_impl.h"
#include "base/alloc.h"

static void cpu_destroy(roe_backend *be) {
    struct roe_cpu *cpu = roe_cpu_of(be);
    if (cpu) {
        roe_free_aligned(cpu->wscratch);
        roe_free_aligned(cpu->ascratch);
        roe_free_aligned(cpu->qscratch);
        roe_free_aligned(cpu->bf16_xscratch);
        roe_free_aligned(cpu->bf16_wscratch);
        roe_free_aligned(cpu->qamx_xscratch);
        roe_free_aligned(cpu->qamx_wscratch);
        roe_free(cpu);
    }
    roe_free(be);
}

/* Backend memory is host memory: the engine never calls upload/download/copy on this
 * backend's buffers in its hot path (be->host_memory), but the ops exist for tests and
 * for code written against the interface. */
static void *cpu_alloc(roe_backend *be, size_t bytes) { return roe_malloc_aligned(bytes ? bytes : 1); }
static void cpu_free(roe_backend *be, void *p) { roe_free_aligned(p); }
static void cpu_copy(roe_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) memmove(dst, src, bytes);
}
static roe_status cpu_download(roe_backend *be, void *dst, const void *src, size_t bytes) {
    cpu_copy(be, dst, src, bytes);
    return ROE_OK;
}
static roe_status cpu_sync(roe_backend *be) { return ROE_OK; }
static roe_status cpu_mat_upload(roe_backend *be, const struct roe_mat *host, struct roe_mat *dev) {
    *dev = *host;
    return ROE_OK;
}
static roe_status cpu_mat_random(roe_backend *be, int rows, int cols, float scale, uint64_t seed,
                                 struct roe_mat *dev) {
    return roe_fail(ROE_ERR_UNSUPPORTED, "random weights are generated on a CUDA device only (--backend cuda)");
}
static void cpu_mat_free(roe_backend *be, struct roe_mat *dev) { memset(dev, 0, sizeof *dev); }

/* The staged variant's weights: a private copy in the file's dtype (so the kernels read the
 * same values as from the mapping), freed by mat_free. */
static roe_status staged_mat_upload(roe_backend *be, const struct roe_mat *host, struct roe_mat *dev) {
    const size_t bytes = (size_t)host->rows * roe_dtype_row_bytes(host->dtype, (size_t)host->cols);
    const size_t nsc = roe_dtype_is_block(host->dtype) ? (size_t)host->rows * roe_dtype_row_blocks(host->dtype, (size_t)host->cols) : 0;
    const size_t nts = host->tile_scale ? (size_t)((host->tile_row0 + host->rows + ROE_FP8_TILE - 1) / ROE_FP8_TILE) *
                                              (size_t)((host->cols + ROE_FP8_TILE - 1) / ROE_FP8_TILE) : 0;
    const size_t total = bytes + (host->scales ? nsc * 2 : 0) + (host->mins ? nsc * 2 : 0) + (host->e8m0 ? nsc : 0) +
                         (nts ? 64 + nts * sizeof(float) : 0);
    char *p = roe_malloc_aligned(total ? total : 1);
    if (!p) return roe_fail(ROE_ERR_NOMEM, "cpu-staged: out of memory for %zu bytes of weights", total);
    if (bytes) memcpy(p, host->data, bytes);
    *dev = *host;
    dev->data = p;
    if (host->scales) { /* a block dtype's parameters follow its data in the same allocation */
        dev->scales = memcpy(p + bytes, host->scales, nsc * 2);
        if (host->mins) dev->mins = memcpy(p + bytes + nsc * 2, host->mins, nsc * 2);
    }
    if (host->e8m0) dev->e8m0 = memcpy(p + bytes, host->e8m0, nsc); /* MXFP4: its exponents */
    if (nts) /* FP8's tile scales likewise (no block dtype has both) */
        dev->tile_scale = memcpy(p + (bytes + 63) / 64 * 64, host->tile_scale, nts * sizeof(float));
    return ROE_OK;
}
static void staged_mat_free(roe_backend *be, struct roe_mat *dev) {
    roe_free_aligned((void *)dev->data);
    memset(dev, 0, sizeof *dev);
}

/* The ops both CPU tables share: the kernels and host memory; they differ in how weights
 * become "backend resident" (the mmapped view itself, or a copy for cpu-staged). */
#define ROE_CPU_SHARED_OPS                                                                         \
    .matmul = roe_cpu_matmul, .rmsnorm = roe_cpu_rmsnorm, .rope = roe_cpu_rope,                    \
    .attention = roe_cpu_attention, .swiglu = roe_cpu_swiglu, .embed = roe_cpu_embed,              \
    .swiglu_oai = roe_cpu_swiglu_oai, .add_bias = roe_cpu_add_bias,                                \
    .matmul_f32 = roe_cpu_matmul, .add = roe_cpu_add, .clamp = roe_cpu_clamp,                      \
    .copy_rows = roe_cpu_copy_rows, .kv_store = roe_cpu_kv_store, .moe_combine = roe_cpu_moe_combine, .alloc = cpu_alloc,        \
    .mla_attention = roe_cpu_mla_attention, .matmul_heads = roe_cpu_matmul_heads,                  \
    .free = cpu_free, .upload = cpu_copy, .download = cpu_download, .copy = cpu_copy,              \
    .sync = cpu_sync, .mat_random = cpu_mat_random, .destroy = cpu_destroy

static const struct roe_backend_ops roe_cpu_ops = {
    ROE_CPU_SHARED_OPS,
    .mat_upload = cpu_mat_upload,
    .mat_free = cpu_mat_free,
};

static const struct roe_backend_ops roe_cpu_staged_ops = {
    ROE_CPU_SHARED_OPS,
    .mat_upload = staged_mat_upload,
    .mat_free = staged_mat_free,
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
    be->host_memory = 1;
    be->impl = cpu;
    cpu->n_threads = opts->n_threads > 0 ? opts->n_threads : omp_get_max_threads();
    cpu->max_cols = opts->max_cols;
    cpu->max_ctx = opts->max_ctx + 1;
    cpu->isa = roe_cpu_select_isa(opts->isa, &cpu->widen, &cpu->dot4);
    __builtin_cpu_init();
    cpu->vnni = cpu->isa == ROE_CPU_ISA_AVX512 && __builtin_cpu_supports("avx512vnni");
    cpu->pf_nta = !__builtin_cpu_is("intel");
    /* the bf16 multipliers, on the AVX-512 path only (their kernels use AVX-512): as asked, else
     * AMX where the CPU and the kernel allow it. AVX512-BF16 only when asked: with x split in two
     * it does the FMA kernels' multiply-adds per instruction, and measured half their rate on a
     * Sapphire Rapids (docs/PERFORMANCE.md); Zen 4 is unmeasured. A path the host lacks: fp32. */
    roe_cpu_bf16 bw = opts->bf16 != ROE_CPU_BF16_AUTO ? opts->bf16 : roe_env_cpu_bf16();
    if (bw == ROE_CPU_BF16_AUTO) bw = ROE_CPU_BF16_AMX;
    if (cpu->isa != ROE_CPU_ISA_AVX512) bw = ROE_CPU_BF16_OFF;
    if (bw == ROE_CPU_BF16_AMX && !roe_cpu_amx_usable()) bw = ROE_CPU_BF16_OFF;
    if (bw == ROE_CPU_BF16_DPBF16 && !roe_cpu_has_avx512bf16()) bw = ROE_CPU_BF16_OFF;
    cpu->bf16 = bw;
    cpu->q_rows = opts->max_rows > 4 ? (opts->max_rows < 256 ? opts->max_rows : 256) : 64;
    /* the Q8/Q4 batched rows on AMX-INT8 tiles: the same bits as the VNNI kernels, so on by default */
    const roe_cpu_int8 iw = opts->int8 != ROE_CPU_INT8_AUTO ? opts->int8 : roe_env_cpu_int8();
    cpu->q_amx = iw != ROE_CPU_INT8_OFF && cpu->isa == ROE_CPU_ISA_AVX512 && cpu->vnni && roe_cpu_amx_int8_usable();
    be->name = backend_name(cpu->isa);
    cpu->wscratch = roe_malloc_aligned((size_t)cpu->n_threads * 4 * (size_t)cpu->max_cols * sizeof(float));
    cpu->ascratch = roe_malloc_aligned((size_t)cpu->n_threads * ROE_CPU_MLA_HEADS * (size_t)cpu->max_ctx *
                                       sizeof(float));
    cpu->qscratch = roe_malloc_aligned(roe_cpu_qscratch_bytes(cpu->max_cols, cpu->q_rows));
    if (cpu->bf16 != ROE_CPU_BF16_OFF) {
        cpu->bf16_xscratch = roe_malloc_aligned(roe_cpu_bf16_xscratch_bytes(cpu->max_cols));
        cpu->bf16_wscratch = roe_malloc_aligned((size_t)cpu->n_threads * roe_cpu_bf16_wscratch_bytes(cpu->max_cols));
        if (cpu->bf16_xscratch) /* the x rows a call leaves unpacked are read (never stored): defined */
            memset(cpu->bf16_xscratch, 0, roe_cpu_bf16_xscratch_bytes(cpu->max_cols));
    }
    if (cpu->q_amx) {
        cpu->qamx_xscratch = roe_malloc_aligned(roe_cpu_qamx_x_bytes(cpu->max_cols, cpu->q_rows));
        cpu->qamx_wscratch = roe_malloc_aligned((size_t)cpu->n_threads * roe_cpu_qamx_thread_bytes(cpu->max_cols));
        if (cpu->qamx_xscratch) /* the rows of a last 16-row block a call leaves unset are read (never used): defined */
            memset(cpu->qamx_xscratch, 0, roe_cpu_qamx_x_bytes(cpu->max_cols, cpu->q_rows));
    }
    if (!cpu->wscratch || !cpu->ascratch || !cpu->qscratch || (cpu->q_amx && (!cpu->qamx_xscratch || !cpu->qamx_wscratch)) ||
        (cpu->bf16 != ROE_CPU_BF16_OFF && (!cpu->bf16_xscratch || !cpu->bf16_wscratch))) {
        roe_status st = roe_fail(ROE_ERR_NOMEM, "cpu backend: out of memory for scratch (%d threads)",
                                 cpu->n_threads);
        cpu_destroy(be); /* after the message, which reads cpu */
        return st;
    }
    *out = be;
    return ROE_OK;
}

roe_status roe_backend_cpu_staged_create(const struct roe_backend_opts *opts, roe_backend **out) {
    ROE_TRY(roe_backend_cpu_create(opts, out));
    (*out)->ops = &roe_cpu_staged_ops;
    (*out)->host_memory = 0;
    (*out)->name = "cpu-staged";
    return ROE_OK;
}
