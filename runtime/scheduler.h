/*
 * scheduler.h — continuous batching: requests arrive at any time, join the running batch at
 * step boundaries, and leave it when they end, while one thread drives the engine.
 *
 * Threads. Any thread may submit a request (roe_sched_submit), wait for its tokens
 * (roe_sreq_wait), cancel it and release it. Exactly one thread — the scheduler thread, the
 * one that opened the engine (under mpirun: rank 0's main thread, the one MPI knows) — runs
 * roe_sched_run, which owns the engine and is the only one to touch it. Submitting never
 * blocks on the engine: it takes one short lock and appends to the waiting queue.
 *
 * Admission (KV cache in blocks). The engine holds max_seqs cache slots of max_ctx positions
 * each (kv_cache.h). The scheduler accounts the cache in blocks of `block_size` positions over
 * a pool of `kv_blocks` blocks (default: every slot's positions, i.e. slots x max_ctx /
 * block_size); a request reserves ceil((prompt + max_tokens) / block_size) blocks when it is
 * admitted and returns them when it ends, so an admitted request always runs to its end: none
 * is ever preempted or evicted. Admission is first-come first-served: the head of the queue
 * is admitted as soon as a slot and its blocks are free, and no later request overtakes it.
 * The queue is bounded (max_queue): beyond it, submit refuses with ROE_ERR_OVERLOADED, so
 * every request is either refused at once, or ends (finished, cancelled, or failed with a
 * status and a message) — none is dropped silently.
 *
 * Errors carry a status whose kind (base/status.h) tells a front end what to answer: a
 * refusal is ROE_ERR_INVALID_ARG naming the field at fault (roe_sreq_field), ROE_ERR_NOMEM,
 * ROE_ERR_OVERLOADED (the queue is full) or ROE_ERR_STOPPING / ROE_ERR_UNAVAILABLE (stopping;
 * after a fatal failure); a failed request carries ROE_ERR_STOPPING (the server stopped first),
 * ROE_ERR_UNAVAILABLE (a rank or the engine failed and the server cannot go on), or
 * ROE_ERR_INTERNAL (a step failed; the server goes on).
 *
 * Steps: the admitted requests run in the batching core (batch.h: decoding sequences first,
 * then prompt chunks; RoE groups; sampling), so a request's tokens are the same bits whatever
 * else shares its steps — the same as `roe generate` gives it alone. Several ranks: each
 * request is homed by ROE_HOME_POLICY (round-robin in admission order, or the rank with the
 * least work in flight); while idle the scheduler sends an empty step every heartbeat_s, so
 * the other ranks' bounded waits (ROE_COMM_TIMEOUT_S) do not expire on a quiet server.
 *
 * Memory: the scheduler's buffers are sized at creation for the engine's limits; a request
 * owns its prompt copy and a token buffer of max_tokens, allocated at submit.
 */
#ifndef ROE_SCHEDULER_H
#define ROE_SCHEDULER_H

#include <stdint.h>

#include "base/status.h"
#include "batch.h"
#include "histogram.h"

struct roe_sched_opts {
    int max_queue;      /* waiting requests at most (>= 0) */
    int block_size;     /* positions per KV block (16) */
    int kv_blocks;      /* blocks in the pool; 0: max_seqs * ceil(max_ctx / block_size) */
    double heartbeat_s; /* several ranks: an empty step after this long idle (0: ROE_COMM_TIMEOUT_S
                           / 4) */
};

struct roe_sched_opts roe_sched_opts_default(void);

enum { ROE_SCHED_MAX_STOP = 8 };

/* What a request asks for. Everything is copied at submit. */
struct roe_sreq_params {
    const int32_t *prompt; /* [n_prompt] token ids */
    int n_prompt;
    int max_tokens;                       /* >= 1 */
    int stop_at_eos;                      /* end after the model's eos token */
    int32_t stop_ids[ROE_SCHED_MAX_STOP]; /* more tokens that end it (a chat template's end) */
    int n_stop;
    struct roe_sampling sampling;    /* its seed also keys the RoE noise */
    const struct roe_roster *roster; /* NULL: the plain model */
};

/* The field of roe_sreq_params a refused request is wrong in, so that a front end can name its
 * own parameter without reading the message. */
typedef enum roe_sreq_field {
    ROE_SREQ_FIELD_NONE = 0,   /* not the request's fault (queue full, stopping, out of memory) */
    ROE_SREQ_FIELD_PROMPT,     /* empty, or a token outside the vocabulary */
    ROE_SREQ_FIELD_MAX_TOKENS, /* below 1, or with the prompt beyond the context or the KV pool */
    ROE_SREQ_FIELD_STOP,       /* more stop tokens than ROE_SCHED_MAX_STOP */
    ROE_SREQ_FIELD_SAMPLING,   /* roe_sampling_validate refused it */
    ROE_SREQ_FIELD_ROSTER,     /* roe_roster_validate refused it, or K exceeds a step's rows */
} roe_sreq_field;

typedef enum roe_sreq_end {
    ROE_SREQ_RUNNING = 0, /* not ended yet (waiting or running) */
    ROE_SREQ_FINISHED,    /* ended normally: see finish */
    ROE_SREQ_CANCELLED,   /* roe_sreq_cancel was called */
    ROE_SREQ_FAILED,      /* the engine failed, or the server stopped before it could run */
} roe_sreq_end;

/* A consistent snapshot of a request, taken under its lock. */
struct roe_sreq_view {
    int n_tokens;          /* tokens[0, n_tokens) are final */
    const int32_t *tokens; /* owned by the request; valid until its last release */
    roe_sreq_end end;
    roe_finish finish;                /* when FINISHED: LENGTH or EOS (eos or a stop token) */
    const char *error;                /* when FAILED: why (owned by the request) */
    roe_status code;                  /* when FAILED: why, as a status (see the top); else OK */
    double t_arrival, t_first, t_end; /* roe_now_s() clock; 0 until they happen */
    int prompt_tokens;
};

typedef struct roe_sched roe_sched;
typedef struct roe_sreq roe_sreq;

/* The engine must outlive the scheduler; it is used from roe_sched_run's thread only. */
roe_status roe_sched_create(roe_engine *engine, const struct roe_sched_opts *opts, roe_sched **out);
/* After roe_sched_run returned. Requests still held by callers stay valid until released. */
void roe_sched_free(roe_sched *s);

/* Any thread. On ROE_OK, *out is a new request with one reference for the caller
 * (roe_sreq_release). Otherwise *out is NULL, the status says why (see the top) and *bad
 * (unless NULL) names the field at fault: ROE_SREQ_FIELD_NONE unless ROE_ERR_INVALID_ARG. */
roe_status roe_sched_submit(roe_sched *s, const struct roe_sreq_params *p, roe_sreq **out,
                            roe_sreq_field *bad);

/* Any thread: waits until the request has more than `have` tokens or has ended, at most
 * timeout_s seconds; fills *v. Returns 1 if there is news (more tokens or the end), 0 on
 * timeout. */
int roe_sreq_wait(roe_sreq *r, int have, double timeout_s, struct roe_sreq_view *v);
/* Any thread: the caller no longer wants the request (its client went away). It ends as
 * CANCELLED at the next step boundary, freeing its slot and blocks; idempotent. */
void roe_sreq_cancel(roe_sreq *r);
void roe_sreq_release(roe_sreq *r);

/* The scheduler thread: admits, steps and samples until roe_sched_stop and every admitted
 * request has ended. Returns ROE_OK, or the status of a failure that leaves the engine
 * unusable (ranks out of step); a failing step otherwise fails only the requests in it. */
roe_status roe_sched_run(roe_sched *s);

/* Any thread (a signal-handling thread): stops taking requests; waiting ones fail with
 * ROE_ERR_STOPPING; running ones finish (abort = 0) or fail so at the next step (abort = 1). */
void roe_sched_stop(roe_sched *s, int abort);

/* Counters for /metrics, as one snapshot. */
struct roe_sched_stats {
    int running, waiting;
    int max_seqs, max_queue;
    int kv_blocks_total, kv_blocks_used, block_size;
    uint64_t requests_finished, requests_cancelled, requests_failed, requests_refused;
    uint64_t finished_stop, finished_length;
    uint64_t prompt_tokens, generation_tokens;
    uint64_t roe_samples;   /* RoE sample rows run for generated tokens (clean rows included) */
    uint64_t rows_computed; /* row-layers the engine computed (after RoE dedup) */
    uint64_t rows_naive;    /* row-layers a roster without dedup would compute */
    uint64_t steps, heartbeats;
    double busy_s;                   /* time spent in steps */
    struct roe_histogram ttft;       /* arrival -> first token */
    struct roe_histogram itl;        /* between successive tokens of a request */
    struct roe_histogram e2e;        /* arrival -> end */
    struct roe_histogram queue_time; /* arrival -> admission */
};

void roe_sched_get_stats(roe_sched *s, struct roe_sched_stats *out);

#endif
