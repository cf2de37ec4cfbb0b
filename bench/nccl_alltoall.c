/*
 * nccl_alltoall.c — the NCCL transport (comm/comm_nccl.c) against a plain device copy of
 * the same bytes: per message size, the time of one all-to-all-v of device buffers (every
 * rank sends `bytes` to every rank, itself included) with the counts known
 * (roe_comm_alltoallv_start + wait), the same with the counts exchanged on the device first
 * (roe_comm_alltoallv_device), and one cudaMemcpy device-to-device of `bytes` on the same
 * device. One JSON object per size on stdout. At one rank the exchange is a send to
 * itself, so the ratio to the copy is NCCL's own overhead.
 *
 *   build/bench/nccl_alltoall [--reps R] [BYTES...]          # one process
 *   mpirun -np 2 build/bench/nccl_alltoall                    # two ranks (one GPU each)
 *
 * Exits 77 with "skipped: ..." without a device, CUDA or NCCL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "kernels/backend.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/env.h"

static int fail(const char *what) {
    fprintf(stderr, "nccl_alltoall: %s: %s\n", what, roe_error_message());
    return 1;
}

int main(int argc, char **argv) {
    int reps = 20;
    size_t sizes[16];
    int n_sizes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (n_sizes < 16) sizes[n_sizes++] = (size_t)strtod(argv[i], NULL);
    }
    if (n_sizes == 0) { /* per peer: a decode dispatch, a large batch's, and a bandwidth-bound size */
        sizes[n_sizes++] = (size_t)1 << 20;
        sizes[n_sizes++] = (size_t)16 << 20;
        sizes[n_sizes++] = (size_t)256 << 20;
    }
    if (!roe_comm_have_nccl()) {
        printf("skipped: this roe was built without NCCL\n");
        return 77;
    }
    const int n_dev = roe_backend_cuda_device_count();
    if (n_dev <= 0) {
        printf("skipped: %s\n", roe_error_message());
        return 77;
    }
    roe_comm *boot = NULL, *nc = NULL;
    struct roe_comm_opts co = roe_comm_opts_default();
    roe_status st = roe_env_launched_by_mpirun() && roe_comm_have_mpi()
                        ? roe_comm_mpi_create(&argc, &argv, &co, &boot)
                        : roe_comm_self_create(&co, &boot);
    if (st != ROE_OK) return fail("bootstrap communicator");
    const int N = roe_comm_size(boot), me = roe_comm_rank(boot);
    const int device = roe_env_local_rank() % n_dev;
    struct roe_backend_opts bo = {.max_cols = 1, .max_ctx = 1, .max_rows = 1, .device = device};
    roe_backend *be = NULL;
    if (roe_backend_cuda_create(&bo, &be) != ROE_OK) return fail("cuda backend");
    if (roe_comm_nccl_create(boot, device, &nc) != ROE_OK) return fail("nccl communicator");
    roe_comm_xfer *x = NULL;
    if (roe_comm_xfer_create(nc, &x) != ROE_OK) return fail("transfer");
    size_t *sc = roe_calloc((size_t)N, sizeof *sc), *sd = roe_calloc((size_t)N, sizeof *sd);
    size_t *rc = roe_calloc((size_t)N, sizeof *rc), *rd = roe_calloc((size_t)N, sizeof *rd);
    if (!sc || !sd || !rc || !rd) return fail("out of memory");
    for (int s = 0; s < n_sizes; s++) {
        const size_t bytes = sizes[s], total = bytes * (size_t)N;
        char *send = be->ops->alloc(be, total), *recv = be->ops->alloc(be, total);
        if (!send || !recv) return fail("device buffers");
        be->ops->copy(be, send, recv, total); /* touch both */
        if (be->ops->sync(be) != ROE_OK) return fail("touching buffers");
        for (int p = 0; p < N; p++) {
            sc[p] = rc[p] = bytes;
            sd[p] = rd[p] = (size_t)p * bytes;
        }
        double t_a2a = 0, t_dev = 0, t_copy = 0;
        for (int rep = -2; rep < reps; rep++) { /* two warm-up rounds */
            double t0 = roe_now_s();
            if (roe_comm_alltoallv_start(x, send, sc, sd, recv, rc, rd, ROE_COMM_BYTE, "bench alltoallv") != ROE_OK ||
                roe_comm_xfer_wait(x) != ROE_OK)
                return fail("alltoallv");
            double t1 = roe_now_s();
            size_t rcv[64], rdp[64];
            if (N > 64) return fail("more than 64 ranks");
            if (roe_comm_alltoallv_device(nc, send, sc, sd, recv, total, rcv, rdp, ROE_COMM_BYTE,
                                          "bench alltoallv_device") != ROE_OK)
                return fail("alltoallv_device");
            double t2 = roe_now_s();
            be->ops->copy(be, recv, send, bytes);
            if (be->ops->sync(be) != ROE_OK) return fail("copy");
            double t3 = roe_now_s();
            if (rep >= 0) {
                t_a2a += t1 - t0;
                t_dev += t2 - t1;
                t_copy += t3 - t2;
            }
        }
        t_a2a /= reps;
        t_dev /= reps;
        t_copy /= reps;
        if (me == 0)
            printf("{\"ranks\": %d, \"bytes_per_peer\": %zu, \"alltoallv_s\": %.6e, \"alltoallv_device_counts_s\": %.6e, "
                   "\"device_copy_s\": %.6e, \"alltoallv_over_copy\": %.3f, \"alltoallv_device_counts_over_copy\": %.3f, "
                   "\"device\": \"%s\"}\n",
                   N, bytes, t_a2a, t_dev, t_copy, t_a2a / t_copy, t_dev / t_copy, be->name);
        be->ops->free(be, send);
        be->ops->free(be, recv);
    }
    roe_free(sc);
    roe_free(sd);
    roe_free(rc);
    roe_free(rd);
    roe_comm_xfer_free(x);
    roe_comm_free(nc);
    roe_backend_free(be);
    roe_comm_free(boot);
    return 0;
}
