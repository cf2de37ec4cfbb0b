/*
 * comm.h — the communicator: how ranks talk (DESIGN.md "Process model").
 *
 * A roe_comm is an opaque handle over one transport, chosen at creation:
 *   self  one process, a world of size 1 (no MPI; every collective is a copy)
 *   mpi   Open MPI (comm/comm_mpi.c, built when ROE_HAVE_MPI is defined)
 *   nccl  NCCL over DEVICE buffers (comm/comm_nccl.c, built when ROE_HAVE_NCCL is defined),
 *         bootstrapped from one of the above; see roe_comm_nccl_create
 * The vtable (struct roe_comm_ops) lives in comm_impl.h; this header alone is the API.
 *
 * Contracts every transport keeps:
 *  - Every rank calls the collectives in the same order with matching sizes.
 *  - Every wait is bounded by the communicator's timeout: a peer that died or stopped
 *    answering turns into ROE_ERR_TIMEOUT whose message names this rank, the operation
 *    (`what`), and the peers still missing. Transport errors become ROE_ERR_COMM with
 *    the transport's own description and the peer. Nothing here hangs or exits, except
 *    roe_comm_abort, which ends the whole job.
 *  - Counts are in elements of `dtype`; a count above what the transport can carry in
 *    one message (MPI: INT_MAX elements) is ROE_ERR_INVALID_ARG, never a truncation.
 *  - Reductions are deterministic: inputs are combined in rank order.
 *  - `what` names the operation in messages ("moe dispatch, layer 3"); for a transfer
 *    started with roe_comm_alltoallv_start the string must live until it completes.
 */
#ifndef ROE_COMM_H
#define ROE_COMM_H

#include <stddef.h>

#include "base/status.h"

typedef struct roe_comm roe_comm;
typedef struct roe_comm_xfer roe_comm_xfer; /* one in-flight all-to-all-v */

typedef enum roe_comm_dtype {
    ROE_COMM_BYTE = 0,
    ROE_COMM_I32,
    ROE_COMM_I64,
    ROE_COMM_F32,
    ROE_COMM_F64,
} roe_comm_dtype;

typedef enum roe_comm_op {
    ROE_COMM_SUM = 0,
    ROE_COMM_MAX,
    ROE_COMM_MIN,
} roe_comm_op;

struct roe_comm_opts {
    double timeout_s;    /* bound on every wait for a peer; > 0 */
    int yield_when_idle; /* ranks share cores: give the core up while waiting */
};

struct roe_comm_opts roe_comm_opts_default(void); /* timeout 60 s */

size_t roe_comm_dtype_size(roe_comm_dtype t);

/* A world of one process. */
roe_status roe_comm_self_create(const struct roe_comm_opts *opts, roe_comm **out);

/* MPI_COMM_WORLD (initialises MPI; roe_comm_free finalises it). MPI_Init and MPI_Finalize
 * wait for every rank and have no timeout of their own: both are bounded by opts->timeout_s
 * too (an alarm; on expiry the rank says why on stderr and exits 1). Without ROE_HAVE_MPI:
 * ROE_ERR_UNSUPPORTED. Only one MPI communicator may exist per process. */
roe_status roe_comm_mpi_create(int *argc, char ***argv, const struct roe_comm_opts *opts,
                               roe_comm **out);

/* 1 if this build has the MPI transport. */
int roe_comm_have_mpi(void);
/* NCCL on `device` (the caller has chosen it: local rank % devices), over the same ranks as
 * `boot` (borrowed; it must outlive the result): rank 0's ncclUniqueId is broadcast over
 * boot, then every rank joins (bounded by boot's timeout). Every buffer given to the result
 * is device memory, complete when handed over (the transport works on its own stream: the
 * caller synchronises whatever produced the data), and each call returns once its transfer is
 * done (alltoallv: at xfer_wait). Its alltoallv needs exact receive counts (see comm_nccl.c); allreduce
 * is not provided. Without ROE_HAVE_NCCL: ROE_ERR_UNSUPPORTED. */
roe_status roe_comm_nccl_create(roe_comm *boot, int device, roe_comm **out);
int roe_comm_have_nccl(void);
/* nccl only: all-to-all-v of device buffers where only the senders know the counts: the
 * counts go first (device to device, one int64 per peer), then the data, received packed
 * in rank order into recv (at most recv_cap elements); rcounts/rdispls ([size], host)
 * receive the layout. Blocks until done (bounded). */
roe_status roe_comm_alltoallv_device(roe_comm *c, const void *send, const size_t *scounts,
                                     const size_t *sdispls, void *recv, size_t recv_cap,
                                     size_t *rcounts, size_t *rdispls, roe_comm_dtype t, const char *what);

void roe_comm_free(roe_comm *c);

int roe_comm_rank(const roe_comm *c);
int roe_comm_size(const roe_comm *c);
const char *roe_comm_transport(const roe_comm *c); /* "self", "mpi" */
double roe_comm_timeout(const roe_comm *c);
/* Changes the bound on waits from now on (> 0). */
void roe_comm_set_timeout(roe_comm *c, double timeout_s);

/* buf[count] from root to every rank. */
roe_status roe_comm_bcast(roe_comm *c, void *buf, size_t count, roe_comm_dtype t, int root,
                          const char *what);

/* Every rank's send[count] lands at root in recv[rank * count] (recv unused elsewhere). */
roe_status roe_comm_gather(roe_comm *c, const void *send, size_t count, void *recv,
                           roe_comm_dtype t, int root, const char *what);

/* Variable counts: rank r's send[count] lands at root in recv + displs[r]; counts[r] must
 * equal rank r's count (root's arrays only are read). */
roe_status roe_comm_gatherv(roe_comm *c, const void *send, size_t count, void *recv,
                            const size_t *counts, const size_t *displs, roe_comm_dtype t,
                            int root, const char *what);

/* out[i] = op over ranks (in rank order) of in[i]; in and out may alias. */
roe_status roe_comm_allreduce(roe_comm *c, const void *in, void *out, size_t count,
                              roe_comm_dtype t, roe_comm_op op, const char *what);

roe_status roe_comm_barrier(roe_comm *c, const char *what);

/* All-to-all with variable counts: send + sdispls[p] (scounts[p] elements) goes to rank p,
 * arriving from rank p at recv + rdispls[p]. rcounts[p] is the most accepted from p (a
 * peer sending more is an error; less is fine: roe_comm_xfer_received says how many came).
 * A zero rcounts[p] posts no receive from p, and p must send nothing. Arrays are [size]. */
roe_status roe_comm_alltoallv(roe_comm *c, const void *send, const size_t *scounts,
                              const size_t *sdispls, void *recv, const size_t *rcounts,
                              const size_t *rdispls, roe_comm_dtype t, const char *what);

/* The same, split in start / test / wait so that computation can overlap the transfer.
 * The buffers and arrays must stay valid (and unchanged) until the transfer completes. An
 * xfer holds one transfer at a time; it is created once (allocation) and reused. */
roe_status roe_comm_xfer_create(roe_comm *c, roe_comm_xfer **out);
void roe_comm_xfer_free(roe_comm_xfer *x);
roe_status roe_comm_alltoallv_start(roe_comm_xfer *x, const void *send, const size_t *scounts,
                                    const size_t *sdispls, void *recv, const size_t *rcounts,
                                    const size_t *rdispls, roe_comm_dtype t, const char *what);
/* The same with one buffer per peer: send[p] (scounts[p] elements) goes to rank p, arriving
 * from rank p at recv[p] (at most rcounts[p] elements). Pointers of zero-count peers are not
 * read. Zero counts on one side make a send-only or receive-only exchange. */
roe_status roe_comm_exchange_start(roe_comm_xfer *x, const void *const *send, const size_t *scounts,
                                   void *const *recv, const size_t *rcounts, roe_comm_dtype t,
                                   const char *what);
/* Drives progress; *done = 1 once complete (then the xfer is free for the next start). */
roe_status roe_comm_xfer_test(roe_comm_xfer *x, int *done);
/* Bounded wait for completion. */
roe_status roe_comm_xfer_wait(roe_comm_xfer *x);
/* After completion: [size] elements that arrived from each peer. */
const size_t *roe_comm_xfer_received(const roe_comm_xfer *x);

/* A communicator whose operation failed (a peer died, timed out, or the ranks fell out of
 * step) is unusable: the job must end with roe_comm_abort. Every failing call marks it;
 * roe_comm_set_failed marks it from outside (a step that failed after its plan was sent). */
int roe_comm_failed(const roe_comm *c);
void roe_comm_set_failed(roe_comm *c);

/* Ends every rank of the job with exit code `code` (MPI_Abort; self: exit). For the
 * launcher's error path only: library code returns statuses. */
_Noreturn void roe_comm_abort(roe_comm *c, int code);

#endif
