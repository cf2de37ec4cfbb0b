/*
 * cluster.h — engine steps across ranks (DESIGN.md "One step, as data").
 *
 * Data-parallel attention, expert-parallel MoE: every sequence slot has a home rank that
 * holds its KV cache and runs all of its rows (its RoE samples too). (Every rank's engine
 * allocates the cache of every slot, but only the home rank writes a slot's part, and the
 * untouched pages of a large allocation take no memory.) One step:
 *   coordinator (rank 0)  validates the rows of every rank against the cache contract
 *                         (engine.h), then broadcasts them as a step plan (control.h),
 *                         with the bindings (home, seed, roster) of sequences that changed
 *   every rank            runs its home rows through its engine (every rank steps, even
 *                         with no rows: each takes part in every MoE layer's exchange)
 *                         and reduces its groups (below)
 *   coordinator           gathers each rank's group outputs (Reply) in plan order
 * With one rank the plan never leaves the process: a step is the engine step plus the
 * group reductions, allocation-free.
 *
 * A group is a run of rows of one sequence whose logits leave the home rank together:
 *   ROE_GROUP_LOGITS       each row's logits (n x vocab floats)
 *   ROE_GROUP_MEAN         RoE aggregation of the rows (roe_aggregate, vocab floats)
 *   | ROE_GROUP_STORE_CLEAN  keep the first row's logits on the home rank as the sequence's
 *                          clean logits (adaptive K: the samples may follow next step)
 *   | ROE_GROUP_WITH_CLEAN   aggregate the kept clean logits with the rows (clean first)
 * Only rows inside a group may want logits. Outputs are concatenated in group order.
 *
 * Results are the same bits whatever the rank count (engine.h): aggregation runs on the
 * home rank with the same function and order as in one process.
 */
#ifndef ROE_CLUSTER_H
#define ROE_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "control.h"
#include "engine.h"
#include "kv_cache.h"
#include "base/status.h"

enum {
    ROE_GROUP_LOGITS = 0,
    ROE_GROUP_MEAN = 1,
    ROE_GROUP_STORE_CLEAN = 2,
    ROE_GROUP_WITH_CLEAN = 4,
};

struct roe_group {
    int first; /* rows [first, first + n) of the step */
    int n;
    int mode;  /* ROE_GROUP_LOGITS or ROE_GROUP_MEAN, | flags */
};

typedef enum roe_home_policy {
    ROE_HOME_ROUND_ROBIN = 0, /* sequence i on rank i mod N */
    ROE_HOME_LEAST_LOADED,    /* each sequence, by decreasing cost, on the rank with least work */
} roe_home_policy;

typedef struct roe_cluster roe_cluster;

/* Buffers for the engine's limits (max_rows, max_seqs, the vocabulary). The engine (and its
 * communicator) are borrowed. */
roe_status roe_cluster_create(roe_engine *e, roe_cluster **out);
void roe_cluster_free(roe_cluster *cl);

int roe_cluster_size(const roe_cluster *cl);
size_t roe_group_out_floats(const struct roe_group *g, int vocab);

/* Parses ROE_HOME_POLICY's value ("round-robin", "least-loaded"; NULL: round-robin). */
roe_status roe_home_policy_parse(const char *s, roe_home_policy *out);

/* Homes for n sequences with the given costs (any unit; e.g. tokens x K): home[i], over
 * n_ranks ranks; load is scratch [n_ranks]. Least-loaded places sequences by
 * decreasing cost (ties: lower index first), each on the least-loaded rank (ties: lower rank). */
void roe_plan_homes(roe_home_policy policy, int n_ranks, const double *cost, int n, int *home, double *load);

/* ---- coordinator (rank 0) ---- */

/* Makes `seq` a new, empty sequence homed on `home` (its cache empties there). */
roe_status roe_cluster_reset_seq(roe_cluster *cl, int seq, int home);

/* Makes the new, empty `seq` start with the longest prefix of tokens[0, n) that its home's KV
 * cache holds (engine.h roe_engine_prefix_match); returns the positions it holds. On any home:
 * another rank's is found in the coordinator's mirror of its pool (roe_cluster_kv) and that rank
 * takes the same blocks before the next step's rows (cluster.c "the pool log"). */
int roe_cluster_prefix_seq(roe_cluster *cl, int seq, const int32_t *tokens, int n);

/* What roe_cluster_prefix_seq would find now for a sequence homed on `home`, taking nothing
 * (kv_cache.h roe_kv_cache_probe): the positions, and the unreferenced blocks among them. */
int roe_cluster_prefix_probe(const roe_cluster *cl, int home, const int32_t *tokens, int n, int *unreferenced);

/* The block pool of rank `home` as the coordinator knows it (admission counts its blocks): its
 * engine's own, or (several ranks) the mirror it keeps of that rank's, updated by the same calls
 * in the same order as that rank's engine makes them (reset, fork, each step's reservations and
 * registrations), so its counts are that rank's. */
const struct roe_kv_cache *roe_cluster_kv(const roe_cluster *cl, int home);

/* Makes `dst` (reset already, on the home rank of `src`) start as the first len positions of
 * src's cache: a sequence that shares src's prompt (n > 1 choices computes the prompt once).
 * Takes effect before the next step's rows. */
roe_status roe_cluster_fork_seq(roe_cluster *cl, int dst, int src, int len);

/* One step over every rank. out receives the groups' outputs (sum of
 * roe_group_out_floats); stats (may be NULL) sums every rank's engine statistics. */
roe_status roe_cluster_step(roe_cluster *cl, const struct roe_row *rows, int n,
                            const struct roe_group *groups, int ng, float *out,
                            struct roe_step_stats *stats);

/* Continuous depth-wise batching of a MoR engine (runtime/mor.h), in a world of one: the row
 * (sample 0, at its sequence's length) is queued; a tick runs the engine's tick and counts each
 * finished row in its sequence's length. ROE_ERR_UNSUPPORTED with several ranks. */
roe_status roe_cluster_mor_submit(roe_cluster *cl, const struct roe_row *row);
roe_status roe_cluster_mor_tick(roe_cluster *cl, int width, struct roe_row *done, int *n_done, float *logits);

/* ---- the other ranks ---- */

/* Runs the step a plan describes and replies to the coordinator. */
roe_status roe_cluster_serve(roe_cluster *cl, const struct roe_step_plan *plan);

#endif
