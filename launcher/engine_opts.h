/*
 * engine_opts.h — the engine options a subcommand asks for: the runtime's defaults, the CPU
 * kernels the environment selects, and the sizes the command derives from its flags. One
 * rule every command shares: a step holds at least K rows, since the K RoE samples of a
 * token run in the same step.
 */
#ifndef ROE_ENGINE_OPTS_H
#define ROE_ENGINE_OPTS_H

#include "runtime/engine.h"

/* max_rows = max(rows, k); n_threads 0: all cores (the session resolves it). */
struct roe_engine_opts roe_launcher_engine_opts(int max_seqs, int max_ctx, int rows, int k,
                                                int n_threads);

#endif
