/*
 * engine_opts.h — the engine options a subcommand asks for: the runtime's defaults, the CPU
 * kernels the environment selects, and the sizes the command derives from its flags. One
 * rule every command shares: a step holds at least K rows, since the K RoE samples of a
 * token run in the same step.
 */
#ifndef ROE_ENGINE_OPTS_H
#define ROE_ENGINE_OPTS_H

#include "args.h"
#include "runtime/engine.h"

/* max_rows = max(rows, k); n_threads 0: all cores (the session resolves it). */
struct roe_engine_opts roe_launcher_engine_opts(int max_seqs, int max_ctx, int rows, int k,
                                                int n_threads);

/* The KV cache flags generate, bench, eval and serve share (docs/KV.md):
 *   --kv-memory SIZE    each rank's block pool: bytes with an optional K/M/G/T suffix (powers of
 *                       1024, "1.5G"), or a fraction in (0, 1) of the host's available memory
 *                       ("0.5": MemAvailable of /proc/meminfo, read on rank 0); default: every
 *                       sequence slot's full context
 *   --kv-block-size N   positions per block (16)
 *   --kv-dtype bf16|f32 the cache's elements (bf16; f32: the exact cache the golden tests use) */
struct roe_kv_flags {
    const char *memory;
    int block_size;
    const char *dtype;
};

enum { ROE_KV_FLAGS_N_SPECS = 3 };

/* Writes the flag specs into specs[0..ROE_KV_FLAGS_N_SPECS). */
void roe_kv_flags_specs(struct roe_kv_flags *f, struct roe_arg_spec *specs);
/* Sets eo's kv_bytes, kv_block_size and kv_dtype from the flags: 0, or prints "roe CMD: ..." naming the
 * flag and returns 2. */
int roe_kv_flags_apply(const struct roe_kv_flags *f, const char *cmd, struct roe_engine_opts *eo);
/* SIZE as --kv-memory reads it (avail: the available bytes a fraction is of). 0 on success. */
int roe_kv_parse_memory(const char *text, size_t avail, size_t *out);

#endif
