/* engine_opts.c — the engine options of a subcommand; see engine_opts.h. */
#include "engine_opts.h"

#include "base/env.h"

struct roe_engine_opts roe_launcher_engine_opts(int max_seqs, int max_ctx, int rows, int k,
                                                int n_threads) {
    struct roe_engine_opts eo = roe_engine_opts_default();
    eo.max_seqs = max_seqs;
    eo.max_ctx = max_ctx;
    eo.max_rows = rows > k ? rows : k;
    eo.n_threads = n_threads;
    eo.isa = roe_env_cpu_isa();
    return eo;
}
