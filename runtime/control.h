/*
 * control.h — the control plane between ranks: what the coordinator (rank 0) tells every
 * other rank (open a session, run a step, exit) and what they answer, as plain C structs.
 * This file's .c is the only one that knows the wire format (protobuf-c, comm/control.proto):
 * it packs, broadcasts, gathers, decodes and checks.
 *
 * Framing: a control message is broadcast as its length (one int64), then its bytes. Replies
 * are gathered as every rank's length, then the bytes (gatherv). Rank 0 sends an empty reply
 * to the gathers (its own results never leave it).
 *
 * Versions: every message carries ROE_CONTROL_VERSION. A message of another version is
 * refused with ROE_ERR_UNSUPPORTED naming both versions and both roe builds: a job whose
 * ranks run different builds stops at its first message, before any step.
 *
 * Memory: a decoded message lives in the io's arena (sized at creation, grown between
 * messages only) until the next decode; message buffers are sized for the session at its
 * start, so a step allocates nothing. A size announced by a peer is checked against the
 * limits before any buffer grows, and the arrays of a decoded message are checked for
 * consistent lengths before the caller sees them.
 */
#ifndef ROE_CONTROL_H
#define ROE_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "comm/comm.h"
#include "roster.h"

enum { ROE_CONTROL_VERSION = 4 };

/* The version this process speaks: ROE_CONTROL_VERSION, unless a test overrides it
 * ($ROE_TEST_CONTROL_VERSION, base/env.h). */
uint32_t roe_control_version(void);

/* What every rank opens: a model directory and an engine (runtime/rank.h). */
struct roe_session_spec {
    const char *model_dir;  /* an absolute path every rank can read */
    int max_seqs, max_ctx, max_rows;
    int n_threads;          /* 0: the rank's default */
    int isa;                /* roe_cpu_isa the coordinator runs (AUTO: any) */
    int no_dedup;
    int wire;               /* roe_ep_wire */
    int no_overlap;
    int warm;               /* read the rank's weights into memory after opening */
    int backend;            /* roe_backend_kind */
    int weights;            /* roe_weights (quant.h): how every rank holds its weights */
    double liveness_s;      /* > 0: once open, the bound on every wait for another rank */
    size_t kv_bytes;        /* each rank's KV block pool; 0: max_seqs full contexts (kv_cache.h) */
    int kv_block_size;      /* positions per KV block; 0: ROE_KV_BLOCK_DEFAULT */
    int kv_dtype;           /* roe_dtype of the KV cache (F32 or BF16) */
    int mor_full_depth;     /* MoR benchmarks: every token runs every recursion (rank 0 only: not on the wire) */
    int n_layers, n_experts;
    const int *owner;       /* [n_owner = n_layers * n_experts] the placement, -1 in dense layers;
                               NULL: none (one process) */
    size_t n_owner;
    const char *placement_source;
};

/* A sequence's binding, sent with the step after it changed. */
struct roe_plan_bind {
    int seq, home;
    int reset;                       /* its cache empties on its home rank */
    int copy_from, copy_len;         /* copy_len > 0: then it starts as copy_from's first
                                        copy_len positions (the same home rank) */
    uint64_t seed;
    const struct roe_roster *roster; /* NULL: plain routing */
};

/* One step for every rank: the bindings, then the rows and groups (runtime/cluster.h). */
struct roe_step_plan {
    uint64_t step;
    size_t n_bind;
    const struct roe_plan_bind *bind; /* sending only; a decoded plan: roe_step_plan_bind */
    size_t n_rows;                    /* the row arrays all have n_rows entries */
    const uint32_t *row_seq, *row_pos, *row_sample, *row_flags; /* flags bit 0: wants logits */
    const int32_t *row_token;
    size_t n_groups;                  /* the group arrays all have n_groups entries */
    const uint32_t *group_first, *group_n, *group_mode;
    size_t n_pool_op;                 /* the pool log (cluster.c): the other ranks' KV pool
                                         operations since the last plan, in order */
    const uint32_t *pool_op;
    const void *decoded;              /* the decoded message (binds), for roe_step_plan_bind */
};

typedef enum roe_control_kind {
    ROE_CONTROL_OPEN = 1,
    ROE_CONTROL_STEP,
    ROE_CONTROL_EXIT,
} roe_control_kind;

struct roe_control {
    roe_control_kind kind;
    struct roe_session_spec open; /* OPEN */
    struct roe_step_plan step;    /* STEP */
    int exit_code;                /* EXIT */
};

/* A rank's answer to an OPEN or a STEP. */
struct roe_reply {
    uint64_t step;
    roe_status status;         /* ROE_OK, or what failed there (error says why) */
    const char *error;
    const float *out;          /* STEP: the rank's group outputs, in plan order */
    size_t n_out;
    uint64_t distinct_experts; /* STEP */
    uint64_t rows_computed;    /* STEP */
    uint64_t resident_bytes;   /* OPEN: dense weights + its experts */
    uint64_t mapped_resident_bytes; /* OPEN: checkpoint pages touched (after warming) */
    const char *backend;       /* OPEN */
};

/* The buffers of one rank's control plane. */
struct roe_control_io {
    uint8_t *msg;       /* packed messages */
    size_t msg_cap;
    unsigned char *arena; /* decoded messages */
    size_t arena_cap, arena_used;
    size_t *lens, *offs; /* [ranks] the coordinator's gather of replies */
    int n_ranks;
    void *pack;         /* the wire form of a plan's bindings ([max_binds]) */
    int max_binds, n_layers;
};

/* Buffers for messages of up to msg_cap bytes, decoded into arena_cap bytes, plans of up to
 * max_binds bindings with rosters of n_layers layers, in a world of n_ranks. */
roe_status roe_control_io_init(struct roe_control_io *io, int n_ranks, size_t msg_cap, size_t arena_cap,
                               int max_binds, int n_layers);
void roe_control_io_free(struct roe_control_io *io);

/* Coordinator: broadcasts m. */
roe_status roe_control_send(roe_comm *c, const struct roe_control *m, struct roe_control_io *io);
/* Other ranks: receives the next message and checks it; *out lives until the next decode. */
roe_status roe_control_recv(roe_comm *c, struct roe_control_io *io, struct roe_control *out);
/* Decodes and checks a message received by rank `me` (fuzzing, tests). */
roe_status roe_control_decode(const uint8_t *p, size_t len, int me, struct roe_control_io *io,
                              struct roe_control *out);
/* Binding i of a decoded plan for a model of n_layers layers; roster receives its roster
 * (b->roster points at it) when it has one. ROE_ERR_FORMAT names rank `me` on a bad roster. */
roe_status roe_step_plan_bind(const struct roe_step_plan *p, size_t i, int n_layers, int me,
                              struct roe_plan_bind *b, struct roe_roster *roster);

/* Every rank but 0: sends its reply to the gather. */
roe_status roe_reply_send(roe_comm *c, const struct roe_reply *r, struct roe_control_io *io, const char *what);
/* Rank 0: gathers every other rank's reply; then roe_reply_get decodes rank r's. */
roe_status roe_reply_collect(roe_comm *c, struct roe_control_io *io, const char *what);
roe_status roe_reply_get(struct roe_control_io *io, int rank, struct roe_reply *out);
/* Decodes rank `rank`'s reply bytes and checks its version and status (a failed rank's own
 * message becomes this status's message, prefixed by its rank). */
roe_status roe_reply_decode(const uint8_t *p, size_t len, int rank, struct roe_control_io *io,
                            struct roe_reply *out);

#endif
