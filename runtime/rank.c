/* rank.c — opening one rank's share of a session; see rank.h. */
#include "rank.h"

#include <string.h>

#include "base/alloc.h"
#include "base/env.h"
#include "quant.h"

int roe_rank_isa_of_backend(const char *name) {
    if (strcmp(name, "cpu-avx512") == 0) return ROE_CPU_ISA_AVX512;
    if (strcmp(name, "cpu-avx2") == 0) return ROE_CPU_ISA_AVX2;
    if (strcmp(name, "cpu-portable") == 0) return ROE_CPU_ISA_PORTABLE;
    return ROE_CPU_ISA_AUTO;
}

struct roe_session_spec roe_session_spec_of(const char *model_dir, const struct roe_engine_opts *eo,
                                            const struct roe_placement *pl, const struct roe_model_config *cfg,
                                            int warm) {
    return (struct roe_session_spec){
        .model_dir = model_dir, .max_seqs = eo->max_seqs, .max_ctx = eo->max_ctx, .max_rows = eo->max_rows,
        .n_threads = eo->n_threads, .isa = (int)eo->isa, .kv_bytes = eo->kv_bytes, .kv_block_size = eo->kv_block_size,
        .kv_dtype = (int)eo->kv_dtype, .mor_full_depth = eo->mor_full_depth, .no_dedup = eo->no_dedup, .wire = (int)eo->wire,
        .no_overlap = eo->no_overlap, .warm = warm, .backend = (int)eo->backend, .n_layers = cfg->n_layers,
        .n_experts = cfg->n_experts, .owner = pl ? pl->owner : NULL,
        .n_owner = pl ? (size_t)pl->n_layers * pl->n_experts : 0, .placement_source = pl ? pl->source : NULL};
}

/* The placement of the spec's owner table; this rank keeps (and, for gpt-oss, transposes) its
 * experts. Without an owner table every expert is this process's. */
static roe_status place(struct roe_rank *r, const struct roe_session_spec *spec, int me, int n_ranks) {
    const struct roe_model_config *cfg = &r->model->cfg;
    if (spec->n_layers != cfg->n_layers || spec->n_experts != cfg->n_experts)
        return roe_fail(ROE_ERR_FORMAT,
                        "'%s' has %d layers and %d experts here, but %d and %d on rank 0: every rank must "
                        "read the same checkpoint",
                        spec->model_dir, cfg->n_layers, cfg->n_experts, spec->n_layers, spec->n_experts);
    if (cfg->n_experts == 0 || !spec->owner) return roe_model_materialize(r->model); /* every expert here */
    ROE_TRY(roe_placement_from_owner(cfg, n_ranks, spec->owner, spec->n_owner, spec->placement_source, &r->pl));
    return roe_model_keep_experts(r->model, r->pl, me);
}

static struct roe_engine_opts engine_opts(const struct roe_session_spec *spec, roe_comm *comm,
                                          const struct roe_placement *pl, uint64_t random_seed) {
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = spec->max_seqs;
    eo.max_ctx = spec->max_ctx;
    eo.max_rows = spec->max_rows;
    eo.n_threads = spec->n_threads > 0 ? spec->n_threads : roe_env_default_threads();
    eo.isa = spec->isa >= ROE_CPU_ISA_AUTO && spec->isa <= ROE_CPU_ISA_AVX512 ? (roe_cpu_isa)spec->isa
                                                                               : ROE_CPU_ISA_AUTO;
    eo.no_dedup = spec->no_dedup;
    eo.comm = comm;
    eo.placement = pl;
    eo.wire = spec->wire == ROE_EP_WIRE_BF16 ? ROE_EP_WIRE_BF16 : ROE_EP_WIRE_F32;
    eo.no_overlap = spec->no_overlap;
    eo.ep_early_us = roe_env_ep_early_us(); /* scheduling only: results do not depend on it */
    eo.backend = spec->backend == ROE_BACKEND_CUDA || spec->backend == ROE_BACKEND_CPU_STAGED
                     ? (roe_backend_kind)spec->backend : ROE_BACKEND_CPU;
    eo.device = roe_env_local_rank(); /* the backend takes it modulo the node's devices */
    eo.random_seed = random_seed;
    eo.kv_bytes = spec->kv_bytes;
    eo.kv_block_size = spec->kv_block_size;
    eo.kv_dtype = (roe_dtype)spec->kv_dtype; /* anything but F32, BF16 or F8_E4M3: the cache refuses it */
    eo.mor_full_depth = spec->mor_full_depth;
    return eo;
}

roe_status roe_rank_open(struct roe_rank *r, struct roe_model *model, const struct roe_session_spec *spec,
                         roe_comm *comm, uint64_t random_seed) {
    memset(r, 0, sizeof *r);
    r->model = model;
    const int me = comm ? roe_comm_rank(comm) : 0, N = comm ? roe_comm_size(comm) : 1;
    ROE_TRY(place(r, spec, me, N));
    if (spec->weights < ROE_WEIGHTS_BF16 || spec->weights > ROE_WEIGHTS_Q4)
        return roe_fail(ROE_ERR_INVALID_ARG, "session: weights format %d is not bf16, q8 or q4", spec->weights);
    const int on_cpu = spec->backend == ROE_BACKEND_CPU || spec->backend == ROE_BACKEND_CPU_STAGED;
    if (spec->weights != ROE_WEIGHTS_BF16 && !on_cpu)
        return roe_fail(ROE_ERR_UNSUPPORTED, "--weights %s: quantized weights run on the CPU backend only",
                        roe_weights_name((roe_weights)spec->weights));
    if (!on_cpu && model->cfg.n_layers > 0 && roe_dtype_is_block(model->layers[0].wq.dtype))
        return roe_fail(ROE_ERR_UNSUPPORTED, "'%s' holds %s weights: quantized weights run on the CPU backend only",
                        spec->model_dir, roe_dtype_name(model->layers[0].wq.dtype));
    /* FP8 (128 x 128 tile scales) and MXFP4 checkpoints run on CUDA too, native on the device
     * (kernels/cuda/matmul_block.cu; compiled, not yet run on a GPU: docs/GPU.md); roe's own
     * q8/q4 blocks above do not. */
    ROE_TRY(roe_model_quantize(model, (roe_weights)spec->weights)); /* this rank's share only */
    const struct roe_engine_opts eo = engine_opts(spec, comm, r->pl, random_seed);
    ROE_TRY(roe_engine_create(model, &eo, &r->engine));
    const char *got = roe_engine_backend_name(r->engine);
    if (eo.isa != ROE_CPU_ISA_AUTO && roe_rank_isa_of_backend(got) != (int)eo.isa)
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        me == 0 ? "this CPU cannot run the kernel path ROE_CPU_ISA asks for (it runs %s here)"
                                : "this CPU cannot run rank 0's kernel path (it runs %s here): results would "
                                  "differ; set ROE_CPU_ISA on rank 0 to a path every rank has (avx2, portable)",
                        got);
    return ROE_OK;
}

void roe_rank_close(struct roe_rank *r) {
    roe_engine_free(r->engine);
    roe_placement_free(r->pl);
    memset(r, 0, sizeof *r);
}
