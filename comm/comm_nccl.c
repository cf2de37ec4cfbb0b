/*
 * comm_nccl.c — the `nccl` transport: the same ranks as a bootstrap communicator (MPI, or
 * self for one process), moving DEVICE buffers with NCCL (DESIGN.md "Growing past one
 * machine": NCCL carries the GPU all-to-all, MPI keeps control; no CUDA-aware MPI needed).
 *
 * Bootstrap: rank 0 calls ncclGetUniqueId and broadcasts the id over the bootstrap
 * communicator (host memory, MPI); every rank then joins with ncclCommInitRankConfig in
 * non-blocking mode, so that joining, like every other wait here, is bounded by the
 * communicator's timeout (polling ncclCommGetAsyncError / cudaStreamQuery; on expiry the
 * NCCL communicator is aborted and the status names the rank and the operation).
 *
 * Operations (all buffers device memory of the communicator's device, all work on its own
 * stream; each call returns once its work is complete):
 *   bcast       ncclBroadcast
 *   gatherv     grouped ncclSend / ncclRecv to the root (root's own part: a device copy)
 *   barrier     an ncclAllReduce of one int
 *   alltoallv   grouped ncclSend / ncclRecv per peer (start / test / wait). NCCL needs
 *               matching sizes: rcounts[p] must be exactly what p sends (the contract of
 *               comm.h allows less; this transport does not). roe_comm_alltoallv_device
 *               below exchanges the counts first, on the device path, for callers that
 *               do not know them.
 *   allreduce   not provided: comm.h promises a rank-order (deterministic) reduction,
 *               which NCCL's ring/tree algorithms do not give; use the MPI communicator.
 *
 * NOT RUN YET on a GPU (docs/GPU.md): compiled and linked only.
 */
#ifdef ROE_HAVE_NCCL

#include <cuda_runtime.h>
#include <nccl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "comm_impl.h"
#include "base/alloc.h"
#include "base/clock.h"

struct nccl_impl {
    ncclComm_t nc;
    cudaStream_t stream;
    int device;
    roe_comm *boot;      /* borrowed: the bootstrap (and abort) communicator */
    int64_t *dcounts;    /* device [2 * size]: counts sent, counts received */
    int64_t *hcounts;    /* host [2 * size] */
    int *dflag;          /* device [1]: the barrier's value */
};

struct nccl_xfer {
    struct roe_comm_xfer base;
    int busy;
    const char *what;
    size_t *expect; /* [size] elements expected from each peer */
};

static struct nccl_impl *impl_of(roe_comm *c) { return (struct nccl_impl *)c->impl; }

static roe_status nccl_err(roe_comm *c, ncclResult_t r, const char *op, const char *what) {
    return roe_fail(ROE_ERR_COMM, "rank %d: nccl %s '%s': %s (%s)", c->rank, op, what,
                    ncclGetErrorString(r), ncclGetLastError(impl_of(c)->nc));
}

/* Waits, bounded by the timeout, until NCCL has finished enqueueing (non-blocking mode:
 * calls may return ncclInProgress) and the stream has drained. */
static roe_status wait_done(roe_comm *c, const char *op, const char *what) {
    struct nccl_impl *n = impl_of(c);
    const double deadline = roe_now_s() + c->timeout_s;
    for (;;) {
        ncclResult_t async = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(n->nc, &async);
        if (r != ncclSuccess) return nccl_err(c, r, op, what);
        if (async != ncclSuccess && async != ncclInProgress) return nccl_err(c, async, op, what);
        if (async == ncclSuccess) {
            cudaError_t e = cudaStreamQuery(n->stream);
            if (e == cudaSuccess) return ROE_OK;
            if (e != cudaErrorNotReady)
                return roe_fail(ROE_ERR_COMM, "rank %d: nccl %s '%s': CUDA: %s", c->rank, op, what,
                                cudaGetErrorString(e));
        }
        if (roe_now_s() > deadline) {
            ncclCommAbort(n->nc);
            n->nc = NULL;
            c->failed = 1;
            return roe_fail(ROE_ERR_TIMEOUT,
                            "rank %d: nccl %s '%s': not complete after %.0f s (a peer died or stopped "
                            "answering); the NCCL communicator was aborted",
                            c->rank, op, what, c->timeout_s);
        }
        sched_yield();
    }
}

/* ncclGroupEnd in non-blocking mode may return ncclInProgress: that is success so far. */
static roe_status group_end(roe_comm *c, const char *op, const char *what) {
    ncclResult_t r = ncclGroupEnd();
    if (r != ncclSuccess && r != ncclInProgress) return nccl_err(c, r, op, what);
    return ROE_OK;
}

static roe_status nccl_bcast(roe_comm *c, void *buf, size_t count, roe_comm_dtype t, int root,
                             const char *what) {
    struct nccl_impl *n = impl_of(c);
    ncclResult_t r = ncclBroadcast(buf, buf, count * roe_comm_dtype_size(t), ncclUint8, root, n->nc, n->stream);
    if (r != ncclSuccess && r != ncclInProgress) return nccl_err(c, r, "bcast", what);
    return wait_done(c, "bcast", what);
}

static roe_status nccl_gatherv(roe_comm *c, const void *send, size_t count, void *recv,
                               const size_t *counts, const size_t *displs, roe_comm_dtype t, int root,
                               const char *what) {
    struct nccl_impl *n = impl_of(c);
    const size_t es = roe_comm_dtype_size(t);
    ncclResult_t r = ncclGroupStart();
    if (r != ncclSuccess) return nccl_err(c, r, "gatherv", what);
    if (c->rank != root) {
        if (count) r = ncclSend(send, count * es, ncclUint8, root, n->nc, n->stream);
    } else {
        for (int p = 0; p < c->size && (r == ncclSuccess || r == ncclInProgress); p++) {
            const size_t cnt = counts ? counts[p] : count, off = displs ? displs[p] : (size_t)p * count;
            if (p == root || !cnt) continue;
            r = ncclRecv((char *)recv + off * es, cnt * es, ncclUint8, p, n->nc, n->stream);
        }
    }
    if (r != ncclSuccess && r != ncclInProgress) {
        (void)ncclGroupEnd();
        return nccl_err(c, r, "gatherv", what);
    }
    ROE_TRY(group_end(c, "gatherv", what));
    if (c->rank == root && count) {
        const size_t off = displs ? displs[root] : (size_t)root * count;
        cudaError_t e = cudaMemcpyAsync((char *)recv + off * es, send, count * es, cudaMemcpyDeviceToDevice, n->stream);
        if (e != cudaSuccess)
            return roe_fail(ROE_ERR_COMM, "rank %d: nccl gatherv '%s': CUDA: %s", c->rank, what, cudaGetErrorString(e));
    }
    return wait_done(c, "gatherv", what);
}

static roe_status nccl_allreduce(roe_comm *c, const void *in, void *out, size_t count,
                                 roe_comm_dtype t, roe_comm_op op, const char *what) {
    return roe_fail(ROE_ERR_UNSUPPORTED,
                    "rank %d: allreduce '%s' on the nccl transport: not provided (comm.h promises a "
                    "rank-order reduction; use the MPI communicator)", c->rank, what);
}

static roe_status nccl_barrier(roe_comm *c, const char *what) {
    struct nccl_impl *n = impl_of(c);
    ncclResult_t r = ncclAllReduce(n->dflag, n->dflag, 1, ncclInt32, ncclSum, n->nc, n->stream);
    if (r != ncclSuccess && r != ncclInProgress) return nccl_err(c, r, "barrier", what);
    return wait_done(c, "barrier", what);
}

static roe_status nccl_xfer_create(roe_comm *c, roe_comm_xfer **out) {
    struct nccl_xfer *x = roe_calloc(1, sizeof *x);
    size_t *expect = roe_calloc((size_t)c->size, sizeof *expect);
    if (!x || !expect) {
        roe_free(x);
        roe_free(expect);
        return roe_fail(ROE_ERR_NOMEM, "rank %d: nccl: out of memory for a transfer", c->rank);
    }
    x->base.comm = c;
    x->expect = expect;
    *out = &x->base;
    return ROE_OK;
}

static void nccl_xfer_free(roe_comm_xfer *x) {
    struct nccl_xfer *nx = (struct nccl_xfer *)x;
    roe_free(nx->expect);
    roe_free(nx);
}

static roe_status nccl_exchange_start(roe_comm_xfer *x, const void *const *send, const size_t *scounts,
                                      void *const *recv, const size_t *rcounts, roe_comm_dtype t,
                                      const char *what) {
    struct nccl_xfer *nx = (struct nccl_xfer *)x;
    roe_comm *c = x->comm;
    struct nccl_impl *n = impl_of(c);
    const size_t es = roe_comm_dtype_size(t);
    if (nx->busy)
        return roe_fail(ROE_ERR_INVALID_ARG, "rank %d: nccl alltoallv '%s' started while '%s' is in flight",
                        c->rank, what, nx->what);
    ncclResult_t r = ncclGroupStart();
    if (r != ncclSuccess) return nccl_err(c, r, "alltoallv", what);
    for (int p = 0; p < c->size && (r == ncclSuccess || r == ncclInProgress); p++) {
        if (scounts[p]) r = ncclSend(send[p], scounts[p] * es, ncclUint8, p, n->nc, n->stream);
        if ((r == ncclSuccess || r == ncclInProgress) && rcounts[p])
            r = ncclRecv(recv[p], rcounts[p] * es, ncclUint8, p, n->nc, n->stream);
        nx->expect[p] = rcounts[p];
    }
    if (r != ncclSuccess && r != ncclInProgress) {
        (void)ncclGroupEnd();
        return nccl_err(c, r, "alltoallv", what);
    }
    ROE_TRY(group_end(c, "alltoallv", what));
    nx->busy = 1;
    nx->what = what;
    return ROE_OK;
}

static void finish(struct nccl_xfer *nx) {
    for (int p = 0; p < nx->base.comm->size; p++) nx->base.got[p] = nx->expect[p];
    nx->busy = 0;
}

static roe_status nccl_xfer_test(roe_comm_xfer *x, int *done) {
    struct nccl_xfer *nx = (struct nccl_xfer *)x;
    roe_comm *c = x->comm;
    struct nccl_impl *n = impl_of(c);
    *done = 0;
    if (!nx->busy) {
        *done = 1;
        return ROE_OK;
    }
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(n->nc, &async);
    if (r != ncclSuccess) return nccl_err(c, r, "alltoallv", nx->what);
    if (async != ncclSuccess && async != ncclInProgress) return nccl_err(c, async, "alltoallv", nx->what);
    if (async == ncclInProgress) return ROE_OK;
    cudaError_t e = cudaStreamQuery(n->stream);
    if (e == cudaErrorNotReady) return ROE_OK;
    if (e != cudaSuccess)
        return roe_fail(ROE_ERR_COMM, "rank %d: nccl alltoallv '%s': CUDA: %s", c->rank, nx->what,
                        cudaGetErrorString(e));
    finish(nx);
    *done = 1;
    return ROE_OK;
}

static roe_status nccl_xfer_wait(roe_comm_xfer *x) {
    struct nccl_xfer *nx = (struct nccl_xfer *)x;
    if (!nx->busy) return ROE_OK;
    ROE_TRY(wait_done(x->comm, "alltoallv", nx->what));
    finish(nx);
    return ROE_OK;
}

__attribute__((noreturn)) static void nccl_abort(roe_comm *c, int code) {
    struct nccl_impl *n = impl_of(c);
    if (n->nc) ncclCommAbort(n->nc);
    n->nc = NULL;
    roe_comm_abort(n->boot, code);
}

static void nccl_destroy(roe_comm *c) {
    struct nccl_impl *n = impl_of(c);
    if (n) {
        if (n->nc) {
            if (!c->failed) { /* non-blocking mode: finalize may still be in progress; wait (bounded) */
                const ncclResult_t r = ncclCommFinalize(n->nc);
                if (r == ncclSuccess || r == ncclInProgress) (void)wait_done(c, "finalize", "destroy");
            }
            if (n->nc) ncclCommDestroy(n->nc);
        }
        if (n->dcounts) cudaFree(n->dcounts);
        if (n->dflag) cudaFree(n->dflag);
        if (n->stream) cudaStreamDestroy(n->stream);
        roe_free(n->hcounts);
        roe_free(n);
    }
    roe_free(c);
}

static const struct roe_comm_ops nccl_ops = {
    .name = "nccl",
    .bcast = nccl_bcast,
    .gatherv = nccl_gatherv,
    .allreduce = nccl_allreduce,
    .barrier = nccl_barrier,
    .xfer_create = nccl_xfer_create,
    .xfer_free = nccl_xfer_free,
    .exchange_start = nccl_exchange_start,
    .xfer_test = nccl_xfer_test,
    .xfer_wait = nccl_xfer_wait,
    .abort = nccl_abort,
    .destroy = nccl_destroy,
};

int roe_comm_have_nccl(void) { return 1; }

roe_status roe_comm_nccl_create(roe_comm *boot, int device, roe_comm **out) {
    *out = NULL;
    roe_status st;
    roe_comm *c = roe_calloc(1, sizeof *c);
    struct nccl_impl *n = roe_calloc(1, sizeof *n);
    if (!c || !n) {
        roe_free(c);
        roe_free(n);
        return roe_fail(ROE_ERR_NOMEM, "nccl: out of memory");
    }
    c->ops = &nccl_ops;
    c->impl = n;
    c->rank = roe_comm_rank(boot);
    c->size = roe_comm_size(boot);
    c->timeout_s = roe_comm_timeout(boot);
    c->device_buffers = 1;
    n->boot = boot;
    n->device = device;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaMalloc((void **)&n->dcounts, 2 * (size_t)c->size * sizeof(int64_t));
    if (e == cudaSuccess) e = cudaMalloc((void **)&n->dflag, sizeof(int));
    if (e == cudaSuccess) e = cudaMemsetAsync(n->dflag, 0, sizeof(int), n->stream);
    n->hcounts = roe_calloc(2 * (size_t)c->size, sizeof *n->hcounts);
    if (e != cudaSuccess || !n->hcounts) {
        st = roe_fail(ROE_ERR_COMM, "rank %d: nccl: setting up device %d: %s", c->rank, device,
                      e != cudaSuccess ? cudaGetErrorString(e) : "out of memory");
        goto fail;
    }
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess) {
            st = roe_fail(ROE_ERR_COMM, "rank 0: ncclGetUniqueId: %s", ncclGetErrorString(r));
            goto fail;
        }
    }
    /* the id travels over the bootstrap communicator (host memory) */
    ROE_CHECK(roe_comm_bcast(boot, &id, sizeof id, ROE_COMM_BYTE, 0, "nccl unique id"));
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&n->nc, c->size, id, c->rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) {
        st = roe_fail(ROE_ERR_COMM, "rank %d: ncclCommInitRankConfig (%d ranks, device %d): %s", c->rank,
                      c->size, device, ncclGetErrorString(r));
        n->nc = NULL;
        goto fail;
    }
    ROE_CHECK(wait_done(c, "init", "communicator"));
    *out = c;
    return ROE_OK;
fail:
    c->failed = 1;
    nccl_destroy(c);
    return st;
}

roe_status roe_comm_alltoallv_device(roe_comm *c, const void *send, const size_t *scounts,
                                     const size_t *sdispls, void *recv, size_t recv_cap,
                                     size_t *rcounts, size_t *rdispls, roe_comm_dtype t, const char *what) {
    if (c->ops != &nccl_ops)
        return roe_fail(ROE_ERR_INVALID_ARG, "rank %d: alltoallv_device '%s' needs the nccl transport, not %s",
                        c->rank, what, c->ops->name);
    struct nccl_impl *n = impl_of(c);
    const int N = c->size;
    const size_t es = roe_comm_dtype_size(t);
    /* 1. counts, device to device: one int64 to and from every peer */
    for (int p = 0; p < N; p++) n->hcounts[p] = (int64_t)scounts[p];
    cudaError_t e = cudaMemcpyAsync(n->dcounts, n->hcounts, (size_t)N * sizeof(int64_t), cudaMemcpyHostToDevice,
                                    n->stream);
    if (e != cudaSuccess)
        return roe_fail(ROE_ERR_COMM, "rank %d: alltoallv_device '%s': CUDA: %s", c->rank, what, cudaGetErrorString(e));
    ncclResult_t r = ncclGroupStart();
    for (int p = 0; p < N && (r == ncclSuccess || r == ncclInProgress); p++) {
        r = ncclSend(n->dcounts + p, 1, ncclInt64, p, n->nc, n->stream);
        if (r == ncclSuccess || r == ncclInProgress) r = ncclRecv(n->dcounts + N + p, 1, ncclInt64, p, n->nc, n->stream);
    }
    if (r != ncclSuccess && r != ncclInProgress) {
        (void)ncclGroupEnd();
        c->failed = 1;
        return nccl_err(c, r, "count exchange", what);
    }
    roe_status st = group_end(c, "count exchange", what);
    if (st == ROE_OK) {
        e = cudaMemcpyAsync(n->hcounts + N, n->dcounts + N, (size_t)N * sizeof(int64_t), cudaMemcpyDeviceToHost,
                            n->stream);
        st = e == cudaSuccess ? wait_done(c, "count exchange", what)
                              : roe_fail(ROE_ERR_COMM, "rank %d: alltoallv_device '%s': CUDA: %s", c->rank, what,
                                         cudaGetErrorString(e));
    }
    if (st != ROE_OK) {
        c->failed = 1;
        return st;
    }
    /* 2. the receive layout: packed in rank order, within the capacity */
    size_t off = 0;
    for (int p = 0; p < N; p++) {
        const int64_t got = n->hcounts[N + p];
        if (got < 0 || (size_t)got > recv_cap - off) {
            c->failed = 1;
            return roe_fail(ROE_ERR_COMM, "rank %d: alltoallv_device '%s': rank %d sends %lld elements; %zu of %zu are left",
                            c->rank, what, p, (long long)got, recv_cap - off, recv_cap);
        }
        rcounts[p] = (size_t)got;
        rdispls[p] = off;
        off += (size_t)got;
    }
    /* 3. the data: grouped send / receive */
    r = ncclGroupStart();
    for (int p = 0; p < N && (r == ncclSuccess || r == ncclInProgress); p++) {
        if (scounts[p])
            r = ncclSend((const char *)send + sdispls[p] * es, scounts[p] * es, ncclUint8, p, n->nc, n->stream);
        if ((r == ncclSuccess || r == ncclInProgress) && rcounts[p])
            r = ncclRecv((char *)recv + rdispls[p] * es, rcounts[p] * es, ncclUint8, p, n->nc, n->stream);
    }
    if (r != ncclSuccess && r != ncclInProgress) {
        (void)ncclGroupEnd();
        c->failed = 1;
        return nccl_err(c, r, "alltoallv", what);
    }
    st = group_end(c, "alltoallv", what);
    if (st == ROE_OK) st = wait_done(c, "alltoallv", what);
    if (st != ROE_OK) c->failed = 1;
    return st;
}

#else /* no NCCL in this build */

#include "comm_impl.h"

int roe_comm_have_nccl(void) { return 0; }

roe_status roe_comm_nccl_create(roe_comm *boot, int device, roe_comm **out) {
    *out = NULL;
    return roe_fail(ROE_ERR_UNSUPPORTED, "this roe was built without NCCL (needs CUDA and nccl.h at configure time)");
}

roe_status roe_comm_alltoallv_device(roe_comm *c, const void *send, const size_t *scounts,
                                     const size_t *sdispls, void *recv, size_t recv_cap,
                                     size_t *rcounts, size_t *rdispls, roe_comm_dtype t, const char *what) {
    return roe_fail(ROE_ERR_UNSUPPORTED, "alltoallv_device: this roe was built without NCCL");
}

#endif
