/* comm.c — the communicator's public entry points: argument checks, then the transport's
 * ops; see comm.h. */
#include "comm_impl.h"

#include <stdint.h>
#include <string.h>

#include "base/alloc.h"

struct roe_comm_opts roe_comm_opts_default(void) {
    struct roe_comm_opts o = {.timeout_s = 60.0};
    return o;
}

size_t roe_comm_dtype_size(roe_comm_dtype t) {
    switch (t) {
    case ROE_COMM_BYTE: return 1;
    case ROE_COMM_I32: return 4;
    case ROE_COMM_I64: return 8;
    case ROE_COMM_F32: return 4;
    case ROE_COMM_F64: return 8;
    }
    return 1;
}

#define REDUCE_LOOP(T)                                                                             \
    do {                                                                                           \
        T *d = dst;                                                                                \
        const T *s = src;                                                                          \
        for (size_t i = 0; i < count; i++)                                                         \
            d[i] = op == ROE_COMM_SUM ? d[i] + s[i] : op == ROE_COMM_MAX ? (s[i] > d[i] ? s[i] : d[i]) \
                                                                         : (s[i] < d[i] ? s[i] : d[i]); \
    } while (0)

void roe__comm_reduce(void *dst, const void *src, size_t count, roe_comm_dtype t, roe_comm_op op) {
    switch (t) {
    case ROE_COMM_BYTE: REDUCE_LOOP(uint8_t); break;
    case ROE_COMM_I32: REDUCE_LOOP(int32_t); break;
    case ROE_COMM_I64: REDUCE_LOOP(int64_t); break;
    case ROE_COMM_F32: REDUCE_LOOP(float); break;
    case ROE_COMM_F64: REDUCE_LOOP(double); break;
    }
}

void roe_comm_free(roe_comm *c) {
    if (c) c->ops->destroy(c);
}

int roe_comm_rank(const roe_comm *c) { return c->rank; }
int roe_comm_size(const roe_comm *c) { return c->size; }
const char *roe_comm_transport(const roe_comm *c) { return c->ops->name; }
double roe_comm_timeout(const roe_comm *c) { return c->timeout_s; }
void roe_comm_set_timeout(roe_comm *c, double timeout_s) {
    if (timeout_s > 0) c->timeout_s = timeout_s;
}

int roe_comm_failed(const roe_comm *c) { return c->failed; }
void roe_comm_set_failed(roe_comm *c) { c->failed = 1; }

/* Marks the communicator failed when a transport call fails. */
static roe_status mark(roe_comm *c, roe_status st) {
    if (st != ROE_OK) c->failed = 1;
    return st;
}

static roe_status check_root(const roe_comm *c, int root, const char *op, const char *what) {
    if (root < 0 || root >= c->size)
        return roe_fail(ROE_ERR_INVALID_ARG, "rank %d: %s '%s': root %d is outside [0, %d)", c->rank,
                        op, what, root, c->size);
    return ROE_OK;
}

roe_status roe_comm_bcast(roe_comm *c, void *buf, size_t count, roe_comm_dtype t, int root,
                          const char *what) {
    ROE_TRY(check_root(c, root, "bcast", what));
    if ((c->size == 1 && !c->device_buffers) || count == 0) return ROE_OK;
    return mark(c, c->ops->bcast(c, buf, count, t, root, what));
}

roe_status roe_comm_gatherv(roe_comm *c, const void *send, size_t count, void *recv,
                            const size_t *counts, const size_t *displs, roe_comm_dtype t,
                            int root, const char *what) {
    ROE_TRY(check_root(c, root, "gatherv", what));
    if (c->rank == root && counts[root] != count)
        return roe_fail(ROE_ERR_INVALID_ARG, "rank %d: gatherv '%s': root sends %zu elements but expects %zu from itself",
                        c->rank, what, count, counts[root]);
    if (c->size == 1 && !c->device_buffers) {
        if (count) memmove((char *)recv + displs[0] * roe_comm_dtype_size(t), send, count * roe_comm_dtype_size(t));
        return ROE_OK;
    }
    return mark(c, c->ops->gatherv(c, send, count, recv, counts, displs, t, root, what));
}

roe_status roe_comm_gather(roe_comm *c, const void *send, size_t count, void *recv,
                           roe_comm_dtype t, int root, const char *what) {
    ROE_TRY(check_root(c, root, "gather", what));
    if (c->size == 1 && !c->device_buffers) {
        if (count) memmove(recv, send, count * roe_comm_dtype_size(t));
        return ROE_OK;
    }
    return mark(c, c->ops->gatherv(c, send, count, recv, NULL, NULL, t, root, what));
}

roe_status roe_comm_allreduce(roe_comm *c, const void *in, void *out, size_t count,
                              roe_comm_dtype t, roe_comm_op op, const char *what) {
    if (c->size == 1 && !c->device_buffers) {
        if (count && in != out) memmove(out, in, count * roe_comm_dtype_size(t));
        return ROE_OK;
    }
    return mark(c, c->ops->allreduce(c, in, out, count, t, op, what));
}

roe_status roe_comm_barrier(roe_comm *c, const char *what) {
    if (c->size == 1 && !c->device_buffers) return ROE_OK;
    return mark(c, c->ops->barrier(c, what));
}

roe_status roe_comm_xfer_create(roe_comm *c, roe_comm_xfer **out) {
    *out = NULL;
    ROE_TRY(c->ops->xfer_create(c, out));
    (*out)->sp = roe_malloc((size_t)c->size * sizeof *(*out)->sp);
    (*out)->rp = roe_malloc((size_t)c->size * sizeof *(*out)->rp);
    (*out)->got = roe_calloc((size_t)c->size, sizeof *(*out)->got);
    if (!(*out)->sp || !(*out)->rp || !(*out)->got) {
        roe_comm_xfer_free(*out);
        *out = NULL;
        return roe_fail(ROE_ERR_NOMEM, "rank %d: out of memory for a transfer", c->rank);
    }
    return ROE_OK;
}

void roe_comm_xfer_free(roe_comm_xfer *x) {
    if (!x) return;
    roe_free(x->sp);
    roe_free(x->rp);
    roe_free(x->got);
    x->comm->ops->xfer_free(x);
}

roe_status roe_comm_exchange_start(roe_comm_xfer *x, const void *const *send, const size_t *scounts,
                                   void *const *recv, const size_t *rcounts, roe_comm_dtype t,
                                   const char *what) {
    return mark(x->comm, x->comm->ops->exchange_start(x, send, scounts, recv, rcounts, t, what));
}

roe_status roe_comm_alltoallv_start(roe_comm_xfer *x, const void *send, const size_t *scounts,
                                    const size_t *sdispls, void *recv, const size_t *rcounts,
                                    const size_t *rdispls, roe_comm_dtype t, const char *what) {
    const size_t es = roe_comm_dtype_size(t);
    for (int p = 0; p < x->comm->size; p++) {
        x->sp[p] = (const char *)send + sdispls[p] * es;
        x->rp[p] = (char *)recv + rdispls[p] * es;
    }
    return roe_comm_exchange_start(x, x->sp, scounts, x->rp, rcounts, t, what);
}

roe_status roe_comm_xfer_test(roe_comm_xfer *x, int *done) { return mark(x->comm, x->comm->ops->xfer_test(x, done)); }

const size_t *roe_comm_xfer_received(const roe_comm_xfer *x) { return x->got; }

roe_status roe_comm_xfer_wait(roe_comm_xfer *x) { return mark(x->comm, x->comm->ops->xfer_wait(x)); }

roe_status roe_comm_alltoallv(roe_comm *c, const void *send, const size_t *scounts,
                              const size_t *sdispls, void *recv, const size_t *rcounts,
                              const size_t *rdispls, roe_comm_dtype t, const char *what) {
    roe_comm_xfer *x = NULL;
    if (c->size == 1 && !c->device_buffers) { /* no xfer object needed: one copy */
        if (scounts[0] > rcounts[0])
            return roe_fail(ROE_ERR_INVALID_ARG, "rank 0: alltoallv '%s': sends %zu elements to itself but accepts %zu",
                            what, scounts[0], rcounts[0]);
        const size_t es = roe_comm_dtype_size(t);
        if (scounts[0]) memmove((char *)recv + rdispls[0] * es, (const char *)send + sdispls[0] * es, scounts[0] * es);
        return ROE_OK;
    }
    ROE_TRY(roe_comm_xfer_create(c, &x));
    roe_status st = roe_comm_alltoallv_start(x, send, scounts, sdispls, recv, rcounts, rdispls, t, what);
    if (st == ROE_OK) st = roe_comm_xfer_wait(x);
    roe_comm_xfer_free(x);
    return st;
}

_Noreturn void roe_comm_abort(roe_comm *c, int code) {
    c->ops->abort(c, code);
}
