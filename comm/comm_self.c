/*
 * comm_self.c — the `self` transport: a world of one rank. comm.c short-cuts every
 * collective when size == 1, so only the transfer object (a copy to itself) and abort
 * have real bodies here. Engine tests run on it without MPI.
 */
#include <stdlib.h>
#include <string.h>

#include "comm_impl.h"
#include "base/alloc.h"

static roe_status self_unreachable(const char *op) {
    return roe_fail(ROE_ERR_INTERNAL, "self transport: %s reached the transport with one rank", op);
}

static roe_status self_bcast(roe_comm *c, void *buf, size_t count, roe_comm_dtype t, int root,
                             const char *what) {
    return self_unreachable("bcast");
}

static roe_status self_gatherv(roe_comm *c, const void *send, size_t count, void *recv,
                               const size_t *counts, const size_t *displs, roe_comm_dtype t,
                               int root, const char *what) {
    return self_unreachable("gatherv");
}

static roe_status self_allreduce(roe_comm *c, const void *in, void *out, size_t count,
                                 roe_comm_dtype t, roe_comm_op op, const char *what) {
    return self_unreachable("allreduce");
}

static roe_status self_barrier(roe_comm *c, const char *what) { return self_unreachable("barrier"); }

static roe_status self_xfer_create(roe_comm *c, roe_comm_xfer **out) {
    roe_comm_xfer *x = roe_calloc(1, sizeof *x);
    if (!x) return roe_fail(ROE_ERR_NOMEM, "self transport: out of memory for a transfer");
    x->comm = c;
    *out = x;
    return ROE_OK;
}

static void self_xfer_free(roe_comm_xfer *x) { roe_free(x); }

static roe_status self_exchange_start(roe_comm_xfer *x, const void *const *send, const size_t *scounts,
                                      void *const *recv, const size_t *rcounts, roe_comm_dtype t,
                                      const char *what) {
    if (scounts[0] > rcounts[0])
        return roe_fail(ROE_ERR_INVALID_ARG, "rank 0: alltoallv '%s': sends %zu elements to itself but accepts %zu",
                        what, scounts[0], rcounts[0]);
    if (scounts[0]) memmove(recv[0], send[0], scounts[0] * roe_comm_dtype_size(t));
    x->got[0] = scounts[0];
    return ROE_OK;
}

static roe_status self_xfer_test(roe_comm_xfer *x, int *done) {
    *done = 1;
    return ROE_OK;
}

static roe_status self_xfer_wait(roe_comm_xfer *x) { return ROE_OK; }

__attribute__((noreturn)) static void self_abort(roe_comm *c, int code) { exit(code); }

static void self_destroy(roe_comm *c) { roe_free(c); }

static const struct roe_comm_ops roe_comm_self_ops = {
    .name = "self",
    .bcast = self_bcast,
    .gatherv = self_gatherv,
    .allreduce = self_allreduce,
    .barrier = self_barrier,
    .xfer_create = self_xfer_create,
    .xfer_free = self_xfer_free,
    .exchange_start = self_exchange_start,
    .xfer_test = self_xfer_test,
    .xfer_wait = self_xfer_wait,
    .abort = self_abort,
    .destroy = self_destroy,
};

roe_status roe_comm_self_create(const struct roe_comm_opts *opts, roe_comm **out) {
    *out = NULL;
    roe_comm *c = roe_calloc(1, sizeof *c);
    if (!c) return roe_fail(ROE_ERR_NOMEM, "self transport: out of memory");
    c->ops = &roe_comm_self_ops;
    c->rank = 0;
    c->size = 1;
    c->timeout_s = opts ? opts->timeout_s : roe_comm_opts_default().timeout_s;
    *out = c;
    return ROE_OK;
}
