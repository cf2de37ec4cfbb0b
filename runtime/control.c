/*
 * control.c — the control plane's wire format (protobuf-c, comm/control.proto), framing,
 * decoding and checks; see control.h. The only file that includes the generated code.
 */
#include "control.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/env.h"
#include "comm/control.pb-c.h"

_Static_assert(sizeof(int) == sizeof(int32_t), "the placement's int owners travel as int32");

enum {
    ROE_MSG_MAX = 1 << 30, /* no control message or reply may exceed 1 GiB */
    ROE_ARENA_ALIGN = 16,
};

/* The wire form of a plan's bindings, reused by every step. */
struct pack {
    Roe__SeqBind *binds;  /* [max_binds] */
    Roe__SeqBind **bindp; /* [max_binds] */
    Roe__Roster *rmsg;    /* [max_binds] */
    float *rtau;          /* [max_binds, n_layers] */
};

uint32_t roe_control_version(void) {
    const int v = roe_env_test_control_version();
    return v > 0 ? (uint32_t)v : (uint32_t)ROE_CONTROL_VERSION;
}

/* ---- buffers ---- */

static roe_status msg_reserve(struct roe_control_io *io, size_t n) {
    if (n <= io->msg_cap) return ROE_OK;
    if (n > ROE_MSG_MAX)
        return roe_fail(ROE_ERR_INVALID_ARG, "control plane: a %zu-byte message exceeds the limit of %d bytes",
                        n, ROE_MSG_MAX);
    uint8_t *p = roe_malloc(n);
    if (!p) return roe_fail(ROE_ERR_NOMEM, "control plane: out of memory for a %zu-byte message", n);
    roe_free(io->msg);
    io->msg = p;
    io->msg_cap = n;
    return ROE_OK;
}

/* Grows the arena to at least cap (between messages only: decoded messages die). */
static roe_status arena_reserve(struct roe_control_io *io, size_t cap) {
    io->arena_used = 0;
    if (cap <= io->arena_cap) return ROE_OK;
    unsigned char *p = roe_malloc_aligned(cap);
    if (!p) return roe_fail(ROE_ERR_NOMEM, "control plane: out of memory for a %zu-byte decoding arena", cap);
    roe_free_aligned(io->arena);
    io->arena = p;
    io->arena_cap = cap;
    return ROE_OK;
}

static void *arena_alloc(void *data, size_t size) {
    struct roe_control_io *io = data;
    const size_t off = (io->arena_used + ROE_ARENA_ALIGN - 1) & ~(size_t)(ROE_ARENA_ALIGN - 1);
    if (off > io->arena_cap || size > io->arena_cap - off) return NULL;
    io->arena_used = off + size;
    return io->arena + off;
}

static void arena_release(void *data, void *p) {}

/* The wire form of max_binds bindings with n_layers taus each. */
#define PACK_ARRAYS(k, B, L)                                                                       \
    {ROE_ARRAY((k)->binds, B), ROE_ARRAY((k)->bindp, B), ROE_ARRAY((k)->rmsg, B), ROE_ARRAY((k)->rtau, (B) * (L))}

static roe_status pack_init(struct roe_control_io *io) {
    if (io->max_binds <= 0) return ROE_OK;
    struct pack *k = io->pack = roe_calloc(1, sizeof *k);
    if (!k) return roe_fail(ROE_ERR_NOMEM, "control plane: out of memory");
    const struct roe_array arrays[] = PACK_ARRAYS(k, (size_t)io->max_binds, (size_t)io->n_layers);
    return roe_arrays_alloc(arrays, ROE_N_OF(arrays), "control plane bindings");
}

roe_status roe_control_io_init(struct roe_control_io *io, int n_ranks, size_t msg_cap, size_t arena_cap,
                               int max_binds, int n_layers) {
    memset(io, 0, sizeof *io);
    io->n_ranks = n_ranks;
    io->max_binds = max_binds;
    io->n_layers = n_layers;
    io->lens = roe_calloc((size_t)n_ranks, sizeof *io->lens);
    io->offs = roe_calloc((size_t)n_ranks, sizeof *io->offs);
    roe_status st = io->lens && io->offs ? ROE_OK
                                         : roe_fail(ROE_ERR_NOMEM, "control plane: out of memory for %d ranks", n_ranks);
    if (st == ROE_OK) st = msg_reserve(io, msg_cap);
    if (st == ROE_OK) st = arena_reserve(io, arena_cap);
    if (st == ROE_OK) st = pack_init(io);
    if (st != ROE_OK) roe_control_io_free(io);
    return st;
}

void roe_control_io_free(struct roe_control_io *io) {
    struct pack *k = io->pack;
    if (k) {
        const struct roe_array arrays[] = PACK_ARRAYS(k, 0, 0);
        roe_arrays_free(arrays, ROE_N_OF(arrays));
        roe_free(k);
    }
    roe_free(io->msg);
    roe_free_aligned(io->arena);
    roe_free(io->lens);
    roe_free(io->offs);
    memset(io, 0, sizeof *io);
}

/* ---- from plain structs to the wire ---- */

static roe_status pack_binds(struct roe_control_io *io, const struct roe_step_plan *p, Roe__StepPlan *m) {
    struct pack *k = io->pack;
    if (p->n_bind > (size_t)io->max_binds)
        return roe_fail(ROE_ERR_INTERNAL, "control plane: %zu bindings in one plan, room for %d", p->n_bind,
                        io->max_binds);
    const size_t L = (size_t)io->n_layers;
    for (size_t i = 0; i < p->n_bind; i++) {
        const struct roe_plan_bind *src = &p->bind[i];
        Roe__SeqBind *b = &k->binds[i];
        roe__seq_bind__init(b);
        b->seq = (uint32_t)src->seq;
        b->home = (uint32_t)src->home;
        b->seed = src->seed;
        b->reset = src->reset != 0;
        b->copy_len = (uint32_t)(src->copy_len > 0 ? src->copy_len : 0);
        b->copy_from = (uint32_t)(src->copy_len > 0 ? src->copy_from : 0);
        if (src->roster) {
            Roe__Roster *r = &k->rmsg[i];
            roe__roster__init(r);
            r->k = (uint32_t)src->roster->k;
            r->gate = (uint32_t)src->roster->gate;
            r->adaptive_entropy = src->roster->adaptive_entropy;
            r->keep_clean = (uint32_t)src->roster->keep_clean;
            r->n_tau = L;
            r->tau = k->rtau + i * L;
            memcpy(r->tau, src->roster->tau, L * sizeof(float));
            b->roster = r;
        }
        k->bindp[i] = b;
    }
    m->n_bind = p->n_bind;
    m->bind = k->bindp;
    return ROE_OK;
}

static roe_status pack_step(struct roe_control_io *io, const struct roe_step_plan *p, Roe__StepPlan *m) {
    ROE_TRY(pack_binds(io, p, m));
    m->step = p->step;
    m->n_row_seq = m->n_row_pos = m->n_row_token = m->n_row_sample = m->n_row_flags = p->n_rows;
    m->row_seq = (uint32_t *)p->row_seq;
    m->row_pos = (uint32_t *)p->row_pos;
    m->row_token = (int32_t *)p->row_token;
    m->row_sample = (uint32_t *)p->row_sample;
    m->row_flags = (uint32_t *)p->row_flags;
    m->n_group_first = m->n_group_n = m->n_group_mode = p->n_groups;
    m->group_first = (uint32_t *)p->group_first;
    m->group_n = (uint32_t *)p->group_n;
    m->group_mode = (uint32_t *)p->group_mode;
    m->n_pool_op = p->n_pool_op;
    m->pool_op = (uint32_t *)p->pool_op;
    return ROE_OK;
}

static void pack_open(const struct roe_session_spec *o, Roe__SessionOpen *m) {
    m->model_dir = (char *)o->model_dir;
    m->max_seqs = (uint32_t)o->max_seqs;
    m->max_ctx = (uint32_t)o->max_ctx;
    m->max_rows = (uint32_t)o->max_rows;
    m->n_threads = o->n_threads;
    m->isa = (uint32_t)o->isa;
    m->no_dedup = o->no_dedup != 0;
    m->n_layers = (uint32_t)o->n_layers;
    m->n_experts = (uint32_t)o->n_experts;
    m->n_owner = o->n_owner;
    m->owner = (int32_t *)o->owner; /* int is int32_t here (the static assert below) */
    m->placement_source = (char *)(o->placement_source ? o->placement_source : "");
    m->wire = (uint32_t)o->wire;
    m->no_overlap = o->no_overlap != 0;
    m->warm = o->warm != 0;
    m->backend = (uint32_t)o->backend;
    m->weights = (uint32_t)o->weights;
    m->liveness_s = (float)o->liveness_s;
    m->kv_bytes = (uint64_t)o->kv_bytes;
    m->kv_block_size = (uint32_t)o->kv_block_size;
    m->kv_dtype = (uint32_t)o->kv_dtype;
}

roe_status roe_control_send(roe_comm *c, const struct roe_control *msg, struct roe_control_io *io) {
    Roe__Control m = ROE__CONTROL__INIT;
    Roe__SessionOpen so = ROE__SESSION_OPEN__INIT;
    Roe__StepPlan sp = ROE__STEP_PLAN__INIT;
    Roe__Exit ex = ROE__EXIT__INIT;
    m.version = roe_control_version();
    m.roe_version = (char *)ROE_VERSION;
    if (msg->kind == ROE_CONTROL_OPEN) {
        pack_open(&msg->open, &so);
        m.body_case = ROE__CONTROL__BODY_OPEN;
        m.open = &so;
    } else if (msg->kind == ROE_CONTROL_STEP) {
        ROE_TRY(pack_step(io, &msg->step, &sp));
        m.body_case = ROE__CONTROL__BODY_STEP;
        m.step = &sp;
    } else {
        ex.code = msg->exit_code;
        m.body_case = ROE__CONTROL__BODY_EXIT;
        m.exit = &ex;
    }
    const size_t n = roe__control__get_packed_size(&m);
    ROE_TRY(msg_reserve(io, n));
    roe__control__pack(&m, io->msg);
    int64_t len = (int64_t)n;
    ROE_TRY(roe_comm_bcast(c, &len, 1, ROE_COMM_I64, 0, "control length"));
    return roe_comm_bcast(c, io->msg, n, ROE_COMM_BYTE, 0, "control message");
}

/* ---- from the wire to plain structs ---- */

static roe_status unpack_step(const Roe__StepPlan *m, int me, struct roe_step_plan *p) {
    const size_t n = m->n_row_seq, ng = m->n_group_first;
    if (m->n_row_pos != n || m->n_row_token != n || m->n_row_sample != n || m->n_row_flags != n ||
        m->n_group_n != ng || m->n_group_mode != ng)
        return roe_fail(ROE_ERR_FORMAT, "rank %d: malformed plan of step %llu from rank 0 (%zu rows, %zu groups: "
                        "their fields disagree in length)", me, (unsigned long long)m->step, n, ng);
    for (size_t i = 0; i < m->n_bind; i++)
        if (!m->bind[i])
            return roe_fail(ROE_ERR_FORMAT, "rank %d: the plan of step %llu from rank 0 has an empty binding", me,
                            (unsigned long long)m->step);
    *p = (struct roe_step_plan){
        .step = m->step, .n_bind = m->n_bind, .n_rows = n, .row_seq = m->row_seq, .row_pos = m->row_pos,
        .row_sample = m->row_sample, .row_flags = m->row_flags, .row_token = m->row_token, .n_groups = ng,
        .group_first = m->group_first, .group_n = m->group_n, .group_mode = m->group_mode,
        .n_pool_op = m->n_pool_op, .pool_op = m->pool_op, .decoded = m};
    return ROE_OK;
}

static void unpack_open(const Roe__SessionOpen *m, struct roe_session_spec *o) {
    *o = (struct roe_session_spec){
        .model_dir = m->model_dir, .max_seqs = (int)m->max_seqs, .max_ctx = (int)m->max_ctx,
        .max_rows = (int)m->max_rows, .n_threads = m->n_threads, .isa = (int)m->isa,
        .no_dedup = m->no_dedup, .wire = (int)m->wire, .no_overlap = m->no_overlap, .warm = m->warm,
        .backend = (int)m->backend, .weights = (int)m->weights, .n_layers = (int)m->n_layers, .n_experts = (int)m->n_experts,
        .liveness_s = m->liveness_s > 0 && m->liveness_s < 1e7f ? m->liveness_s : 0,
        .owner = (const int *)m->owner, .n_owner = m->n_owner, .placement_source = m->placement_source,
        .kv_bytes = (size_t)m->kv_bytes, .kv_block_size = m->kv_block_size <= 1u << 20 ? (int)m->kv_block_size : -1,
        .kv_dtype = m->kv_dtype <= 64u ? (int)m->kv_dtype : -1};
}

roe_status roe_step_plan_bind(const struct roe_step_plan *p, size_t i, int n_layers, int me,
                              struct roe_plan_bind *b, struct roe_roster *roster) {
    const Roe__SeqBind *x = ((const Roe__StepPlan *)p->decoded)->bind[i];
    *b = (struct roe_plan_bind){.seq = (int)x->seq, .home = (int)x->home, .reset = x->reset, .seed = x->seed,
                                .copy_from = (int)x->copy_from, .copy_len = (int)x->copy_len};
    if (x->seq > (uint32_t)INT32_MAX || x->home > (uint32_t)INT32_MAX) b->seq = b->home = -1; /* out of range */
    if (x->copy_from > (uint32_t)INT32_MAX || x->copy_len > (uint32_t)INT32_MAX) b->copy_from = b->copy_len = -1;
    if (!x->roster) return ROE_OK;
    const Roe__Roster *r = x->roster;
    if (r->n_tau != (size_t)n_layers || r->k < 1 || r->k > ROE_MAX_SAMPLES || r->gate > ROE_GATE_NOISY)
        return roe_fail(ROE_ERR_FORMAT, "rank %d: the plan from rank 0 gives sequence %u a roster of k %u, %zu taus for %d layers",
                        me, x->seq, r->k, r->n_tau, n_layers);
    roe_roster_plain(roster);
    roster->k = (int)r->k;
    roster->gate = (roe_gate_mode)r->gate;
    roster->adaptive_entropy = r->adaptive_entropy;
    roster->keep_clean = (int)r->keep_clean;
    memcpy(roster->tau, r->tau, (size_t)n_layers * sizeof(float));
    b->roster = roster;
    return ROE_OK;
}

roe_status roe_control_recv(roe_comm *c, struct roe_control_io *io, struct roe_control *out) {
    const int me = roe_comm_rank(c);
    int64_t len = 0;
    ROE_TRY(roe_comm_bcast(c, &len, 1, ROE_COMM_I64, 0, "control length"));
    if (len < 0 || len > ROE_MSG_MAX)
        return roe_fail(ROE_ERR_FORMAT, "rank %d: the coordinator announced a control message of %lld bytes",
                        me, (long long)len);
    ROE_TRY(msg_reserve(io, (size_t)len));
    ROE_TRY(roe_comm_bcast(c, io->msg, (size_t)len, ROE_COMM_BYTE, 0, "control message"));
    return roe_control_decode(io->msg, (size_t)len, me, io, out);
}

/* Checks a decoded Control message's version. */
static roe_status check_control(const Roe__Control *m, size_t len, int me) {
    if (!m)
        return roe_fail(ROE_ERR_FORMAT,
                        "rank %d: cannot decode the %zu-byte control message from rank 0, the coordinator "
                        "(truncated, corrupt, or a different roe build on rank 0? this rank runs roe %s, "
                        "control version %u)",
                        me, len, ROE_VERSION, roe_control_version());
    if (m->version == 0) /* every sender sets it: the message lost its first field */
        return roe_fail(ROE_ERR_FORMAT,
                        "rank %d: the %zu-byte control message from rank 0, the coordinator, carries no "
                        "version (truncated or corrupt)",
                        me, len);
    if (m->version != roe_control_version())
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "rank %d: rank 0, the coordinator (roe %s), speaks control version %u, this rank (roe %s) "
                        "speaks version %u: run the same roe build on every rank",
                        me, m->roe_version, m->version, ROE_VERSION, roe_control_version());
    return ROE_OK;
}

roe_status roe_control_decode(const uint8_t *p, size_t len, int me, struct roe_control_io *io,
                              struct roe_control *out) {
    memset(out, 0, sizeof *out);
    /* decoded sizes: packed varints widen to 4 or 8 bytes, plus message headers */
    ROE_TRY(arena_reserve(io, 8 * len + 65536));
    ProtobufCAllocator pa = {.alloc = arena_alloc, .free = arena_release, .allocator_data = io};
    const Roe__Control *m = roe__control__unpack(&pa, len, p);
    ROE_TRY(check_control(m, len, me));
    switch (m->body_case) {
    case ROE__CONTROL__BODY_OPEN:
        out->kind = ROE_CONTROL_OPEN;
        unpack_open(m->open, &out->open);
        return ROE_OK;
    case ROE__CONTROL__BODY_STEP:
        out->kind = ROE_CONTROL_STEP;
        return unpack_step(m->step, me, &out->step);
    case ROE__CONTROL__BODY_EXIT:
        out->kind = ROE_CONTROL_EXIT;
        out->exit_code = m->exit->code;
        return ROE_OK;
    default:
        return roe_fail(ROE_ERR_FORMAT,
                        "rank %d: the control message from rank 0 (the coordinator) has no known body (%d)", me,
                        (int)m->body_case);
    }
}

/* ---- replies ---- */

roe_status roe_reply_send(roe_comm *c, const struct roe_reply *r, struct roe_control_io *io, const char *what) {
    Roe__Reply m = ROE__REPLY__INIT;
    char keep[1024]; /* the error may live in the buffer this message is packed into */
    snprintf(keep, sizeof keep, "%s", r->error ? r->error : "");
    m.version = roe_control_version();
    m.roe_version = (char *)ROE_VERSION;
    m.rank = (uint32_t)roe_comm_rank(c);
    m.step = r->step;
    m.status = (int32_t)r->status;
    m.error = keep;
    m.out = (float *)r->out;
    m.n_out = r->n_out;
    m.distinct_experts = r->distinct_experts;
    m.rows_computed = r->rows_computed;
    m.resident_bytes = r->resident_bytes;
    m.mapped_resident_bytes = r->mapped_resident_bytes;
    m.backend = (char *)(r->backend ? r->backend : "");
    const size_t n = roe__reply__get_packed_size(&m);
    ROE_TRY(msg_reserve(io, n));
    roe__reply__pack(&m, io->msg);
    int64_t len = (int64_t)n;
    ROE_TRY(roe_comm_gather(c, &len, 1, NULL, ROE_COMM_I64, 0, what));
    return roe_comm_gatherv(c, io->msg, n, NULL, NULL, NULL, ROE_COMM_BYTE, 0, what);
}

roe_status roe_reply_collect(roe_comm *c, struct roe_control_io *io, const char *what) {
    const int N = roe_comm_size(c);
    int64_t mine = 0;
    /* lens doubles as the int64 receive buffer: size_t and int64_t are both 8 bytes here */
    _Static_assert(sizeof(size_t) == sizeof(int64_t), "size_t must be 64-bit");
    ROE_TRY(roe_comm_gather(c, &mine, 1, io->lens, ROE_COMM_I64, 0, what));
    size_t total = 0;
    for (int r = 0; r < N; r++) {
        const int64_t l = ((const int64_t *)io->lens)[r];
        if (l < 0 || l > ROE_MSG_MAX || total > (size_t)ROE_MSG_MAX)
            return roe_fail(ROE_ERR_FORMAT, "rank 0: %s: rank %d announced a reply of %lld bytes", what, r,
                            (long long)l);
        io->lens[r] = (size_t)l;
        io->offs[r] = total;
        total += io->lens[r];
    }
    ROE_TRY(msg_reserve(io, total ? total : 1));
    return roe_comm_gatherv(c, &mine, 0, io->msg, io->lens, io->offs, ROE_COMM_BYTE, 0, what);
}

roe_status roe_reply_get(struct roe_control_io *io, int rank, struct roe_reply *out) {
    return roe_reply_decode(io->msg + io->offs[rank], io->lens[rank], rank, io, out);
}

/* Checks a decoded Reply: version, rank, and the status it reports. */
static roe_status check_reply(const Roe__Reply *m, size_t len, int rank) {
    if (!m)
        return roe_fail(ROE_ERR_FORMAT,
                        "rank 0: cannot decode the %zu-byte reply from rank %d (truncated, corrupt, or a "
                        "different roe build?)",
                        len, rank);
    if (m->version == 0)
        return roe_fail(ROE_ERR_FORMAT, "rank 0: the %zu-byte reply from rank %d carries no version (truncated or corrupt)",
                        len, rank);
    if (m->version != roe_control_version())
        return roe_fail(ROE_ERR_UNSUPPORTED,
                        "rank 0 (roe %s) speaks control version %u, rank %d (roe %s) speaks version %u: run "
                        "the same roe build on every rank",
                        ROE_VERSION, roe_control_version(), rank, m->roe_version, m->version);
    if (m->rank != (uint32_t)rank)
        return roe_fail(ROE_ERR_FORMAT, "rank 0: the reply gathered from rank %d says it is rank %u", rank, m->rank);
    if (m->status != ROE_OK)
        return roe_fail(m->status > ROE_OK && m->status < ROE_STATUS_COUNT ? (roe_status)m->status : ROE_ERR_COMM,
                        "rank %d: %s", rank, m->error && *m->error ? m->error : "failed");
    return ROE_OK;
}

roe_status roe_reply_decode(const uint8_t *p, size_t len, int rank, struct roe_control_io *io,
                            struct roe_reply *out) {
    memset(out, 0, sizeof *out);
    /* decoded: the floats take what they took packed; the rest is small */
    ROE_TRY(arena_reserve(io, len + 65536));
    ProtobufCAllocator pa = {.alloc = arena_alloc, .free = arena_release, .allocator_data = io};
    const Roe__Reply *m = roe__reply__unpack(&pa, len, p);
    ROE_TRY(check_reply(m, len, rank));
    *out = (struct roe_reply){.step = m->step, .status = (roe_status)m->status, .error = m->error,
                              .out = m->out, .n_out = m->n_out, .distinct_experts = m->distinct_experts,
                              .rows_computed = m->rows_computed, .resident_bytes = m->resident_bytes,
                              .mapped_resident_bytes = m->mapped_resident_bytes, .backend = m->backend};
    return ROE_OK;
}
