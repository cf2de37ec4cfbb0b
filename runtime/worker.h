/*
 * worker.h — the life of the ranks other than 0, and the coordinator's calls that drive it.
 *
 * Under mpirun every rank but 0 runs roe_worker_run instead of a subcommand: it waits for
 * the coordinator's Control messages (control.h) and serves them:
 *   open         load the model and open this rank's share of the session exactly as rank 0
 *                opened its own (rank.h: the dense weights and this rank's experts, an engine
 *                with the coordinator's limits, kernel path and placement), then a cluster;
 *                reply with the bytes it holds, or why it could not
 *   step         run this rank's share of the step and reply (cluster.h)
 *   exit         return
 * Rank 0 runs the subcommand; its session opens the workers (roe_workers_open) when it
 * creates its engine, and main() ends them (roe_workers_exit) when the command returns.
 * Every wait is bounded by the communicator's timeout, so a coordinator that died or hung
 * ends the workers too.
 */
#ifndef ROE_WORKER_H
#define ROE_WORKER_H

#include <stdint.h>

#include "base/status.h"
#include "comm/comm.h"
#include "control.h"

/* What each rank reported when its session opened. */
struct roe_rank_info {
    uint64_t resident_bytes; /* dense weights + its experts */
    uint64_t mapped_resident; /* checkpoint pages it touched (measured; after warming) */
    char backend[32];
};

/* Coordinator: asks every other rank to open the session `spec` (control.h; its model_dir an
 * absolute path every rank can read) as rank 0 opened its own (rank.h). Then
 * roe_workers_opened collects their answers: info[r] receives rank r's report (info may be
 * NULL); a rank that failed makes it fail with its message ("rank 2: ..."). Between the two
 * the coordinator may do its own work (its warm-up) while the others open. */
roe_status roe_workers_open(roe_comm *c, const struct roe_session_spec *spec);
roe_status roe_workers_opened(roe_comm *c, struct roe_rank_info *info);

/* Coordinator: tells every other rank to exit. */
roe_status roe_workers_exit(roe_comm *c, int code);

/* Other ranks: serves the coordinator until it says Exit (ROE_OK) or something fails (the
 * status; the caller reports it and ends the job). */
roe_status roe_worker_run(roe_comm *c);

#endif
