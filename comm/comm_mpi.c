/*
 * comm_mpi.c — the `mpi` transport over Open MPI. The only file of roe that includes mpi.h.
 *
 * Why point-to-point under every collective: each wait must be bounded and, on expiry,
 * say which peer is missing (DeepEP's rule). A nonblocking collective (MPI_Ibcast, ...)
 * can be polled against a deadline but cannot say who failed to arrive; a set of
 * MPI_Isend/MPI_Irecv polled with MPI_Testsome can. The algorithms are the linear ones
 * (root <-> each rank; all-to-all: one message per peer pair, zero-count pairs skipped),
 * which is what MPI's basic components do for the small rank counts of expert
 * parallelism on CPUs, and what the control plane's small messages need.
 *
 * Errors: MPI_ERRORS_RETURN is set on the communicator, so every MPI call returns a code,
 * translated here (MPI_Error_string) into ROE_ERR_COMM naming this rank, the peer and the
 * operation. A wait past the timeout returns ROE_ERR_TIMEOUT naming the peers whose
 * messages are still outstanding.
 *
 * Waiting: a rank with a core of its own spins (a peer is usually about to answer, and a
 * large message moves only while both sides poll), and after 100 ms without a completed
 * message sleeps 50 us between polls (an idle rank does not burn its core). Ranks that
 * share cores (struct roe_comm_opts.yield_when_idle) spin 100 us, then sched_yield
 * between polls so that the working rank runs, then sleep 20 us after 5 ms.
 *
 * SIGTERM: when one rank dies, mpirun terminates the others with SIGTERM. The handler
 * (async-signal-safe: write(2) of preformatted pieces) reports what this rank was waiting
 * for and from whom, so the job's output names the operation and the missing rank, then
 * exits with 128 + SIGTERM. The handler finds the communicator through one static
 * pointer: a signal handler has no other way in, and MPI allows one world per process.
 */
#include "comm_impl.h"

#ifdef ROE_HAVE_MPI

#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"

enum { TAG_BCAST = 11, TAG_GATHER = 12, TAG_A2A = 13, TAG_REDUCE = 14 };

struct mpi_wait_state { /* read by the SIGTERM handler */
    volatile sig_atomic_t active;
    const char *volatile op;
    const char *volatile what;
    volatile int n_peers;
    int *peers; /* [size] */
};

struct mpi_impl {
    MPI_Comm comm;
    int finalize;           /* we called MPI_Init */
    MPI_Request *reqs;      /* [2 * size] scratch of the blocking collectives */
    int *peer;              /* [2 * size] */
    int *idx;               /* [2 * size] */
    MPI_Status *stats;      /* [2 * size] */
    int yield;              /* ranks share cores: yield while waiting */
    void *red;              /* allreduce scratch */
    size_t red_bytes;
    struct mpi_wait_state ws;
};

struct mpi_xfer {
    roe_comm_xfer base;
    MPI_Request *reqs; /* [2 * size] */
    int *peer;         /* [2 * size] */
    int *idx;
    MPI_Status *stats;
    int n;
    int n_recv;      /* the first n_recv requests are receives */
    MPI_Datatype dt;
    int pending;
    const char *what;
};

static roe_comm *roe__mpi_world; /* for the SIGTERM handler only (see the top comment) */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static MPI_Datatype mpi_type(roe_comm_dtype t) {
    switch (t) {
    case ROE_COMM_BYTE: return MPI_BYTE;
    case ROE_COMM_I32: return MPI_INT32_T;
    case ROE_COMM_I64: return MPI_INT64_T;
    case ROE_COMM_F32: return MPI_FLOAT;
    case ROE_COMM_F64: return MPI_DOUBLE;
    }
    return MPI_BYTE;
}

static roe_status mpi_error(const roe_comm *c, int code, const char *op, const char *what, int peer) {
    char s[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(code, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error code %d", code);
    else s[len] = '\0';
    if (peer >= 0)
        return roe_fail(ROE_ERR_COMM, "rank %d: %s '%s' with rank %d failed: %s", c->rank, op, what,
                        peer, s);
    return roe_fail(ROE_ERR_COMM, "rank %d: %s '%s' failed: %s", c->rank, op, what, s);
}

static roe_status count_ok(const roe_comm *c, size_t count, const char *op, const char *what) {
    if (count > (size_t)INT_MAX)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "rank %d: %s '%s': %zu elements exceed MPI's limit of %d per message",
                        c->rank, op, what, count, INT_MAX);
    return ROE_OK;
}

/* ---- the SIGTERM report ---- */

static void sig_puts(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void sig_puti(int v) {
    char b[16];
    int i = (int)sizeof b;
    b[--i] = '\0';
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
    do {
        b[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u && i > 1);
    if (v < 0) b[--i] = '-';
    sig_puts(b + i);
}

static void on_sigterm(int sig) {
    const roe_comm *c = roe__mpi_world;
    if (c) {
        const struct mpi_impl *m = c->impl;
        sig_puts("roe[");
        sig_puti(c->rank);
        sig_puts("] error comm: rank ");
        sig_puti(c->rank);
        sig_puts(" terminated by SIGTERM (mpirun ends the job when a rank fails) ");
        if (m->ws.active) {
            sig_puts("while waiting in ");
            sig_puts(m->ws.op ? m->ws.op : "?");
            sig_puts(" '");
            sig_puts(m->ws.what ? m->ws.what : "?");
            sig_puts("' for rank(s) ");
            for (int i = 0; i < m->ws.n_peers; i++) {
                if (i) sig_puts(", ");
                sig_puti(m->ws.peers[i]);
            }
            sig_puts("\n");
        } else
            sig_puts("while computing, not waiting on a peer\n");
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- bounded waits ---- */

static void publish_wait(struct mpi_impl *m, const char *op, const char *what, const MPI_Request *reqs,
                         const int *peer, int n) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (reqs[i] != MPI_REQUEST_NULL) {
            int dup = 0;
            for (int j = 0; j < k; j++) dup |= m->ws.peers[j] == peer[i];
            if (!dup) m->ws.peers[k++] = peer[i];
        }
    m->ws.op = op;
    m->ws.what = what;
    m->ws.n_peers = k;
    m->ws.active = 1;
}

/* Formats the peers of the requests still outstanding: "1, 3". */
static void pending_peers(const MPI_Request *reqs, const int *peer, int n, char *buf, size_t cap) {
    size_t o = 0;
    int shown = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && o + 16 < cap; i++) {
        if (reqs[i] == MPI_REQUEST_NULL) continue;
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= reqs[j] != MPI_REQUEST_NULL && peer[j] == peer[i];
        if (dup) continue;
        o += (size_t)snprintf(buf + o, cap - o, "%s%d", shown++ ? ", " : "", peer[i]);
    }
}

/* Gives up on requests still outstanding after a failure: receives are cancelled, sends
 * left to finish on their own, so that MPI holds nothing of ours afterwards. */
static void abandon(MPI_Request *reqs, int n) {
    for (int i = 0; i < n; i++) {
        if (reqs[i] == MPI_REQUEST_NULL) continue;
        MPI_Cancel(&reqs[i]);
        MPI_Request_free(&reqs[i]);
    }
}

/* Polls reqs[n] (completed ones become MPI_REQUEST_NULL) until all complete, the deadline
 * passes, or one fails. */
/* Records how much each completed receive (reqs[0..n_recv)) brought, in got[peer]. */
static void note_received(const int *idx, MPI_Status *stats, int outcount, int n_recv, const int *peer,
                          MPI_Datatype dt, size_t *got) {
    for (int k = 0; got && k < outcount; k++) {
        if (idx[k] >= n_recv) continue;
        int cnt = 0;
        MPI_Get_count(&stats[k], dt, &cnt);
        got[peer[idx[k]]] = cnt > 0 ? (size_t)cnt : 0;
    }
}

static roe_status wait_reqs(roe_comm *c, MPI_Request *reqs, const int *peer, int *idx,
                            MPI_Status *stats, int n, const char *op, const char *what, int n_recv,
                            MPI_Datatype dt, size_t *got) {
    struct mpi_impl *m = c->impl;
    const double t0 = now_s(), deadline = t0 + c->timeout_s;
    double last_progress = t0;
    publish_wait(m, op, what, reqs, peer, n);
    roe_status st = ROE_OK;
    for (;;) {
        int outcount = 0;
        int rc = MPI_Testsome(n, reqs, &outcount, idx, stats);
        if (rc != MPI_SUCCESS) {
            int code = rc, bad = -1;
            if (rc == MPI_ERR_IN_STATUS)
                for (int i = 0; i < outcount; i++)
                    if (stats[i].MPI_ERROR != MPI_SUCCESS) {
                        code = stats[i].MPI_ERROR;
                        bad = idx[i];
                        break;
                    }
            st = mpi_error(c, code, op, what, bad >= 0 ? peer[bad] : -1);
            break;
        }
        if (outcount == MPI_UNDEFINED) break; /* every request is done */
        note_received(idx, stats, outcount, n_recv, peer, dt, got);
        const double t = now_s();
        if (outcount > 0) {
            last_progress = t;
            publish_wait(m, op, what, reqs, peer, n);
            continue;
        }
        if (t > deadline) {
            char who[256];
            pending_peers(reqs, peer, n, who, sizeof who);
            st = roe_fail(ROE_ERR_TIMEOUT,
                          "rank %d: %s '%s' timed out after %.0f s waiting for rank(s) %s: they died "
                          "or stopped answering (ROE_COMM_TIMEOUT_S sets the bound; ROE_LIVENESS_S once roe serve runs)",
                          c->rank, op, what, c->timeout_s, who);
            break;
        }
        const double idle = t - last_progress;
        if (!m->yield) {
            if (idle < 100e-3) continue;
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        } else if (idle < 100e-6)
            continue;
        else if (idle < 5e-3)
            sched_yield();
        else {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
    m->ws.active = 0;
    if (st != ROE_OK) abandon(reqs, n);
    return st;
}

/* ---- collectives ---- */

static roe_status mpi_bcast(roe_comm *c, void *buf, size_t count, roe_comm_dtype t, int root,
                            const char *what) {
    struct mpi_impl *m = c->impl;
    ROE_TRY(count_ok(c, count, "bcast", what));
    int n = 0, rc = MPI_SUCCESS;
    if (c->rank == root) {
        for (int p = 1; p < c->size && rc == MPI_SUCCESS; p++) {
            const int r = (root + p) % c->size;
            m->peer[n] = r;
            rc = MPI_Isend(buf, (int)count, mpi_type(t), r, TAG_BCAST, m->comm, &m->reqs[n++]);
        }
    } else {
        m->peer[n] = root;
        rc = MPI_Irecv(buf, (int)count, mpi_type(t), root, TAG_BCAST, m->comm, &m->reqs[n++]);
    }
    if (rc != MPI_SUCCESS) return mpi_error(c, rc, "bcast", what, m->peer[n - 1]);
    return wait_reqs(c, m->reqs, m->peer, m->idx, m->stats, n, "bcast", what, 0, MPI_BYTE, NULL);
}

static roe_status mpi_gatherv(roe_comm *c, const void *send, size_t count, void *recv,
                              const size_t *counts, const size_t *displs, roe_comm_dtype t, int root,
                              const char *what) {
    struct mpi_impl *m = c->impl;
    const size_t es = roe_comm_dtype_size(t);
    ROE_TRY(count_ok(c, count, "gather", what));
    int n = 0, rc = MPI_SUCCESS;
    if (c->rank == root) {
        for (int r = 0; r < c->size && rc == MPI_SUCCESS; r++) {
            const size_t cr = counts ? counts[r] : count, dr = displs ? displs[r] : (size_t)r * count;
            if (r == root) {
                if (cr) memmove((char *)recv + dr * es, send, cr * es);
                continue;
            }
            ROE_TRY(count_ok(c, cr, "gather", what));
            m->peer[n] = r;
            rc = MPI_Irecv((char *)recv + dr * es, (int)cr, mpi_type(t), r, TAG_GATHER, m->comm,
                           &m->reqs[n++]);
        }
    } else {
        m->peer[n] = root;
        rc = MPI_Isend(send, (int)count, mpi_type(t), root, TAG_GATHER, m->comm, &m->reqs[n++]);
    }
    if (rc != MPI_SUCCESS) return mpi_error(c, rc, "gather", what, m->peer[n - 1]);
    return wait_reqs(c, m->reqs, m->peer, m->idx, m->stats, n, "gather", what, 0, MPI_BYTE, NULL);
}

static roe_status mpi_allreduce(roe_comm *c, const void *in, void *out, size_t count,
                                roe_comm_dtype t, roe_comm_op op, const char *what) {
    struct mpi_impl *m = c->impl;
    const size_t es = roe_comm_dtype_size(t);
    size_t bytes;
    if (!roe_size_mul(count * es, (size_t)c->size, &bytes) || count > SIZE_MAX / es)
        return roe_fail(ROE_ERR_INVALID_ARG, "rank %d: allreduce '%s' of %zu elements is too large",
                        c->rank, what, count);
    if (c->rank == 0 && bytes > m->red_bytes) { /* control-plane sizes: grows once, then reused */
        void *p = roe_malloc(bytes);
        if (!p) return roe_fail(ROE_ERR_NOMEM, "rank 0: allreduce '%s': out of memory for %zu bytes", what, bytes);
        roe_free(m->red);
        m->red = p;
        m->red_bytes = bytes;
    }
    ROE_TRY(mpi_gatherv(c, in, count, m->red, NULL, NULL, t, 0, what));
    if (c->rank == 0) {
        memmove(out, m->red, count * es);
        for (int r = 1; r < c->size; r++) roe__comm_reduce(out, (char *)m->red + (size_t)r * count * es, count, t, op);
    }
    return mpi_bcast(c, out, count, t, 0, what);
}

static roe_status mpi_barrier(roe_comm *c, const char *what) {
    char b = 0; /* the empty messages' buffer, then the release's byte */
    struct mpi_impl *m = c->impl;
    /* gather of empty messages to rank 0, then its release */
    int n = 0, rc = MPI_SUCCESS;
    if (c->rank == 0) {
        for (int r = 1; r < c->size && rc == MPI_SUCCESS; r++) {
            m->peer[n] = r;
            rc = MPI_Irecv(&b, 0, MPI_BYTE, r, TAG_GATHER, m->comm, &m->reqs[n++]);
        }
    } else {
        m->peer[n] = 0;
        rc = MPI_Isend(&b, 0, MPI_BYTE, 0, TAG_GATHER, m->comm, &m->reqs[n++]);
    }
    if (rc != MPI_SUCCESS) return mpi_error(c, rc, "barrier", what, m->peer[n - 1]);
    ROE_TRY(wait_reqs(c, m->reqs, m->peer, m->idx, m->stats, n, "barrier", what, 0, MPI_BYTE, NULL));
    return mpi_bcast(c, &b, 1, ROE_COMM_BYTE, 0, what);
}

/* ---- all-to-all-v ---- */

static void mpi_xfer_free(roe_comm_xfer *base) {
    struct mpi_xfer *x = (struct mpi_xfer *)base;
    if (!x) return;
    roe_free(x->reqs);
    roe_free(x->peer);
    roe_free(x->idx);
    roe_free(x->stats);
    roe_free(x);
}

static roe_status mpi_xfer_create(roe_comm *c, roe_comm_xfer **out) {
    struct mpi_xfer *x = roe_calloc(1, sizeof *x);
    const size_t n = 2 * (size_t)c->size;
    if (x) {
        x->base.comm = c;
        x->reqs = roe_malloc(n * sizeof *x->reqs);
        x->peer = roe_malloc(n * sizeof *x->peer);
        x->idx = roe_malloc(n * sizeof *x->idx);
        x->stats = roe_malloc(n * sizeof *x->stats);
    }
    if (!x || !x->reqs || !x->peer || !x->idx || !x->stats) {
        if (x) mpi_xfer_free(&x->base);
        return roe_fail(ROE_ERR_NOMEM, "rank %d: out of memory for a transfer of %d ranks", c->rank, c->size);
    }
    *out = &x->base;
    return ROE_OK;
}

static roe_status mpi_exchange_start(roe_comm_xfer *base, const void *const *send, const size_t *scounts,
                                     void *const *recv, const size_t *rcounts, roe_comm_dtype t,
                                     const char *what) {
    struct mpi_xfer *x = (struct mpi_xfer *)base;
    roe_comm *c = base->comm;
    struct mpi_impl *m = c->impl;
    const size_t es = roe_comm_dtype_size(t);
    const int me = c->rank, N = c->size;
    if (x->pending)
        return roe_fail(ROE_ERR_INTERNAL, "rank %d: alltoallv '%s' started while '%s' is in flight", me,
                        what, x->what);
    x->what = what;
    x->n = 0;
    x->dt = mpi_type(t);
    for (int p = 0; p < N; p++) base->got[p] = 0;
    if (scounts[me] > rcounts[me])
        return roe_fail(ROE_ERR_INVALID_ARG, "rank %d: alltoallv '%s': sends %zu elements to itself but accepts %zu",
                        me, what, scounts[me], rcounts[me]);
    for (int p = 0; p < N; p++) {
        ROE_TRY(count_ok(c, scounts[p], "alltoallv", what));
        ROE_TRY(count_ok(c, rcounts[p], "alltoallv", what));
    }
    int rc = MPI_SUCCESS;
    /* receives first, then sends, each walking the ring from this rank so that not every
     * rank starts with rank 0 */
    for (int p = 1; p < N && rc == MPI_SUCCESS; p++) {
        const int src = (me - p + N) % N;
        if (!rcounts[src]) continue;
        x->peer[x->n] = src;
        rc = MPI_Irecv(recv[src], (int)rcounts[src], mpi_type(t), src, TAG_A2A, m->comm, &x->reqs[x->n++]);
    }
    x->n_recv = x->n;
    for (int p = 1; p < N && rc == MPI_SUCCESS; p++) {
        const int dst = (me + p) % N;
        if (!scounts[dst]) continue;
        x->peer[x->n] = dst;
        rc = MPI_Isend(send[dst], (int)scounts[dst], mpi_type(t), dst, TAG_A2A, m->comm, &x->reqs[x->n++]);
    }
    if (rc != MPI_SUCCESS) return mpi_error(c, rc, "alltoallv", what, x->peer[x->n - 1]);
    if (scounts[me]) memmove(recv[me], send[me], scounts[me] * es);
    base->got[me] = scounts[me];
    x->pending = x->n > 0;
    return ROE_OK;
}

static roe_status mpi_xfer_test(roe_comm_xfer *base, int *done) {
    struct mpi_xfer *x = (struct mpi_xfer *)base;
    roe_comm *c = base->comm;
    *done = 1;
    if (!x->pending) return ROE_OK;
    int outcount = 0;
    int rc = MPI_Testsome(x->n, x->reqs, &outcount, x->idx, x->stats);
    if (rc != MPI_SUCCESS) {
        int code = rc, bad = -1;
        if (rc == MPI_ERR_IN_STATUS)
            for (int i = 0; i < outcount; i++)
                if (x->stats[i].MPI_ERROR != MPI_SUCCESS) {
                    code = x->stats[i].MPI_ERROR;
                    bad = x->idx[i];
                    break;
                }
        x->pending = 0;
        return mpi_error(c, code, "alltoallv", x->what, bad >= 0 ? x->peer[bad] : -1);
    }
    if (outcount == MPI_UNDEFINED) x->pending = 0;
    else note_received(x->idx, x->stats, outcount, x->n_recv, x->peer, x->dt, base->got);
    *done = !x->pending;
    return ROE_OK;
}

static roe_status mpi_xfer_wait(roe_comm_xfer *base) {
    struct mpi_xfer *x = (struct mpi_xfer *)base;
    if (!x->pending) return ROE_OK;
    x->pending = 0;
    return wait_reqs(base->comm, x->reqs, x->peer, x->idx, x->stats, x->n, "alltoallv", x->what, x->n_recv, x->dt,
                     base->got);
}

static volatile sig_atomic_t abort_code = 1;

static void on_abort_alarm(int sig) {
    (void)sig;
    _exit(abort_code);
}

__attribute__((noreturn)) static void mpi_abort(roe_comm *c, int code) {
    fflush(stdout);
    fflush(stderr);
    /* mpirun answers MPI_Abort (or has already answered a dead rank) with SIGTERM: whatever
     * handler a command installed (roe serve drains on SIGTERM), this process must now end */
    signal(SIGTERM, SIG_DFL);
    /* and MPI_Abort waits for mpirun, which may be busy tearing the job down after a rank died
     * (Open MPI 4.1 sleeps between its signals): this process ends within 2 s either way */
    abort_code = code;
    signal(SIGALRM, on_abort_alarm);
    alarm(2);
    MPI_Abort(MPI_COMM_WORLD, code);
    _exit(code); /* MPI_Abort does not return; this satisfies noreturn */
}

/* ---- bounded start-up and shutdown ----
 * MPI_Init and MPI_Finalize wait for every rank (Open MPI's PMIx fence) and take no timeout:
 * a rank that dies or stops while the job starts would hang the others there forever. An
 * alarm bounds them by the communicator's timeout: on expiry the rank writes why (from a
 * message formatted beforehand: the handler may only write(2)) and exits 1, and mpirun ends
 * the job. */
static char watch_msg[320];
static size_t watch_len;

static void on_watch_alarm(int sig) {
    (void)sig;
    ssize_t w = write(STDERR_FILENO, watch_msg, watch_len);
    (void)w;
    _exit(1);
}

static void watch_start(double timeout_s, const char *call) {
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    if (!r) r = getenv("PMIX_RANK");
    r = r ? r : "?";
    const int n = snprintf(watch_msg, sizeof watch_msg,
                           "roe[%s] error rank %s: %s did not finish within %.0f s: another rank died or stopped "
                           "while the job %s (ROE_COMM_TIMEOUT_S sets the bound)\n",
                           r, r, call, timeout_s, strcmp(call, "MPI_Finalize") ? "started" : "ended");
    watch_len = n < 0 ? 0 : (size_t)n < sizeof watch_msg ? (size_t)n : sizeof watch_msg - 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watch_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(timeout_s >= 1 ? (unsigned)(timeout_s + 0.999) : 1u);
}

static void watch_stop(void) {
    alarm(0);
    signal(SIGALRM, SIG_DFL);
}

static void mpi_destroy(roe_comm *c) {
    struct mpi_impl *m = c->impl;
    if (m) {
        if (roe__mpi_world == c) {
            signal(SIGTERM, SIG_DFL);
            roe__mpi_world = NULL;
        }
        if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
        if (m->finalize) {
            watch_start(c->timeout_s, "MPI_Finalize");
            MPI_Finalize();
            watch_stop();
        }
        roe_free(m->reqs);
        roe_free(m->peer);
        roe_free(m->idx);
        roe_free(m->stats);
        roe_free(m->red);
        roe_free(m->ws.peers);
        roe_free(m);
    }
    roe_free(c);
}

static const struct roe_comm_ops roe_comm_mpi_ops = {
    .name = "mpi",
    .bcast = mpi_bcast,
    .gatherv = mpi_gatherv,
    .allreduce = mpi_allreduce,
    .barrier = mpi_barrier,
    .xfer_create = mpi_xfer_create,
    .xfer_free = mpi_xfer_free,
    .exchange_start = mpi_exchange_start,
    .xfer_test = mpi_xfer_test,
    .xfer_wait = mpi_xfer_wait,
    .abort = mpi_abort,
    .destroy = mpi_destroy,
};

int roe_comm_have_mpi(void) { return 1; }

roe_status roe_comm_mpi_create(int *argc, char ***argv, const struct roe_comm_opts *opts,
                               roe_comm **out) {
    *out = NULL;
    const double timeout = opts ? opts->timeout_s : roe_comm_opts_default().timeout_s;
    if (!(timeout > 0))
        return roe_fail(ROE_ERR_INVALID_ARG, "mpi transport: timeout %g s must be > 0", timeout);
    if (roe__mpi_world)
        return roe_fail(ROE_ERR_INVALID_ARG, "mpi transport: a world communicator already exists");
    roe_comm *c = roe_calloc(1, sizeof *c);
    struct mpi_impl *m = roe_calloc(1, sizeof *m);
    if (!c || !m) {
        roe_free(c);
        roe_free(m);
        return roe_fail(ROE_ERR_NOMEM, "mpi transport: out of memory");
    }
    c->ops = &roe_comm_mpi_ops;
    c->impl = m;
    c->timeout_s = timeout;
    m->comm = MPI_COMM_NULL;
    m->yield = opts ? opts->yield_when_idle : 0;
    int inited = 0, rc;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        watch_start(timeout, "MPI_Init");
        rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        watch_stop();
        if (rc != MPI_SUCCESS) {
            roe_free(m);
            roe_free(c);
            return roe_fail(ROE_ERR_COMM, "MPI_Init_thread failed (code %d): is this run under mpirun?", rc);
        }
        m->finalize = 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(m->comm, &c->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(m->comm, &c->size);
    if (rc != MPI_SUCCESS) {
        roe_status st = mpi_error(c, rc, "init", "MPI_COMM_WORLD", -1);
        mpi_destroy(c);
        return st;
    }
    const size_t n = 2 * (size_t)c->size;
    m->reqs = roe_malloc(n * sizeof *m->reqs);
    m->peer = roe_malloc(n * sizeof *m->peer);
    m->idx = roe_malloc(n * sizeof *m->idx);
    m->stats = roe_malloc(n * sizeof *m->stats);
    m->ws.peers = roe_malloc(n * sizeof *m->ws.peers);
    if (!m->reqs || !m->peer || !m->idx || !m->stats || !m->ws.peers) {
        mpi_destroy(c);
        return roe_fail(ROE_ERR_NOMEM, "mpi transport: out of memory for %d ranks", (int)(n / 2));
    }
    roe__mpi_world = c;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigterm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    *out = c;
    return ROE_OK;
}

#else /* !ROE_HAVE_MPI */

int roe_comm_have_mpi(void) { return 0; }

roe_status roe_comm_mpi_create(int *argc, char ***argv, const struct roe_comm_opts *opts,
                               roe_comm **out) {
    *out = NULL;
    return roe_fail(ROE_ERR_UNSUPPORTED,
                    "this roe was built without MPI (-DROE_WITH_MPI=OFF): it cannot run under mpirun");
}

#endif
