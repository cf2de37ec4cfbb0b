/*
 * env.h — every environment variable the runtime reads, declared in one place.
 *
 *   ROE_MODEL        default model directory (instead of the bundled one)
 *   ROE_CPU_ISA      force a CPU kernel path: avx512, avx2 or portable
 *   ROE_LOG          log level: error, warn, info, debug
 *
 * Multi-rank runs (README "Running on several ranks"):
 *   ROE_COMM               transport: auto (default: mpi when started by mpirun), self, mpi
 *   ROE_COMM_TIMEOUT_S     bound on every wait for another rank, seconds (default 60)
 *   ROE_PLACEMENT          expert placement file (default: contiguous blocks per rank)
 *   ROE_HOME_POLICY        home rank of each sequence: round-robin (default), least-loaded
 *   ROE_EP_WIRE            dtype of dispatched rows: f32 (default, bit-exact) or bf16
 *   ROE_EP_OVERLAP         0 turns off computing local experts while rows are in flight
 *   ROE_EP_EARLY_US        how long a rank waits for a late rank's headers before it runs its
 *                          own rows on its experts (comm/dispatch.h "early"; default 100, 0 at once)
 *   ROE_TEST_CONTROL_VERSION  tests only: pretend to speak another control-plane version
 * Read from Open MPI's launcher: OMPI_COMM_WORLD_SIZE / PMIX_RANK (started by mpirun?),
 * OMPI_COMM_WORLD_LOCAL_RANK (the rank's index on its node: its GPU),
 * OMPI_COMM_WORLD_LOCAL_SIZE (ranks on this node: more than cores means they share).
 */
#ifndef ROE_ENV_H
#define ROE_ENV_H

#include "kernels/backend.h"
#include "base/log.h"

const char *roe_env_model_dir(void);     /* NULL if unset */
roe_cpu_isa roe_env_cpu_isa(void);       /* AUTO if unset or unknown */
roe_log_level roe_env_log_level(void);   /* WARN if unset */

typedef enum roe_env_comm_kind {
    ROE_ENV_COMM_AUTO = 0,
    ROE_ENV_COMM_SELF,
    ROE_ENV_COMM_MPI,
} roe_env_comm_kind;

/* ROE_COMM; -1 if set to something unknown (the caller reports it). */
int roe_env_comm(void);
int roe_env_launched_by_mpirun(void);    /* 1 if Open MPI / PMIx started this process */
int roe_env_local_rank(void);            /* OMPI_COMM_WORLD_LOCAL_RANK, 0 if unset */
int roe_env_local_size(void);            /* OMPI_COMM_WORLD_LOCAL_SIZE, 1 if unset */
/* Threads per rank when neither a flag nor OMP_NUM_THREADS says: with several ranks on this
 * node, the online CPUs divided among them (at least 1), so ranks do not oversubscribe the
 * cores; 0 (OpenMP's default) otherwise. */
int roe_env_default_threads(void);
/* 1 if this node's ranks and their threads want more cores than it has online (then
 * waiting ranks give their core up). */
int roe_env_cores_shared(void);
double roe_env_comm_timeout_s(void);     /* 60 if unset; <= 0 if malformed */
const char *roe_env_placement(void);     /* NULL if unset */
const char *roe_env_home_policy(void);   /* NULL if unset */
const char *roe_env_ep_wire(void);       /* NULL if unset */
int roe_env_ep_overlap(void);            /* 1 unless ROE_EP_OVERLAP=0 */
/* ROE_EP_EARLY_US as struct roe_engine_opts.ep_early_us: unset 0 (the default wait), "0" -1
 * (at once), N > 0 itself */
int roe_env_ep_early_us(void);
int roe_env_test_control_version(void);  /* 0 if unset */

#endif
