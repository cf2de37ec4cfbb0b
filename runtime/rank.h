/*
 * rank.h — one rank's share of a session, opened the same way on rank 0 and on every other
 * rank: the loaded model trimmed to the dense weights and this rank's experts (the placement
 * of the session spec, control.h), and an engine with the spec's limits. Rank 0 builds the
 * spec from its command line and sends it (worker.h); the others receive it and open the
 * same way; so every rank runs the same kernel path, wire and limits.
 */
#ifndef ROE_RANK_H
#define ROE_RANK_H

#include "base/status.h"
#include "comm/comm.h"
#include "control.h"
#include "engine.h"
#include "model.h"
#include "placement.h"

struct roe_rank {
    struct roe_model *model;  /* borrowed: it must outlive the rank */
    struct roe_placement *pl; /* owned; NULL: a model without experts */
    roe_engine *engine;       /* owned */
};

/* Opens this rank (of comm; NULL: a world of one) of the session `spec` over `model`: checks
 * the model matches the spec's layers and experts, places the experts (spec->owner), keeps
 * this rank's (the others' weights are dropped from the model), and creates the engine on
 * the spec's backend. A spec that names a CPU kernel path (isa) needs this CPU to run it,
 * since other paths give other bits. random_seed: a shapes-only model's weights (one process).
 * On failure r holds what was opened: roe_rank_close it. */
roe_status roe_rank_open(struct roe_rank *r, struct roe_model *model, const struct roe_session_spec *spec,
                         roe_comm *comm, uint64_t random_seed);
void roe_rank_close(struct roe_rank *r);

/* The spec of a session: eo's limits and paths (its comm, placement, device and seed are each
 * rank's own), pl's owner table (pointed to, not copied; NULL: one process). */
struct roe_session_spec roe_session_spec_of(const char *model_dir, const struct roe_engine_opts *eo,
                                            const struct roe_placement *pl, const struct roe_model_config *cfg,
                                            int warm);

/* The kernel path a CPU backend's name says ("cpu-avx2": AVX2); AUTO for any other. */
int roe_rank_isa_of_backend(const char *name);

#endif
