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

#include "aggregate.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/env.h"
#include "batch.h"
#include "base/log.h"

/* One choice: what the batch runs (seq; its own part is the scheduler thread's) and, under the
 * request's mu, what it produced. */
struct choice {
    struct roe_sreq *r;
    struct roe_batch_seq seq;
    int32_t *tokens;  /* [max_tokens] */
    float *lp;        /* [max_tokens] when logprobs */
    int32_t *top_id;  /* [max_tokens, top] */
    float *top_lp;    /* [max_tokens, top] */
    int n_tokens;
    int ended;
    roe_finish finish;
    long stop_at;
    int hold;
};

struct roe_sreq {
    roe_sched *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int refs;
    atomic_int cancelled;
    /* immutable after submit: the request, and what the seqs' request parts point to */
    int n;                    /* choices */
    struct choice *ch;        /* [n] */
    int32_t *prompt;          /* [n_prompt] */
    int n_prompt;
    int32_t stop_ids[ROE_SCHED_MAX_STOP];
    struct roe_roster roster;
    struct roe_stop_text stop_text;
    int logprobs, top;        /* top: top_logprobs */
    int blocks; /* KV blocks reserved while admitted (every choice's) */
    double t_arrival;
    /* the scheduler thread only */
    struct roe_sreq *next;  /* waiting queue link (under s->mu) */
    int n_running;          /* choices still in the batch */
    /* under mu */
    float *plp;             /* [n_prompt] prompt_logprobs */
    int32_t *ptop_id;       /* [n_prompt, top] */
    float *ptop_lp;
    int prompt_scored;
    int total_tokens;
    roe_sreq_end end;
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
    int cap;         /* kv_blocks was given: admission also reserves each request's worst case */
    int blocks_used; /* cap: blocks reserved */
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
static void on_prompt(void *ctx, struct roe_batch_seq *seq, int pos, const float *z);
static void on_fail(void *ctx, struct roe_batch_seq *seq, roe_status code, const char *why);

struct roe_sched_opts roe_sched_opts_default(void) {
    return (struct roe_sched_opts){
        .max_queue = 256, .block_size = 0, .kv_blocks = 0, .heartbeat_s = 0.0};
}

/* ---- requests ---- */

/* A request's arrays: n choices, prompt P, T tokens and `top` alternatives each. */
#define CHOICE_ARRAYS(c, T_, TOP_, LP_)                                                            \
    {ROE_ARRAY((c)->tokens, T_), ROE_ARRAY((c)->lp, (LP_) ? (T_) : 0),                             \
     ROE_ARRAY((c)->top_id, (LP_) ? (T_) * (TOP_) : 0), ROE_ARRAY((c)->top_lp, (LP_) ? (T_) * (TOP_) : 0)}
#define PROMPT_ARRAYS(r, P_, TOP_, PLP_)                                                           \
    {ROE_ARRAY((r)->prompt, P_), ROE_ARRAY((r)->plp, (PLP_) ? (P_) : 0),                           \
     ROE_ARRAY((r)->ptop_id, (PLP_) ? (P_) * (TOP_) : 0), ROE_ARRAY((r)->ptop_lp, (PLP_) ? (P_) * (TOP_) : 0)}

static void sreq_free(roe_sreq *r) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    for (int i = 0; r->ch && i < r->n; i++) {
        const struct roe_array a[] = CHOICE_ARRAYS(&r->ch[i], 0, 0, 0);
        roe_arrays_free(a, ROE_N_OF(a));
    }
    const struct roe_array a[] = PROMPT_ARRAYS(r, 0, 0, 0);
    roe_arrays_free(a, ROE_N_OF(a));
    roe_free(r->ch);
    roe_free(r);
}

void roe_sreq_release(roe_sreq *r) {
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) sreq_free(r);
}

/* The snapshot of r (r->mu held). */
static void view_of(const roe_sreq *r, struct roe_sreq_view *v) {
    *v = (struct roe_sreq_view){.n_tokens = r->ch[0].n_tokens, .tokens = r->ch[0].tokens,
                                .total_tokens = r->total_tokens, .n_choices = r->n,
                                .top_logprobs = r->top, .prompt_scored = r->prompt_scored,
                                .prompt_logprobs = r->plp, .prompt_top_ids = r->ptop_id,
                                .prompt_top_logprobs = r->ptop_lp, .end = r->end,
                                .finish = r->ch[0].finish, .error = r->error, .code = r->code,
                                .t_arrival = r->t_arrival, .t_first = r->t_first, .t_end = r->t_end,
                                .prompt_tokens = r->n_prompt};
    for (int i = 0; i < r->n; i++) {
        const struct choice *c = &r->ch[i];
        v->choice[i] = (struct roe_sreq_choice_view){
            .n_tokens = c->n_tokens, .tokens = c->tokens, .logprobs = c->lp, .top_ids = c->top_id,
            .top_logprobs = c->top_lp, .ended = c->ended, .finish = c->finish, .stop_at = c->stop_at,
            .hold = c->hold};
    }
}

int roe_sreq_wait(roe_sreq *r, int have, double timeout_s, struct roe_sreq_view *v) {
    pthread_mutex_lock(&r->mu);
    if (r->total_tokens <= have && r->end == ROE_SREQ_RUNNING && timeout_s > 0) {
        const struct timespec ts = roe_deadline(timeout_s);
        while (r->total_tokens <= have && r->end == ROE_SREQ_RUNNING)
            if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) break;
    }
    const int news = r->total_tokens > have || r->end != ROE_SREQ_RUNNING;
    view_of(r, v);
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
        if (r->ch[0].finish == ROE_FINISH_EOS)
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
    while (s->batch && roe_batch_count(s->batch) > 0) {
        roe_sreq *r = ((struct choice *)roe_batch_at(s->batch, 0)->user)->r;
        for (int i = 0; i < r->n; i++) roe_batch_remove(s->batch, &r->ch[i].seq);
        sreq_end(s, r, ROE_SREQ_FAILED, &running, 1);
    }
    roe_batch_free(s->batch);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    roe_free(s);
}

/* The engine's block pool into st (kv_cache.h), what admission holds, and the preemptions. */
static void pool_stats(const roe_sched *s, struct roe_sched_stats *st) {
    const struct roe_kv_cache *kv = roe_engine_kv(s->e);
    if (s->batch) st->preemptions = (uint64_t)roe_batch_preemptions(s->batch);
    st->pool_blocks = kv->n_blocks;
    st->pool_free = kv->n_free;
    st->pool_cached = kv->n_lru;
    st->pool_held = kv->n_blocks - kv->n_free - kv->n_lru;
    /* every rank's (rank 0 keeps mirrors of the others' pools: cluster.h) */
    st->prefix_hit_tokens = (uint64_t)(s->batch ? roe_batch_prefix_hit_tokens(s->batch, -1) : kv->hit_tokens);
    st->prefix_query_tokens = (uint64_t)(s->batch ? roe_batch_prefix_query_tokens(s->batch, -1) : kv->query_tokens);
    st->prefix_evictions = (uint64_t)kv->evictions;
    /* a cap: the worst cases reserved; else the pool's blocks held by sequences */
    st->kv_blocks_used = s->cap ? s->blocks_used : st->pool_held;
}

roe_status roe_sched_create(roe_engine *engine, const struct roe_sched_opts *opts,
                            roe_sched **out) {
    *out = NULL;
    const struct roe_engine_opts *eo = roe_engine_get_opts(engine);
    if (opts->max_queue < 0 || opts->block_size < 0 || opts->kv_blocks < 0 ||
        !(opts->heartbeat_s >= 0.0))
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "scheduler: max_queue %d, block_size %d, kv_blocks %d, heartbeat %g s: "
                        "need >= 0, >= 0, "
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
    const struct roe_kv_cache *kv = roe_engine_kv(engine);
    s->cap = s->o.kv_blocks > 0;
    if (s->o.block_size == 0 || !s->cap) s->o.block_size = kv->block_size; /* the engine's pool */
    if (!s->cap) s->o.kv_blocks = kv->n_blocks;
    if (s->o.block_size == kv->block_size && s->o.kv_blocks > kv->n_blocks) {
        st = roe_fail(ROE_ERR_INVALID_ARG, "scheduler: --kv-blocks %d exceeds the pool's %d blocks (--kv-memory)",
                      s->o.kv_blocks, kv->n_blocks);
        goto fail;
    }
    if (s->o.heartbeat_s == 0.0) s->o.heartbeat_s = roe_comm_timeout(roe_engine_comm(engine)) / 4.0;
    bo.hooks = (struct roe_batch_hooks){.ctx = s, .on_step = on_step, .on_token = on_token,
                                        .on_prompt = on_prompt, .on_fail = on_fail};
    bo.tok = opts->tok;
    bo.prefill_first = opts->prefill_first;
    bo.depth_batching = 1;  /* a MoR model in one process: decode by depth-wise batching (runtime/mor.h) */
    ROE_CHECK(roe_batch_create(engine, &bo, &s->batch));
    s->N = roe_batch_ranks(s->batch);
    s->st.max_seqs = s->S;
    s->st.max_queue = s->o.max_queue;
    s->st.kv_blocks_total = s->o.kv_blocks;
    s->st.block_size = s->o.block_size;
    pool_stats(s, &s->st);
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

/* n, log-probabilities, stop strings. */
static roe_status check_options(const roe_sched *s, const struct roe_sreq_params *p, roe_sreq_field *bad) {
    *bad = ROE_SREQ_FIELD_N;
    const int limit = s->S < ROE_SCHED_MAX_CHOICES ? s->S : ROE_SCHED_MAX_CHOICES;
    if (p->n < 0 || p->n > limit)
        return roe_fail(ROE_ERR_INVALID_ARG, "n = %d choices: this server runs 1 to %d per request (%d slots)", p->n,
                        limit, s->S);
    *bad = ROE_SREQ_FIELD_LOGPROBS;
    if (p->top_logprobs < 0 || p->top_logprobs > ROE_SCHED_MAX_TOP_LOGPROBS)
        return roe_fail(ROE_ERR_INVALID_ARG, "%d top log-probabilities: 0 to %d", p->top_logprobs,
                        ROE_SCHED_MAX_TOP_LOGPROBS);
    *bad = ROE_SREQ_FIELD_STOP_TEXT;
    if (p->stop_text && p->stop_text->n > 0 && !s->o.tok)
        return roe_fail(ROE_ERR_INVALID_ARG, "stop strings need the model's tokenizer, and this server has none");
    return ROE_OK;
}

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
    ROE_TRY(check_options(s, p, bad));
    const int n = p->n > 0 ? p->n : 1;
    *bad = n > 1 ? ROE_SREQ_FIELD_N : ROE_SREQ_FIELD_MAX_TOKENS;
    /* the pool: each choice alone must fit it (preemption does the rest); a cap (kv_blocks):
     * the request's worst case, all its choices */
    const long need = (s->cap ? n : 1) * (((long)p->n_prompt + p->max_tokens + s->o.block_size - 1) / s->o.block_size);
    if (need > s->o.kv_blocks)
        return roe_fail(
            ROE_ERR_INVALID_ARG,
            "%d choice(s) of %d prompt tokens + max_tokens %d need %ld KV blocks of %d positions, but "
            "the cache has %d in all",
            n, p->n_prompt, p->max_tokens, need, s->o.block_size, s->o.kv_blocks);
    *bad = ROE_SREQ_FIELD_NONE;
    return ROE_OK;
}

/* A new request of p's shape with its arrays (NULL: out of memory). */
static roe_sreq *sreq_alloc(const struct roe_sreq_params *p) {
    roe_sreq *r = roe_calloc(1, sizeof *r);
    if (!r) return NULL;
    r->n = p->n > 0 ? p->n : 1;
    r->logprobs = p->logprobs || p->top_logprobs > 0 || p->prompt_logprobs;
    r->top = p->top_logprobs;
    const size_t P = (size_t)p->n_prompt, T = (size_t)p->max_tokens, top = (size_t)r->top;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->ch = roe_calloc((size_t)r->n, sizeof *r->ch);
    const struct roe_array pa[] = PROMPT_ARRAYS(r, P, top, p->prompt_logprobs);
    roe_status st = r->ch ? roe_arrays_alloc(pa, ROE_N_OF(pa), "request") : ROE_ERR_NOMEM;
    for (int i = 0; st == ROE_OK && i < r->n; i++) {
        const struct roe_array ca[] = CHOICE_ARRAYS(&r->ch[i], T, top, r->logprobs);
        st = roe_arrays_alloc(ca, ROE_N_OF(ca), "request");
    }
    if (st != ROE_OK) {
        sreq_free(r);
        return NULL;
    }
    return r;
}

/* Fills a new request from p: its copies, and each choice's sequence (choice i: seed + i, a
 * fork of choice 0; choice 0 scores the prompt when asked). */
static void sreq_fill(roe_sreq *r, roe_sched *s, const struct roe_sreq_params *p) {
    atomic_init(&r->refs, 2);
    atomic_init(&r->cancelled, 0);
    r->s = s;
    r->n_prompt = p->n_prompt;
    memcpy(r->prompt, p->prompt, (size_t)p->n_prompt * sizeof *r->prompt);
    memcpy(r->stop_ids, p->stop_ids, sizeof r->stop_ids);
    if (p->roster) r->roster = *p->roster;
    if (p->stop_text) r->stop_text = *p->stop_text;
    for (int i = 0; i < r->n; i++) {
        struct choice *c = &r->ch[i];
        c->r = r;
        c->stop_at = -1;
        c->seq = (struct roe_batch_seq){.prompt = r->prompt, .n_prompt = p->n_prompt, .max_tokens = p->max_tokens,
                                        .stop_at_eos = p->stop_at_eos, .stop_ids = r->stop_ids, .n_stop = p->n_stop,
                                        .sampling = p->sampling, .roster = p->roster ? &r->roster : NULL,
                                        .score_prompt = i == 0 && p->prompt_logprobs,
                                        .fork_of = i ? &r->ch[0].seq : NULL,
                                        .stop_text = p->stop_text && p->stop_text->n ? &r->stop_text : NULL,
                                        .user = c, .slot = -1};
        c->seq.sampling.seed += (uint64_t)i;
    }
    r->blocks = r->n * ((p->n_prompt + p->max_tokens + s->o.block_size - 1) / s->o.block_size);
    r->t_arrival = roe_now_s();
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
    roe_sreq *r = sreq_alloc(p);
    if (!r)
        return roe_fail(ROE_ERR_NOMEM, "out of memory for a request of %d + %d tokens (%d choices)", p->n_prompt,
                        p->max_tokens, p->n > 0 ? p->n : 1);
    sreq_fill(r, s, p);
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

int roe_sched_failed(roe_sched *s) {
    return atomic_load(&s->dead);
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
    while (s->qhead && roe_batch_free_slots(s->batch) >= s->qhead->n &&
           (!s->cap || s->blocks_used + s->qhead->blocks <= s->o.kv_blocks) &&
           roe_batch_fits(s->batch, &s->qhead->ch[0].seq, s->qhead->n, -1)) {
        roe_sreq *r = s->qhead;
        for (int i = 0; i < r->n; i++) ROE_TRY(roe_batch_admit(s->batch, &r->ch[i].seq, -1));
        r->n_running = r->n;
        s->qhead = r->next;
        if (!s->qhead) s->qtail = NULL;
        r->next = NULL;
        s->n_waiting--;
        if (s->cap) s->blocks_used += r->blocks;
        roe_histogram_observe(&s->st.queue_time, roe_now_s() - r->t_arrival);
    }
    s->st.waiting = s->n_waiting;
    s->st.running = roe_batch_count(s->batch);
    pool_stats(s, &s->st);
    return ROE_OK;
}

/* Ends r, which has left the batch: its blocks come back (f: as sreq_end). */
static void retire(roe_sched *s, roe_sreq *r, roe_sreq_end end, const struct failure *f) {
    pthread_mutex_lock(&s->mu);
    if (s->cap) s->blocks_used -= r->blocks;
    pool_stats(s, &s->st);
    s->st.running = roe_batch_count(s->batch);
    sreq_end(s, r, end, f, 1);
    pthread_mutex_unlock(&s->mu);
}

/* Takes every choice of the running request r out of the batch and ends it. */
static void drop(roe_sched *s, roe_sreq *r, roe_sreq_end end, const struct failure *f) {
    for (int i = 0; i < r->n; i++) roe_batch_remove(s->batch, &r->ch[i].seq);
    r->n_running = 0;
    retire(s, r, end, f);
}

static roe_sreq *request_at(roe_sched *s, int i) {
    return ((struct choice *)roe_batch_at(s->batch, i)->user)->r;
}

static void fail_running(roe_sched *s, roe_status code, const char *why) {
    const struct failure f = {code, why};
    while (roe_batch_count(s->batch) > 0)
        drop(s, request_at(s, roe_batch_count(s->batch) - 1), ROE_SREQ_FAILED, &f);
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
    pool_stats(s, &s->st);
    pthread_mutex_unlock(&s->mu);
}

/* The log-probabilities of a token (and its alternatives) from the scores it was picked from. */
static void log_probs(const roe_sreq *r, const float *z, int32_t token, float *lp, int32_t *top_id, float *top_lp) {
    const int V = roe_engine_model(r->s->e)->cfg.vocab_size;
    *lp = (float)roe_log_probs_top(z, V, token, r->top, top_id, top_lp);
}

/* A token for a running choice: appended under its request's lock for its waiters; when the
 * last choice ends, the request (out of the batch already) is retired. */
static void on_token(void *ctx, struct roe_batch_seq *seq, int32_t token, const float *z, int ended,
                     roe_finish finish) {
    roe_sched *s = ctx;
    struct choice *c = seq->user;
    roe_sreq *r = c->r;
    const double now = roe_now_s();
    pthread_mutex_lock(&r->mu);
    const int i = c->n_tokens;
    if (r->logprobs) log_probs(r, z, token, &c->lp[i], c->top_id + (size_t)i * r->top, c->top_lp + (size_t)i * r->top);
    const double prev = r->total_tokens ? r->t_last : -1.0;
    c->tokens[c->n_tokens++] = token;
    r->total_tokens++;
    if (r->total_tokens == 1) r->t_first = now;
    r->t_last = now;
    c->finish = ended ? finish : ROE_FINISH_LENGTH;
    c->ended = ended;
    c->stop_at = seq->stop_at;
    c->hold = seq->stop_text ? roe_stop_hold(seq->stop_text, &seq->stop) : 0;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&s->mu);
    s->st.generation_tokens++;
    if (prev < 0.0)
        roe_histogram_observe(&s->st.ttft, now - r->t_arrival);
    else
        roe_histogram_observe(&s->st.itl, now - prev);
    pthread_mutex_unlock(&s->mu);
    if (ended && --r->n_running == 0) retire(s, r, ROE_SREQ_FINISHED, NULL);
}

/* A scored prompt position (prompt_logprobs): the score of prompt token pos + 1. */
static void on_prompt(void *ctx, struct roe_batch_seq *seq, int pos, const float *z) {
    (void)ctx;
    roe_sreq *r = ((struct choice *)seq->user)->r;
    const int p = pos + 1;
    pthread_mutex_lock(&r->mu);
    log_probs(r, z, r->prompt[p], &r->plp[p], r->ptop_id + (size_t)p * r->top, r->ptop_lp + (size_t)p * r->top);
    r->prompt_scored = p + 1;
    pthread_mutex_unlock(&r->mu);
}

/* A choice failed (non-finite scores): the whole request fails, with the core's reason. */
static void on_fail(void *ctx, struct roe_batch_seq *seq, roe_status code, const char *why) {
    roe_sched *s = ctx;
    roe_sreq *r = ((struct choice *)seq->user)->r;
    ROE_LOG_ERROR("sched", "a request failed: %s", why);
    const struct failure f = {code, why};
    drop(s, r, ROE_SREQ_FAILED, &f);
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
            if (i >= roe_batch_count(s->batch)) continue; /* a request's other choices went */
            roe_sreq *r = request_at(s, i);
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
