/*
 * comm_impl.h — what a transport implements: struct roe_comm_ops (one struct per
 * transport, one transport per file, the way NCCL describes a transport). Only comm/
 * includes this header.
 *
 * comm.c validates arguments (root in range, counts representable) and handles the
 * self-only shortcuts before calling the ops, so a transport sees well-formed calls.
 */
#ifndef ROE_COMM_IMPL_H
#define ROE_COMM_IMPL_H

#include "comm.h"

struct roe_comm_ops {
    const char *name;
    roe_status (*bcast)(roe_comm *c, void *buf, size_t count, roe_comm_dtype t, int root,
                        const char *what);
    /* counts/displs NULL: every rank sends `count`, landing at recv + rank * count */
    roe_status (*gatherv)(roe_comm *c, const void *send, size_t count, void *recv,
                          const size_t *counts, const size_t *displs, roe_comm_dtype t, int root,
                          const char *what);
    /* deterministic: root combines in rank order, then broadcasts */
    roe_status (*allreduce)(roe_comm *c, const void *in, void *out, size_t count,
                            roe_comm_dtype t, roe_comm_op op, const char *what);
    roe_status (*barrier)(roe_comm *c, const char *what);
    roe_status (*xfer_create)(roe_comm *c, roe_comm_xfer **out);
    void (*xfer_free)(roe_comm_xfer *x);
    /* one buffer per peer; comm.c turns alltoallv's displacements into pointers */
    roe_status (*exchange_start)(roe_comm_xfer *x, const void *const *send, const size_t *scounts,
                                 void *const *recv, const size_t *rcounts, roe_comm_dtype t,
                                 const char *what);
    roe_status (*xfer_test)(roe_comm_xfer *x, int *done);
    roe_status (*xfer_wait)(roe_comm_xfer *x);
    __attribute__((noreturn)) void (*abort)(roe_comm *c, int code);
    void (*destroy)(roe_comm *c);
};

struct roe_comm {
    const struct roe_comm_ops *ops;
    int rank;
    int size;
    double timeout_s;
    int failed; /* see roe_comm_failed */
    int device_buffers; /* buffers are device memory (nccl): no host shortcuts in comm.c */
    void *impl; /* owned by the transport */
};

/* Every xfer starts with this header so comm.c can reach its communicator. */
struct roe_comm_xfer {
    roe_comm *comm;
    const void **sp; /* [size] alltoallv's send pointers (comm.c allocates them) */
    void **rp;       /* [size] */
    size_t *got;     /* [size] elements received from each peer (the transport fills it) */
};

/* Combines src into dst element-wise (dst = op(dst, src)); used by the transports. */
void roe__comm_reduce(void *dst, const void *src, size_t count, roe_comm_dtype t, roe_comm_op op);

#endif
