/*
 * control.h — moving the control plane's messages (comm/control.proto) between ranks:
 * packing, the broadcast of Control messages from the coordinator, the gather of Reply
 * messages at it, and decoding with version checks.
 *
 * Framing: a Control message is broadcast as its length (one int64), then its bytes. A
 * Reply is gathered as every rank's length, then the bytes (gatherv). Rank 0 sends an
 * empty reply to the gathers (its own results never leave it).
 *
 * Versions: every message carries ROE_CONTROL_VERSION. A message of another version is
 * refused with ROE_ERR_UNSUPPORTED naming both versions and both roe builds: a job whose
 * ranks run different builds stops at its first message, before any step.
 *
 * Memory: decoding uses an arena (protobuf-c's allocator hook) sized at creation, and
 * message buffers are sized for the session at its start, so a step allocates nothing.
 * A size announced by a peer is checked against the limits before any buffer grows.
 */
#ifndef ROE_CONTROL_H
#define ROE_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "comm/control.pb-c.h"
#include "base/status.h"

enum { ROE_CONTROL_VERSION = 1 };

/* The version this process speaks: ROE_CONTROL_VERSION, unless a test overrides it
 * ($ROE_TEST_CONTROL_VERSION, base/env.h). */
uint32_t roe_control_version(void);

/* A bump allocator for decoded messages; reset before each decode. */
struct roe_arena {
    unsigned char *buf;
    size_t cap;
    size_t used;
    ProtobufCAllocator pa;
};

roe_status roe_arena_init(struct roe_arena *a, size_t cap);
void roe_arena_free(struct roe_arena *a);
void roe_arena_reset(struct roe_arena *a);
/* Grows the arena to at least cap (between messages only). */
roe_status roe_arena_reserve(struct roe_arena *a, size_t cap);

/* A byte buffer for packed messages. */
struct roe_msgbuf {
    uint8_t *p;
    size_t cap;
};

roe_status roe_msgbuf_reserve(struct roe_msgbuf *b, size_t n);
void roe_msgbuf_free(struct roe_msgbuf *b);

/* Coordinator: broadcasts msg (version and roe_version are filled in here). */
roe_status roe_control_send(roe_comm *c, Roe__Control *msg, struct roe_msgbuf *buf);

/* Other ranks: receives the next Control message and checks its version. *out lives in
 * the arena until its next reset. */
roe_status roe_control_recv(roe_comm *c, struct roe_msgbuf *buf, struct roe_arena *a,
                            Roe__Control **out);

/* Decodes a Control message (into the arena) and checks its version; `me` names this rank
 * in messages. */
roe_status roe_control_decode(const uint8_t *p, size_t len, int me, struct roe_arena *a, Roe__Control **out);

/* Every rank but 0: sends its reply to the gather (version filled in). */
roe_status roe_reply_send(roe_comm *c, Roe__Reply *msg, struct roe_msgbuf *buf, const char *what);

/* Rank 0: collects every other rank's reply bytes: rank r's are buf->p + offs[r], lens[r]
 * bytes (offs/lens are [size]; lens[0] = 0). */
roe_status roe_reply_collect(roe_comm *c, struct roe_msgbuf *buf, size_t *lens, size_t *offs,
                             const char *what);

/* Decodes rank r's reply and checks its version and status (a failed rank's own message
 * becomes this status's message, prefixed by its rank). */
roe_status roe_reply_unpack(const uint8_t *p, size_t len, int rank, struct roe_arena *a,
                            Roe__Reply **out);

#endif
