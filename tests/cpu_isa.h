/*
 * cpu_isa.h — the kernel tests' CPU backends forced to one instruction set (test_quant,
 * test_fp8, test_mxfp4: every ISA this host runs must give the same bits), and the bf16
 * matmul's paths (test_bf16mm: AMX, AVX512-BF16, fp32 FMAs) and the Q8/Q4 batched rows' (test_quant:
 * AMX-INT8 tiles or VNNI) forced on and off.
 */
#ifndef ROE_TEST_CPU_ISA_H
#define ROE_TEST_CPU_ISA_H

#include <string.h>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_impl.h"

/* A CPU backend on `isa` (the host may not run it: isa_runs says) with `threads` threads and
 * room for `max_cols` columns; NULL on failure. */
__attribute__((unused)) static roe_backend *cpu(roe_cpu_isa isa, int threads, int max_cols) {
    struct roe_backend_opts o = {.n_threads = threads, .max_cols = max_cols, .max_ctx = 16, .isa = isa, .max_rows = 16};
    roe_backend *be = NULL;
    if (roe_backend_cpu_create(&o, &be) != ROE_OK) return NULL;
    return be;
}

/* Whether the backend really runs `isa` (a host without it falls back to another). */
__attribute__((unused)) static int isa_runs(roe_backend *be, roe_cpu_isa isa) {
    return isa == ROE_CPU_ISA_PORTABLE || (isa == ROE_CPU_ISA_AVX2 && strcmp(be->name, "cpu-avx2") == 0) ||
           (isa == ROE_CPU_ISA_AVX512 && strcmp(be->name, "cpu-avx512") == 0);
}

/* The FP8/MXFP4 decode layout the backend chose by CPU vendor, forced (kernels/cpu/cpu_impl.h
 * pf_nta: 1 as on AMD, one W stream per thread; 0 as on Intel, four quarters of W side by side):
 * the tests run both on any host, and both must give the same bits. */
static inline void cpu_force_streams(roe_backend *be, int pf_nta) { roe_cpu_of(be)->pf_nta = pf_nta; }
/* A CPU backend on `isa` with the bf16 matmul forced to `bf16` (the host may not run it:
 * bf16_runs says); NULL on failure. */
__attribute__((unused)) static roe_backend *cpu_bf16(roe_cpu_isa isa, roe_cpu_bf16 bf16, int threads, int max_cols) {
    struct roe_backend_opts o = {.n_threads = threads, .max_cols = max_cols, .max_ctx = 16, .isa = isa, .bf16 = bf16,
                                 .max_rows = 16};
    roe_backend *be = NULL;
    if (roe_backend_cpu_create(&o, &be) != ROE_OK) return NULL;
    return be;
}

/* A CPU backend on AVX-512 with the Q8/Q4 batched rows' path forced to `int8` (AMX tiles or the
 * VNNI kernels; roe_cpu_of(be)->q_amx says which runs) and `max_rows` rows quantized at once. */
__attribute__((unused)) static roe_backend *cpu_int8(roe_cpu_int8 int8, int threads, int max_cols, int max_rows) {
    struct roe_backend_opts o = {.n_threads = threads, .max_cols = max_cols, .max_ctx = 16, .isa = ROE_CPU_ISA_AVX512,
                                 .int8 = int8, .max_rows = max_rows};
    roe_backend *be = NULL;
    if (roe_backend_cpu_create(&o, &be) != ROE_OK) return NULL;
    return be;
}

/* The bf16 matmul path the backend really runs. */
__attribute__((unused)) static roe_cpu_bf16 bf16_path(roe_backend *be) { return roe_cpu_of(be)->bf16; }

#endif
