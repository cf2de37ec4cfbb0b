/*
 * scheduler.c — continuous batching over one engine (and its ranks); see scheduler.h.
 *
 * Locks: s->mu guards the waiting queue, the stop flags and the statistics; r->mu guards a
 * request's outputs (tokens, end, times). The order is s->mu before r->mu; nothing takes
 * s->mu while holding an r->mu. The batch (batch.h: the running set, the slots, every step
 * buffer) belongs to the scheduler thread alone.
 *
 * A request's life: submit (queued, refs 2: the caller's and the scheduler's) -> admitted
 * (a slot, its blocks, a home rank) -> prompt chunks -> token groups -> ended (finished,
 * cancelled or failed: its waiters are woken, the scheduler drops its reference) -> the
 * caller releases it -> freed.
 */
#include "scheduler.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/env.h"
#include "batch.h"
#include "base/log.h"

struct roe_sreq {
    roe_sched *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int refs;
    atomic_int cancelled;
    /* immutable after submit: the request, and what seq's request part points to */
    struct roe_batch_seq seq; /* what the batch runs (its own part: the scheduler thread's) */
    int32_t *prompt;          /* [seq.n_prompt] */
    int32_t stop_ids[ROE_SCHED_MAX_STOP];
    struct roe_roster roster;
    int blocks; /* KV blocks reserved while admitted */
    double t_arrival;
    /* the scheduler thread only */
    struct roe_sreq *next;  /* waiting queue link (under s->mu) */
    /* under mu */
    int32_t *tokens; /* [max_tokens] */
    int n_tokens;
    roe_sreq_end end;
    roe_finish finish;
    char error[512];
    roe_status code; /* FAILED: why, as a status (scheduler.h) */
    double t_first, t_last, t_end;
};

struct roe_sched {
    roe_engine *e;
    struct roe_sched_opts o;
    int S, R, ctx, N;
    atomic_int dead; /* a fatal failure: every request still here fails ROE_ERR_UNAVAILABLE */
    /* the scheduler thread only */
    roe_batch *batch; /* the running requests (their seq), in admission order */
    double last_step;
    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    roe_sreq *qhead, *qtail;
    int n_waiting;
    int stopping, aborting;
    int blocks_used;
    struct roe_sched_stats st;
};

/* Bucket bounds (seconds): vLLM's, with finer steps below 10 ms for small models on CPUs. */
static const double TTFT_LE[] = {0.001, 0.0025, 0.005, 0.01, 0.02,  0.04, 0.06, 0.08,
                                 0.1,   0.25,   0.5,   0.75, 1.0,   2.5,  5.0,  7.5,
                                 10.0,  20.0,   40.0,  80.0, 160.0, 640.0};
static const double ITL_LE[] = {0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075,
                                0.1,   0.15,   0.2,   0.3,    0.4,  0.5,   0.75, 1.0,
                                2.5,   5.0,    7.5,   10.0,   20.0, 40.0,  80.0};
static const double E2E_LE[] = {0.01, 0.025, 0.05,  0.1,   0.25,  0.5,   1.0,
                                2.5,  5.0,   10.0,  15.0,  20.0,  30.0,  40.0,
                                50.0, 60.0,  120.0, 240.0, 480.0, 960.0, 1920.0};
#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The batch's hooks (the scheduler thread's side, below). */
static void on_step(void *ctx, const struct roe_batch_step_info *info);
static void on_token(void *ctx, struct roe_batch_seq *seq, int32_t token, const float *z, int ended,
                     roe_finish finish);

struct roe_sched_opts roe_sched_opts_default(void) {
    return (struct roe_sched_opts){
        .max_queue = 256, .block_size = 16, .kv_blocks = 0, .heartbeat_s = 0.0};
}

/* ---- requests ---- */

static void sreq_free(roe_sreq *r) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    roe_free(r->prompt);
    roe_free(r->tokens);
    roe_free(r);
}

void roe_sreq_release(roe_sreq *r) {
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) sreq_free(r);
}

int roe_sreq_wait(roe_sreq *r, int have, double timeout_s, struct roe_sreq_view *v) {
    pthread_mutex_lock(&r->mu);
    if (r->n_tokens <= have && r->end == ROE_SREQ_RUNNING && timeout_s > 0) {
        const struct timespec ts = roe_deadline(timeout_s);
        while (r->n_tokens <= have && r->end == ROE_SREQ_RUNNING)
            if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) break;
    }
    const int news = r->n_tokens > have || r->end != ROE_SREQ_RUNNING;
    *v = (struct roe_sreq_view){.n_tokens = r->n_tokens,
                                .tokens = r->tokens,
                                .end = r->end,
                                .finish = r->finish,
                                .error = r->error,
                                .code = r->code,
                                .t_arrival = r->t_arrival,
                                .t_first = r->t_first,
                                .t_end = r->t_end,
                                .prompt_tokens = r->seq.n_prompt};
    pthread_mutex_unlock(&r->mu);
    return news;
}

void roe_sreq_cancel(roe_sreq *r) {
    if (atomic_exchange(&r->cancelled, 1)) return;
    roe_sched *s = r->s;
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv); /* an idle scheduler drops it from the queue now */
    pthread_mutex_unlock(&s->mu);
}

/* Why a request failed: the status a front end answers by, and the words for people. */
struct failure {
    roe_status code;
    const char *why;
};

/* Ends r (scheduler thread; s->mu may be held): wakes its waiters, records the statistics
 * and drops the scheduler's reference. `f`: when FAILED, why; else NULL. */
static void sreq_end(roe_sched *s, roe_sreq *r, roe_sreq_end end, const struct failure *f,
                     int locked) {
    const double now = roe_now_s();
    pthread_mutex_lock(&r->mu);
    r->end = end;
    r->t_end = now;
    if (f) {
        snprintf(r->error, sizeof r->error, "%s", f->why);
        r->code = f->code;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (!locked) pthread_mutex_lock(&s->mu);
    if (end == ROE_SREQ_FINISHED) {
        s->st.requests_finished++;
        if (r->finish == ROE_FINISH_EOS)
            s->st.finished_stop++;
        else
            s->st.finished_length++;
        roe_histogram_observe(&s->st.e2e, now - r->t_arrival);
    } else if (end == ROE_SREQ_CANCELLED)
        s->st.requests_cancelled++;
    else
        s->st.requests_failed++;
    if (!locked) pthread_mutex_unlock(&s->mu);
    roe_sreq_release(r);
}

/* ---- creation ---- */

void roe_sched_free(roe_sched *s) {
    if (!s) return;
    /* requests still queued or running (roe_sched_run never ran, or failed) end as failed */
    const struct failure queued = {ROE_ERR_STOPPING,
                                   "the scheduler was freed before the request ran"},
                         running = {ROE_ERR_STOPPING,
                                    "the scheduler was freed before the request ended"};
    for (roe_sreq *r = s->qhead, *nx; r; r = nx) {
        nx = r->next;
        sreq_end(s, r, ROE_SREQ_FAILED, &queued, 1);
    }
    for (int i = 0; s->batch && i < roe_batch_count(s->batch); i++)
        sreq_end(s, roe_batch_at(s->batch, i)->user, ROE_SREQ_FAILED, &running, 1);
    roe_batch_free(s->batch);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    roe_free(s);
}

roe_status roe_sched_create(roe_engine *engine, const struct roe_sched_opts *opts,
                            roe_sched **out) {
    *out = NULL;
    const struct roe_engine_opts *eo = roe_engine_get_opts(engine);
    if (opts->max_queue < 0 || opts->block_size < 1 || opts->kv_blocks < 0 ||
        !(opts->heartbeat_s >= 0.0))
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "scheduler: max_queue %d, block_size %d, kv_blocks %d, heartbeat %g s: "
                        "need >= 0, >= 1, "
                        ">= 0, >= 0",
                        opts->max_queue, opts->block_size, opts->kv_blocks, opts->heartbeat_s);
    struct roe_batch_opts bo = roe_batch_opts_default();
    ROE_TRY(roe_home_policy_parse(roe_env_home_policy(), &bo.policy));
    roe_sched *s = roe_calloc(1, sizeof *s);
    if (!s) return roe_fail(ROE_ERR_NOMEM, "scheduler: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    roe_status st;
    s->e = engine;
    s->o = *opts;
    s->S = eo->max_seqs;
    s->R = eo->max_rows;
    s->ctx = eo->max_ctx;
    const int per_slot = (s->ctx + opts->block_size - 1) / opts->block_size;
    if (s->o.kv_blocks == 0) s->o.kv_blocks = s->S * per_slot;
    if (s->o.heartbeat_s == 0.0) s->o.heartbeat_s = roe_comm_timeout(roe_engine_comm(engine)) / 4.0;
    bo.hooks = (struct roe_batch_hooks){.ctx = s, .on_step = on_step, .on_token = on_token};
    ROE_CHECK(roe_batch_create(engine, &bo, &s->batch));
    s->N = roe_batch_ranks(s->batch);
    s->st.max_seqs = s->S;
    s->st.max_queue = s->o.max_queue;
    s->st.kv_blocks_total = s->o.kv_blocks;
    s->st.block_size = s->o.block_size;
    roe_histogram_init(&s->st.ttft, TTFT_LE, N_OF(TTFT_LE));
    roe_histogram_init(&s->st.itl, ITL_LE, N_OF(ITL_LE));
    roe_histogram_init(&s->st.e2e, E2E_LE, N_OF(E2E_LE));
    roe_histogram_init(&s->st.queue_time, E2E_LE, N_OF(E2E_LE));
    s->last_step = roe_now_s();
    *out = s;
    return ROE_OK;
fail:
    roe_sched_free(s);
    return st;
}

/* ---- submit ---- */

/* ROE_OK, or ROE_ERR_INVALID_ARG with *bad set to the field under check when it failed. */
static roe_status check_params(const roe_sched *s, const struct roe_sreq_params *p,
                               roe_sreq_field *bad) {
    const struct roe_model_config *c = &roe_engine_model(s->e)->cfg;
    *bad = ROE_SREQ_FIELD_PROMPT;
    if (p->n_prompt <= 0) return roe_fail(ROE_ERR_INVALID_ARG, "the prompt is empty");
    *bad = ROE_SREQ_FIELD_MAX_TOKENS;
    if (p->max_tokens < 1)
        return roe_fail(ROE_ERR_INVALID_ARG, "max_tokens %d must be at least 1", p->max_tokens);
    if (p->n_prompt >= s->ctx || p->max_tokens > s->ctx - p->n_prompt)
        return roe_fail(
            ROE_ERR_INVALID_ARG,
            "this model's context holds %d tokens, but %d were requested (%d in the prompt, "
            "max_tokens %d): shorten the prompt or lower max_tokens",
            s->ctx, p->n_prompt + p->max_tokens, p->n_prompt, p->max_tokens);
    *bad = ROE_SREQ_FIELD_PROMPT;
    for (int j = 0; j < p->n_prompt; j++)
        if (p->prompt[j] < 0 || p->prompt[j] >= c->vocab_size)
            return roe_fail(ROE_ERR_INVALID_ARG,
                            "prompt token %d is id %d, outside the vocabulary [0, %d)", j,
                            p->prompt[j], c->vocab_size);
    *bad = ROE_SREQ_FIELD_STOP;
    if (p->n_stop < 0 || p->n_stop > ROE_SCHED_MAX_STOP)
        return roe_fail(ROE_ERR_INVALID_ARG, "%d stop tokens: at most %d", p->n_stop,
                        ROE_SCHED_MAX_STOP);
    *bad = ROE_SREQ_FIELD_SAMPLING;
    ROE_TRY(roe_sampling_validate(&p->sampling));
    *bad = ROE_SREQ_FIELD_ROSTER;
    if (p->roster) {
        ROE_TRY(roe_roster_validate(p->roster, c));
        if (p->roster->k > s->R)
            return roe_fail(ROE_ERR_INVALID_ARG,
                            "RoE K = %d needs %d rows per step, the server runs %d", p->roster->k,
                            p->roster->k, s->R);
    }
    *bad = ROE_SREQ_FIELD_MAX_TOKENS;
    const long need = ((long)p->n_prompt + p->max_tokens + s->o.block_size - 1) / s->o.block_size;
    if (need > s->o.kv_blocks)
        return roe_fail(
            ROE_ERR_INVALID_ARG,
            "%d prompt tokens + max_tokens %d need %ld KV blocks of %d positions, but the cache "
            "has %d in all",
            p->n_prompt, p->max_tokens, need, s->o.block_size, s->o.kv_blocks);
    *bad = ROE_SREQ_FIELD_NONE;
    return ROE_OK;
}

roe_status roe_sched_submit(roe_sched *s, const struct roe_sreq_params *p, roe_sreq **out,
                            roe_sreq_field *bad) {
    roe_sreq_field field;
    if (!bad) bad = &field;
    *out = NULL;
    roe_status st = check_params(s, p, bad);
    if (st != ROE_OK) {
        pthread_mutex_lock(&s->mu);
        s->st.requests_refused++;
        pthread_mutex_unlock(&s->mu);
        return st;
    }
    roe_sreq *r = roe_calloc(1, sizeof *r);
    if (r) {
        r->prompt = roe_malloc((size_t)p->n_prompt * sizeof *r->prompt);
        r->tokens = roe_malloc((size_t)p->max_tokens * sizeof *r->tokens);
    }
    if (!r || !r->prompt || !r->tokens) {
        if (r) {
            roe_free(r->prompt);
            roe_free(r->tokens);
            roe_free(r);
        }
        return roe_fail(ROE_ERR_NOMEM, "out of memory for a request of %d + %d tokens", p->n_prompt,
                        p->max_tokens);
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_init(&r->refs, 2);
    atomic_init(&r->cancelled, 0);
    r->s = s;
    memcpy(r->prompt, p->prompt, (size_t)p->n_prompt * sizeof *r->prompt);
    memcpy(r->stop_ids, p->stop_ids, sizeof r->stop_ids);
    if (p->roster) r->roster = *p->roster;
    r->seq = (struct roe_batch_seq){.prompt = r->prompt, .n_prompt = p->n_prompt,
                                    .max_tokens = p->max_tokens, .stop_at_eos = p->stop_at_eos,
                                    .stop_ids = r->stop_ids, .n_stop = p->n_stop,
                                    .sampling = p->sampling, .roster = p->roster ? &r->roster : NULL,
                                    .user = r, .slot = -1};
    r->blocks = (p->n_prompt + p->max_tokens + s->o.block_size - 1) / s->o.block_size;
    r->t_arrival = roe_now_s();
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->n_waiting >= s->o.max_queue) {
        const int stopping = s->stopping;
        s->st.requests_refused++;
        pthread_mutex_unlock(&s->mu);
        sreq_free(r);
        if (!stopping)
            return roe_fail(ROE_ERR_OVERLOADED,
                            "the server is at capacity: %d requests running and %d waiting, the "
                            "queue's limit: retry later",
                            s->st.running, s->n_waiting);
        if (atomic_load(&s->dead))
            return roe_fail(ROE_ERR_UNAVAILABLE, "the server is shutting down: the engine failed "
                                                 "(see the server's log)");
        return roe_fail(ROE_ERR_STOPPING, "the server is shutting down");
    }
    if (s->qtail)
        s->qtail->next = r;
    else
        s->qhead = r;
    s->qtail = r;
    s->n_waiting++;
    s->st.waiting = s->n_waiting;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    *out = r;
    return ROE_OK;
}

void roe_sched_stop(roe_sched *s, int abort) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    if (abort) s->aborting = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void roe_sched_get_stats(roe_sched *s, struct roe_sched_stats *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

/* ---- the scheduler thread ---- */

/* Drops cancelled requests from the queue; with `all`, every queued request (stopping). */
static void sweep_queue(roe_sched *s, int all) {
    roe_sreq **pp = &s->qhead, *prev = NULL;
    while (*pp) {
        roe_sreq *r = *pp;
        const int cancelled = atomic_load(&r->cancelled);
        if (!cancelled && !all) {
            prev = r;
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        if (s->qtail == r) s->qtail = prev;
        s->n_waiting--;
        static const struct failure stopped = {
            ROE_ERR_STOPPING, "the server is shutting down: the request was not started"};
        sreq_end(s, r, cancelled ? ROE_SREQ_CANCELLED : ROE_SREQ_FAILED,
                 cancelled ? NULL : &stopped, 1);
    }
    s->st.waiting = s->n_waiting;
}

/* Admits queued requests, first come first served, while a slot and their blocks are free
 * (s->mu held). */
static roe_status admit(roe_sched *s) {
    while (s->qhead && roe_batch_free_slots(s->batch) > 0 &&
           s->blocks_used + s->qhead->blocks <= s->o.kv_blocks) {
        roe_sreq *r = s->qhead;
        ROE_TRY(roe_batch_admit(s->batch, &r->seq, -1));
        s->qhead = r->next;
        if (!s->qhead) s->qtail = NULL;
        r->next = NULL;
        s->n_waiting--;
        s->blocks_used += r->blocks;
        roe_histogram_observe(&s->st.queue_time, roe_now_s() - r->t_arrival);
    }
    s->st.waiting = s->n_waiting;
    s->st.running = roe_batch_count(s->batch);
    s->st.kv_blocks_used = s->blocks_used;
    return ROE_OK;
}

/* Ends r, which has left the batch: its blocks come back (f: as sreq_end). */
static void retire(roe_sched *s, roe_sreq *r, roe_sreq_end end, const struct failure *f) {
    pthread_mutex_lock(&s->mu);
    s->blocks_used -= r->blocks;
    s->st.running = roe_batch_count(s->batch);
    s->st.kv_blocks_used = s->blocks_used;
    sreq_end(s, r, end, f, 1);
    pthread_mutex_unlock(&s->mu);
}

/* Takes the running request r out of the batch and ends it. */
static void drop(roe_sched *s, roe_sreq *r, roe_sreq_end end, const struct failure *f) {
    roe_batch_remove(s->batch, &r->seq);
    retire(s, r, end, f);
}

static void fail_running(roe_sched *s, roe_status code, const char *why) {
    const struct failure f = {code, why};
    while (roe_batch_count(s->batch) > 0)
        drop(s, roe_batch_at(s->batch, roe_batch_count(s->batch) - 1)->user, ROE_SREQ_FAILED, &f);
}

/* The batch's figures of a step, before any of its tokens is handed out: a client that sees
 * its request end may read the statistics at once, and they must include that step. */
static void on_step(void *ctx, const struct roe_batch_step_info *info) {
    roe_sched *s = ctx;
    s->last_step = roe_now_s();
    pthread_mutex_lock(&s->mu);
    s->st.steps++;
    s->st.busy_s += info->seconds;
    s->st.prompt_tokens += (uint64_t)info->prompt_tokens;
    s->st.roe_samples += (uint64_t)info->samples;
    s->st.rows_computed += (uint64_t)info->stats.rows_computed;
    s->st.rows_naive += (uint64_t)info->rows_naive;
    pthread_mutex_unlock(&s->mu);
}

/* A token for a running request: appended under its lock for its waiters; at its end the
 * request (out of the batch already) is retired. */
static void on_token(void *ctx, struct roe_batch_seq *seq, int32_t token, const float *z, int ended,
                     roe_finish finish) {
    roe_sched *s = ctx;
    roe_sreq *r = seq->user;
    const double now = roe_now_s();
    (void)z;
    pthread_mutex_lock(&r->mu);
    const double prev = r->n_tokens ? r->t_last : -1.0;
    r->tokens[r->n_tokens++] = token;
    if (r->n_tokens == 1) r->t_first = now;
    r->t_last = now;
    r->finish = ended ? finish : ROE_FINISH_LENGTH;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&s->mu);
    s->st.generation_tokens++;
    if (prev < 0.0)
        roe_histogram_observe(&s->st.ttft, now - r->t_arrival);
    else
        roe_histogram_observe(&s->st.itl, now - prev);
    pthread_mutex_unlock(&s->mu);
    if (ended) retire(s, r, ROE_SREQ_FINISHED, NULL);
}

/* Waits (s->mu held) until there is work, a stop, or (several ranks) a heartbeat is due.
 * Returns 1 when a heartbeat is due. */
static int wait_for_work(roe_sched *s) {
    while (!s->qhead && !s->stopping && roe_batch_count(s->batch) == 0) {
        const double due = s->last_step + s->o.heartbeat_s, now = roe_now_s();
        if (s->N > 1 && now >= due) return 1;
        /* several ranks: until the heartbeat; one: a long nap (woken by submit, cancel, stop) */
        const double wait = s->N > 1 ? due - now : 1.0;
        const struct timespec ts = roe_deadline(wait);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        sweep_queue(s, 0);
    }
    return 0;
}

/* A failure that leaves the engine unusable: nothing more can run, so every request ends
 * (with the reason) and later submits are refused. */
static roe_status fatal(roe_sched *s, roe_status st) {
    char why[512];
    snprintf(why, sizeof why, "the engine failed and the server must stop: %s",
             roe_error_message());
    atomic_store(&s->dead, 1);
    fail_running(s, ROE_ERR_UNAVAILABLE, why);
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    const struct failure f = {ROE_ERR_UNAVAILABLE, why};
    for (roe_sreq *r = s->qhead, *nx; r; r = nx) {
        nx = r->next;
        sreq_end(s, r, ROE_SREQ_FAILED, &f, 1);
    }
    s->qhead = s->qtail = NULL;
    s->n_waiting = 0;
    s->st.waiting = 0;
    pthread_mutex_unlock(&s->mu);
    return roe_fail(st, "%s", why);
}

roe_status roe_sched_run(roe_sched *s) {
    for (;;) {
        pthread_mutex_lock(&s->mu);
        sweep_queue(s, s->stopping);
        const int heartbeat = wait_for_work(s);
        sweep_queue(s, s->stopping);
        const int aborting = s->aborting, stopping = s->stopping;
        roe_status st = ROE_OK;
        if (!stopping) st = admit(s);
        const int idle = roe_batch_count(s->batch) == 0;
        pthread_mutex_unlock(&s->mu);
        if (st != ROE_OK) return fatal(s, st);
        if (aborting)
            fail_running(s, ROE_ERR_STOPPING, "the server stopped before the request ended");
        if ((idle || aborting) && stopping) return ROE_OK;
        for (int i = roe_batch_count(s->batch) - 1; i >= 0; i--) {
            roe_sreq *r = roe_batch_at(s->batch, i)->user;
            if (atomic_load(&r->cancelled)) drop(s, r, ROE_SREQ_CANCELLED, NULL);
        }
        if (heartbeat) {
            st = roe_batch_heartbeat(s->batch);
            if (st != ROE_OK) return fatal(s, st);
            s->last_step = roe_now_s();
            pthread_mutex_lock(&s->mu);
            s->st.heartbeats++;
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        st = roe_batch_step(s->batch, NULL);
        if (st != ROE_OK) {
            char why[512];
            snprintf(why, sizeof why, "the engine failed: %s", roe_error_message());
            ROE_LOG_ERROR("sched", "%s", why);
            if (s->N > 1 || roe_comm_failed(roe_engine_comm(s->e)))
                return fatal(s, st); /* ranks out of step */
            /* the engine failed, not the requests: they fail, the server goes on */
            fail_running(s, ROE_ERR_INTERNAL, why);
        }
    }
}
