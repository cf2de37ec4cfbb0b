/* generate.c — a set of requests run to completion through the batching core; see generate.h. */
#include "generate.h"

#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/env.h"

struct roe_generator {
    roe_engine *engine;
    roe_batch *batch;
    int max_requests;
    int max_tokens;
    int keep_logits;
    int vocab;
    struct roe_result *results;  /* [max_requests] */
    struct roe_batch_seq *seqs;  /* [max_requests] */
    int32_t *tokens;             /* [max_requests, max_tokens] */
    float *kept;                 /* [max_requests, max_tokens, vocab] if keep_logits */
    int *home;                   /* [max_requests] home rank of each request */
    double *cost;                /* [max_requests] its expected work, for ROE_HOME_POLICY */
    double *load;                /* [ranks] planning scratch */
    /* the run in progress */
    struct roe_gen_timing *timing;
    int waiting_first;           /* requests still without their first token */
    double t_first;
};

/* The generator's arrays: NR = max_requests, T = max_tokens (at least 1), V = vocabulary. */
#define GEN_ARRAYS(g, NR, T, V)                                                                    \
    {ROE_ARRAY((g)->results, NR), ROE_ARRAY((g)->seqs, NR), ROE_ARRAY((g)->tokens, (NR) * (T)),    \
     ROE_ARRAY((g)->home, NR),    ROE_ARRAY((g)->cost, NR), ROE_ARRAY((g)->load, roe_batch_ranks((g)->batch)), \
     ROE_ARRAY((g)->kept, (g)->keep_logits ? (NR) * (T) * (V) : 1)}

void roe_generator_free(roe_generator *g) {
    if (!g) return;
    if (g->batch) {
        const struct roe_array arrays[] = GEN_ARRAYS(g, 0, 0, 0);
        roe_arrays_free(arrays, ROE_N_OF(arrays));
    }
    roe_batch_free(g->batch);
    roe_free(g);
}

static void on_step(void *ctx, const struct roe_batch_step_info *info) {
    struct roe_gen_timing *t = ((roe_generator *)ctx)->timing;
    t->steps++;
    t->prefill_tokens += info->prompt_tokens;
    t->samples += info->samples;
    t->rows_computed += info->stats.rows_computed;
    t->rows_naive += info->rows_naive;
}

static void on_token(void *ctx, struct roe_batch_seq *s, int32_t token, const float *z, int ended,
                     roe_finish finish) {
    roe_generator *g = ctx;
    struct roe_result *res = &g->results[s - g->seqs];
    if (g->keep_logits)
        memcpy(res->logits + (size_t)res->n_tokens * g->vocab, z, (size_t)g->vocab * sizeof(float));
    res->tokens[res->n_tokens++] = token;
    if (ended) res->finish = finish;
    g->timing->tokens++;
    if (res->n_tokens > 1) g->timing->decode_tokens++;
    else if (--g->waiting_first == 0) g->t_first = roe_now_s();
}

roe_status roe_generator_create(roe_engine *engine, int max_requests, int max_tokens,
                                int keep_logits, roe_generator **out) {
    *out = NULL;
    const struct roe_engine_opts *eo = roe_engine_get_opts(engine);
    if (max_requests <= 0 || max_requests > eo->max_seqs)
        return roe_fail(ROE_ERR_INVALID_ARG, "generator: %d requests, but the engine has %d sequence slots",
                        max_requests, eo->max_seqs);
    if (max_tokens < 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "generator: max_tokens %d must be >= 0", max_tokens);
    roe_generator *g = roe_calloc(1, sizeof *g);
    if (!g) return roe_fail(ROE_ERR_NOMEM, "generator: out of memory");
    roe_status st;
    g->engine = engine;
    g->max_requests = max_requests;
    g->max_tokens = max_tokens;
    g->keep_logits = keep_logits;
    g->vocab = roe_engine_model(engine)->cfg.vocab_size;
    struct roe_batch_opts bo = roe_batch_opts_default(); /* homes: planned by each run */
    bo.hooks = (struct roe_batch_hooks){.ctx = g, .on_step = on_step, .on_token = on_token};
    bo.depth_batching = max_requests > 1; /* MoR: several prompts decode by continuous depth-wise batching */
    ROE_CHECK(roe_batch_create(engine, &bo, &g->batch));
    const size_t V = (size_t)g->vocab, T = (size_t)(max_tokens ? max_tokens : 1), NR = (size_t)max_requests;
    const struct roe_array arrays[] = GEN_ARRAYS(g, NR, T, V);
    ROE_CHECK(roe_arrays_alloc(arrays, ROE_N_OF(arrays), "generator"));
    for (int i = 0; i < max_requests; i++) {
        g->results[i].tokens = g->tokens + (size_t)i * T;
        g->results[i].logits = keep_logits ? g->kept + (size_t)i * T * V : NULL;
    }
    *out = g;
    return ROE_OK;
fail:
    roe_generator_free(g);
    return st;
}

static int roster_k(const struct roe_request *r) { return r->roster ? r->roster->k : 1; }

static roe_status validate(const roe_generator *g, const struct roe_request *reqs, int n) {
    const struct roe_model_config *c = &roe_engine_model(g->engine)->cfg;
    const struct roe_engine_opts *eo = roe_engine_get_opts(g->engine);
    if (n <= 0 || n > g->max_requests)
        return roe_fail(ROE_ERR_INVALID_ARG, "%d requests: the generator takes 1 to %d", n,
                        g->max_requests);
    for (int i = 0; i < n; i++) {
        const struct roe_request *r = &reqs[i];
        if (r->n_prompt <= 0)
            return roe_fail(ROE_ERR_INVALID_ARG, "request %d: the prompt is empty", i);
        if (r->n_prompt >= eo->max_ctx)
            return roe_fail(ROE_ERR_INVALID_ARG,
                            "request %d: the prompt has %d tokens, but the context holds %d "
                            "(max_position_embeddings %d) and one is needed to generate",
                            i, r->n_prompt, eo->max_ctx, c->max_position);
        if (r->max_tokens < 0 || r->max_tokens > g->max_tokens)
            return roe_fail(ROE_ERR_INVALID_ARG, "request %d: max_tokens %d is outside [0, %d]", i,
                            r->max_tokens, g->max_tokens);
        for (int j = 0; j < r->n_prompt; j++)
            if (r->prompt[j] < 0 || r->prompt[j] >= c->vocab_size)
                return roe_fail(ROE_ERR_INVALID_ARG,
                                "request %d: prompt token %d is id %d, outside the vocabulary [0, %d)",
                                i, j, r->prompt[j], c->vocab_size);
        ROE_TRY(roe_sampling_validate(&r->sampling));
        if (r->roster) {
            ROE_TRY(roe_roster_validate(r->roster, c));
            if (r->roster->k > eo->max_rows)
                return roe_fail(ROE_ERR_INVALID_ARG,
                                "request %d: RoE K = %d needs %d rows per step, the engine has %d", i,
                                r->roster->k, r->roster->k, eo->max_rows);
        }
    }
    return ROE_OK;
}

/* Admits every request with tokens to make, homed by the policy over the whole set. */
static roe_status admit_all(roe_generator *g, const struct roe_request *reqs, int n) {
    roe_home_policy policy;
    ROE_TRY(roe_home_policy_parse(roe_env_home_policy(), &policy));
    for (int i = 0; i < n; i++) g->cost[i] = (double)(reqs[i].n_prompt + reqs[i].max_tokens) * roster_k(&reqs[i]);
    roe_plan_homes(policy, roe_batch_ranks(g->batch), g->cost, n, g->home, g->load);
    g->waiting_first = 0;
    for (int i = 0; i < n; i++) {
        const struct roe_request *r = &reqs[i];
        g->results[i].n_tokens = 0;
        g->results[i].finish = ROE_FINISH_LENGTH;
        if (r->max_tokens == 0) continue;
        g->seqs[i] = (struct roe_batch_seq){.prompt = r->prompt, .n_prompt = r->n_prompt,
                                            .max_tokens = r->max_tokens, .stop_at_eos = r->stop_at_eos,
                                            .sampling = r->sampling, .roster = r->roster};
        ROE_TRY(roe_batch_admit(g->batch, &g->seqs[i], g->home[i]));
        g->waiting_first++;
    }
    return ROE_OK;
}

roe_status roe_generator_run(roe_generator *g, const struct roe_request *reqs, int n,
                             struct roe_result **results, struct roe_gen_timing *timing) {
    ROE_TRY(validate(g, reqs, n));
    memset(timing, 0, sizeof *timing);
    g->timing = timing;
    g->t_first = -1.0;
    const double t0 = roe_now_s();
    const long preempted = roe_batch_preemptions(g->batch), hits = roe_batch_prefix_hit_tokens(g->batch, -1),
               hits0 = roe_batch_prefix_hit_tokens(g->batch, 0);
    roe_status st = admit_all(g, reqs, n);
    while (st == ROE_OK && roe_batch_count(g->batch) > 0) st = roe_batch_step(g->batch, NULL);
    timing->preemptions = roe_batch_preemptions(g->batch) - preempted;
    timing->prefix_hit_tokens = roe_batch_prefix_hit_tokens(g->batch, -1) - hits;
    timing->prefix_hit_tokens_other_ranks =
        timing->prefix_hit_tokens - (roe_batch_prefix_hit_tokens(g->batch, 0) - hits0);
    while (roe_batch_count(g->batch) > 0) /* after a failure: the next run starts empty */
        roe_batch_remove(g->batch, roe_batch_at(g->batch, 0));
    ROE_TRY(st);
    const double t1 = roe_now_s();
    if (g->t_first < 0.0) g->t_first = t1;
    timing->prefill_s = g->t_first - t0;
    timing->decode_s = t1 - g->t_first;
    *results = g->results;
    return ROE_OK;
}
