/* control.c — control-plane framing, decoding and version checks; see control.h. */
#include "control.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/env.h"

enum {
    ROE_MSG_MAX = 1 << 30, /* no control message or reply may exceed 1 GiB */
    ROE_ARENA_ALIGN = 16,
};

uint32_t roe_control_version(void) {
    const int v = roe_env_test_control_version();
    return v > 0 ? (uint32_t)v : (uint32_t)ROE_CONTROL_VERSION;
}

static void *arena_alloc(void *data, size_t size) {
    struct roe_arena *a = data;
    const size_t off = (a->used + ROE_ARENA_ALIGN - 1) & ~(size_t)(ROE_ARENA_ALIGN - 1);
    if (off > a->cap || size > a->cap - off) return NULL;
    a->used = off + size;
    return a->buf + off;
}

static void arena_release(void *data, void *p) {}

roe_status roe_arena_init(struct roe_arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
    return roe_arena_reserve(a, cap);
}

roe_status roe_arena_reserve(struct roe_arena *a, size_t cap) {
    if (cap <= a->cap) return ROE_OK;
    unsigned char *p = roe_malloc_aligned(cap);
    if (!p) return roe_fail(ROE_ERR_NOMEM, "control plane: out of memory for a %zu-byte decoding arena", cap);
    roe_free_aligned(a->buf);
    a->buf = p;
    a->cap = cap;
    a->used = 0;
    a->pa.alloc = arena_alloc;
    a->pa.free = arena_release;
    a->pa.allocator_data = a;
    return ROE_OK;
}

void roe_arena_free(struct roe_arena *a) {
    roe_free_aligned(a->buf);
    memset(a, 0, sizeof *a);
}

void roe_arena_reset(struct roe_arena *a) { a->used = 0; }

roe_status roe_msgbuf_reserve(struct roe_msgbuf *b, size_t n) {
    if (n <= b->cap) return ROE_OK;
    if (n > ROE_MSG_MAX)
        return roe_fail(ROE_ERR_INVALID_ARG, "control plane: a %zu-byte message exceeds the limit of %d bytes",
                        n, ROE_MSG_MAX);
    uint8_t *p = roe_malloc(n);
    if (!p) return roe_fail(ROE_ERR_NOMEM, "control plane: out of memory for a %zu-byte message", n);
    roe_free(b->p);
    b->p = p;
    b->cap = n;
    return ROE_OK;
}

void roe_msgbuf_free(struct roe_msgbuf *b) {
    roe_free(b->p);
    b->p = NULL;
    b->cap = 0;
}

roe_status roe_control_send(roe_comm *c, Roe__Control *msg, struct roe_msgbuf *buf) {
    msg->version = roe_control_version();
    msg->roe_version = (char *)ROE_VERSION;
    const size_t n = protobuf_c_message_get_packed_size(&msg->base);
    ROE_TRY(roe_msgbuf_reserve(buf, n));
    protobuf_c_message_pack(&msg->base, buf->p);
    int64_t len = (int64_t)n;
    ROE_TRY(roe_comm_bcast(c, &len, 1, ROE_COMM_I64, 0, "control length"));
    return roe_comm_bcast(c, buf->p, n, ROE_COMM_BYTE, 0, "control message");
}

roe_status roe_control_recv(roe_comm *c, struct roe_msgbuf *buf, struct roe_arena *a,
                            Roe__Control **out) {
    const int me = roe_comm_rank(c);
    int64_t len = 0;
    *out = NULL;
    ROE_TRY(roe_comm_bcast(c, &len, 1, ROE_COMM_I64, 0, "control length"));
    if (len < 0 || len > ROE_MSG_MAX)
        return roe_fail(ROE_ERR_FORMAT, "rank %d: the coordinator announced a control message of %lld bytes",
                        me, (long long)len);
    ROE_TRY(roe_msgbuf_reserve(buf, (size_t)len));
    ROE_TRY(roe_comm_bcast(c, buf->p, (size_t)len, ROE_COMM_BYTE, 0, "control message"));
    return roe_control_decode(buf->p, (size_t)len, me, a, out);
}

roe_status roe_control_decode(const uint8_t *p, size_t len, int me, struct roe_arena *a, Roe__Control **out) {
    *out = NULL;
    /* decoded sizes: packed varints widen to 4 or 8 bytes, plus message headers */
    ROE_TRY(roe_arena_reserve(a, 8 * len + 65536));
    roe_arena_reset(a);
    Roe__Control *m = roe__control__unpack(&a->pa, len, p);
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
    *out = m;
    return ROE_OK;
}

roe_status roe_reply_send(roe_comm *c, Roe__Reply *msg, struct roe_msgbuf *buf, const char *what) {
    msg->version = roe_control_version();
    msg->roe_version = (char *)ROE_VERSION;
    msg->rank = (uint32_t)roe_comm_rank(c);
    const size_t n = protobuf_c_message_get_packed_size(&msg->base);
    ROE_TRY(roe_msgbuf_reserve(buf, n));
    protobuf_c_message_pack(&msg->base, buf->p);
    int64_t len = (int64_t)n;
    ROE_TRY(roe_comm_gather(c, &len, 1, NULL, ROE_COMM_I64, 0, what));
    return roe_comm_gatherv(c, buf->p, n, NULL, NULL, NULL, ROE_COMM_BYTE, 0, what);
}

roe_status roe_reply_collect(roe_comm *c, struct roe_msgbuf *buf, size_t *lens, size_t *offs,
                             const char *what) {
    const int N = roe_comm_size(c);
    int64_t mine = 0;
    /* lens doubles as the int64 receive buffer: size_t and int64_t are both 8 bytes here */
    _Static_assert(sizeof(size_t) == sizeof(int64_t), "size_t must be 64-bit");
    ROE_TRY(roe_comm_gather(c, &mine, 1, lens, ROE_COMM_I64, 0, what));
    size_t total = 0;
    for (int r = 0; r < N; r++) {
        const int64_t l = ((const int64_t *)lens)[r];
        if (l < 0 || l > ROE_MSG_MAX || total > (size_t)ROE_MSG_MAX)
            return roe_fail(ROE_ERR_FORMAT, "rank 0: %s: rank %d announced a reply of %lld bytes", what, r,
                            (long long)l);
        lens[r] = (size_t)l;
        offs[r] = total;
        total += lens[r];
    }
    ROE_TRY(roe_msgbuf_reserve(buf, total ? total : 1));
    return roe_comm_gatherv(c, &mine, 0, buf->p, lens, offs, ROE_COMM_BYTE, 0, what);
}

roe_status roe_reply_unpack(const uint8_t *p, size_t len, int rank, struct roe_arena *a,
                            Roe__Reply **out) {
    *out = NULL;
    /* decoded: the floats take what they took packed; the rest is small */
    ROE_TRY(roe_arena_reserve(a, len + 65536));
    roe_arena_reset(a);
    Roe__Reply *m = roe__reply__unpack(&a->pa, len, p);
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
        return roe_fail(m->status > ROE_OK && m->status <= ROE_ERR_INTERNAL ? (roe_status)m->status : ROE_ERR_COMM, "rank %d: %s", rank, m->error && *m->error ? m->error : "failed");
    *out = m;
    return ROE_OK;
}
