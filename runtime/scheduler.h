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
 * Admission (KV cache in blocks). The engine holds a pool of KV blocks per rank (kv_cache.h,
 * sized by --kv-memory; docs/KV.md) and max_seqs sequence slots. A request is admitted when slots
 * for its choices are free and its home rank's pool has the blocks of its prompt that the cache
 * does not hold, plus a watermark, free beyond what the running sequences need (batch.h
 * roe_batch_fits, as vLLM admits); when decoding runs short of blocks, the youngest running
 * sequence is preempted and recomputed later (batch.h), with the same tokens: no request fails
 * for it. With `kv_blocks` (--kv-blocks), admission also reserves each request's worst case,
 * ceil((prompt + max_tokens) / block_size) blocks per choice, against that many blocks of
 * `block_size` positions, until it ends (the former admission: a cap). Admission is
 * first-come first-served: the head of the queue is admitted as soon as it fits, and no later
 * request overtakes it (nor while a preempted sequence waits).
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
 * Choices (n > 1): a request's n sequences are admitted together, on one home rank; the first
 * computes the prompt and the others start from its cache (batch.h: forks), each sampling with
 * seed + i, so choice i is exactly what the request alone with that seed gives. The request ends
 * when every choice has; a choice that fails fails the request.
 *
 * Log-probabilities (logprobs, top_logprobs; prompt_logprobs for echo): of each token under the
 * distribution it was picked from (the RoE aggregate; before temperature, top-k and top-p, as
 * vLLM returns them), computed on the scheduler thread as tokens come. Stop strings: matched by
 * the batching core over the tokens' text (stop.h); the view says where the text ends.
 *
 * Memory: the scheduler's buffers are sized at creation for the engine's limits; a request
 * owns its prompt copy and, per choice, a token buffer of max_tokens (and its log-probabilities
 * when asked), allocated at submit.
 */
#ifndef ROE_SCHEDULER_H
#define ROE_SCHEDULER_H

#include <stdint.h>

#include "base/status.h"
#include "batch.h"
#include "histogram.h"

struct roe_sched_opts {
    const roe_tokenizer *tok; /* the text of tokens for stop strings (borrowed; NULL: none) */
    int max_queue;      /* waiting requests at most (>= 0) */
    int block_size;     /* positions per block of the kv_blocks cap; 0: the engine's pool's */
    int kv_blocks;      /* > 0: a cap on the requests' worst-case blocks (see the top); 0: none,
                           admission by the pool's free blocks alone */
    double heartbeat_s; /* several ranks: an empty step after this long idle (0: ROE_COMM_TIMEOUT_S
                           / 4) */
    int prefill_first;  /* a step with prompt rows runs no decode rows (roe_batch_opts.prefill_first:
                           TTFT before TPOT); 0: decode groups first, then prompt chunks */
};

struct roe_sched_opts roe_sched_opts_default(void);

enum { ROE_SCHED_MAX_STOP = 8, ROE_SCHED_MAX_CHOICES = 16, ROE_SCHED_MAX_TOP_LOGPROBS = 20 };

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
    int n;                           /* choices, 1 to ROE_SCHED_MAX_CHOICES (0: 1) */
    int logprobs;                    /* each token's log-probability */
    int top_logprobs;                /* and the most likely alternatives (<= MAX_TOP_LOGPROBS) */
    int prompt_logprobs;             /* the prompt's tokens' too (every position is scored) */
    const struct roe_stop_text *stop_text; /* stop strings (needs the scheduler's tokenizer) */
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
    ROE_SREQ_FIELD_N,          /* more choices than allowed, or than the slots or KV pool hold */
    ROE_SREQ_FIELD_LOGPROBS,   /* top_logprobs out of range */
    ROE_SREQ_FIELD_STOP_TEXT,  /* stop strings without a tokenizer */
} roe_sreq_field;

typedef enum roe_sreq_end {
    ROE_SREQ_RUNNING = 0, /* not ended yet (waiting or running) */
    ROE_SREQ_FINISHED,    /* ended normally: see finish */
    ROE_SREQ_CANCELLED,   /* roe_sreq_cancel was called */
    ROE_SREQ_FAILED,      /* the engine failed, or the server stopped before it could run */
} roe_sreq_end;

/* One choice of a request, in a view. The arrays are owned by the request (valid until its
 * last release); their first n_tokens entries are final. */
struct roe_sreq_choice_view {
    int n_tokens;
    const int32_t *tokens;
    const float *logprobs;        /* [n_tokens] when asked */
    const int32_t *top_ids;       /* [n_tokens, top_logprobs] */
    const float *top_logprobs;    /* [n_tokens, top_logprobs] */
    int ended;                    /* this choice is done (see finish) */
    roe_finish finish;            /* LENGTH, or EOS (eos, a stop token or a stop string) */
    long stop_at;                 /* a stop string ended it: its text ends at this byte; else -1 */
    int hold;                     /* running: text bytes at the end that may begin a stop string */
};

/* A consistent snapshot of a request, taken under its lock. */
struct roe_sreq_view {
    int n_tokens;          /* choice 0's: tokens[0, n_tokens) are final */
    const int32_t *tokens; /* owned by the request; valid until its last release */
    int total_tokens;      /* over every choice (roe_sreq_wait's `have`) */
    int n_choices;
    struct roe_sreq_choice_view choice[ROE_SCHED_MAX_CHOICES];
    int top_logprobs;
    int prompt_scored;                /* prompt_logprobs: positions [1, prompt_scored) are scored */
    const float *prompt_logprobs;     /* [n_prompt]: entry p scores prompt token p (p >= 1) */
    const int32_t *prompt_top_ids;    /* [n_prompt, top_logprobs] */
    const float *prompt_top_logprobs; /* [n_prompt, top_logprobs] */
    roe_sreq_end end;
    roe_finish finish;                /* when FINISHED: choice 0's, LENGTH or EOS */
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

/* Any thread: waits until the request has more than `have` tokens (over every choice) or has
 * ended, at most timeout_s seconds; fills *v. Returns 1 if there is news, 0 on timeout. (Prompt
 * log-probabilities are all in by the first token.) */
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

/* Any thread: 1 once a failure left the engine unusable (roe_sched_run returns it). */
int roe_sched_failed(roe_sched *s);

/* Counters for /metrics, as one snapshot. */
struct roe_sched_stats {
    int running, waiting;
    int max_seqs, max_queue;
    int kv_blocks_total, kv_blocks_used, block_size;
    /* the block pool of rank 0's engine (kv_cache.h), after the last step: blocks held by
     * sequences, free, and cached (unreferenced, registered: evictable); prefix reuse (hits and
     * queries: every rank's) */
    int pool_blocks, pool_held, pool_free, pool_cached;
    uint64_t prefix_hit_tokens, prefix_query_tokens, prefix_evictions;
    uint64_t preemptions; /* running sequences preempted for blocks (batch.h), recomputed later */
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
