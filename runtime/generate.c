/* generate.c — the batch generation loop with RoE groups; see generate.h. */
#include "generate.h"

#include <string.h>
#include <time.h>

#include "aggregate.h"
#include "base/alloc.h"
#include "cluster.h"
#include "base/env.h"

typedef enum group_kind {
    GROUP_FULL = 0,     /* clean row + K-1 samples: aggregate and emit */
    GROUP_CLEAN_ONLY,   /* adaptive phase A: the clean row decides whether samples follow */
    GROUP_SAMPLES,      /* adaptive phase B: the K-1 samples of a position already cleaned */
} group_kind;

struct group {
    int req;
    int first;          /* index of its first logits row in the step's output */
    int n;              /* rows */
    group_kind kind;
};

struct roe_generator {
    roe_engine *engine;
    roe_cluster *cl;             /* the steps across ranks (one rank: a pass-through) */
    roe_sampler *sampler;
    int max_requests;
    int max_tokens;
    int keep_logits;
    int vocab;
    struct roe_result *results;  /* [max_requests] */
    int32_t *tokens;             /* [max_requests, max_tokens] */
    float *kept;                 /* [max_requests, max_tokens, vocab] if keep_logits */
    struct roe_row *rows;        /* [max_rows] */
    struct group *groups;        /* [max_rows] */
    struct roe_group *cgroups;   /* [max_rows] the same groups, as the cluster reduces them */
    float *z;                    /* [max_rows, vocab] each group's aggregated scores */
    int *home;                   /* [max_requests] home rank of each request */
    double *cost;                /* [max_requests] its expected work, for ROE_HOME_POLICY */
    int *fed;                    /* [max_requests] prompt tokens fed */
    uint8_t *pending;            /* [max_requests] adaptive: samples owed for the last position */
    uint8_t *done;               /* [max_requests] */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void roe_generator_free(roe_generator *g) {
    if (!g) return;
    roe_sampler_free(g->sampler);
    roe_cluster_free(g->cl);
    roe_free(g->results);
    roe_free(g->tokens);
    roe_free_aligned(g->kept);
    roe_free(g->rows);
    roe_free(g->groups);
    roe_free(g->cgroups);
    roe_free_aligned(g->z);
    roe_free(g->home);
    roe_free(g->cost);
    roe_free(g->fed);
    roe_free(g->pending);
    roe_free(g->done);
    roe_free(g);
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
    ROE_CHECK(roe_sampler_create(g->vocab, &g->sampler));
    ROE_CHECK(roe_cluster_create(engine, &g->cl));
    const size_t R = (size_t)eo->max_rows, V = (size_t)g->vocab, T = (size_t)(max_tokens ? max_tokens : 1);
    const size_t NR = (size_t)max_requests;
    g->results = roe_calloc(NR, sizeof *g->results);
    g->tokens = roe_calloc(NR * T, sizeof *g->tokens);
    g->rows = roe_calloc(R, sizeof *g->rows);
    g->groups = roe_calloc(R, sizeof *g->groups);
    g->cgroups = roe_calloc(R, sizeof *g->cgroups);
    g->z = roe_malloc_aligned(R * V * sizeof(float));
    g->home = roe_calloc(NR, sizeof *g->home);
    g->cost = roe_calloc(NR, sizeof *g->cost);
    g->fed = roe_calloc(NR, sizeof *g->fed);
    g->pending = roe_calloc(NR, 1);
    g->done = roe_calloc(NR, 1);
    if (keep_logits) g->kept = roe_malloc_aligned(NR * T * V * sizeof(float));
    if (!g->results || !g->tokens || !g->rows || !g->groups || !g->cgroups || !g->z || !g->home ||
        !g->cost || !g->fed || !g->pending || !g->done || (keep_logits && !g->kept)) {
        st = roe_fail(ROE_ERR_NOMEM, "generator: out of memory for %d requests x %d tokens",
                      max_requests, max_tokens);
        goto fail;
    }
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
static int is_adaptive(const struct roe_request *r) {
    return r->roster && r->roster->k > 1 && r->roster->adaptive_entropy > 0.0f;
}

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

/* Appends a token picked from the scores z to request i; marks it done at its end. */
static void emit(roe_generator *g, const struct roe_request *r, int i, const float *z, int ctx) {
    struct roe_result *res = &g->results[i];
    const int pos = r->n_prompt + res->n_tokens;
    int32_t t = roe_sampler_pick(g->sampler, &r->sampling, z, pos);
    if (g->keep_logits)
        memcpy(res->logits + (size_t)res->n_tokens * g->vocab, z, (size_t)g->vocab * sizeof(float));
    res->tokens[res->n_tokens++] = t;
    const int eos = roe_engine_model(g->engine)->cfg.eos_token_id;
    if (r->stop_at_eos && eos >= 0 && t == eos) {
        res->finish = ROE_FINISH_EOS;
        g->done[i] = 1;
    } else if (res->n_tokens >= r->max_tokens || pos + 1 >= ctx) {
        res->finish = ROE_FINISH_LENGTH;
        g->done[i] = 1;
    }
}

/* Adds the rows of request i's next token group (position p, input token t) to the step. */
static void add_group(roe_generator *g, const struct roe_request *r, int i, int p, int32_t t,
                      group_kind kind, int *nr, int *ng, int *nl) {
    const int k = roster_k(r);
    const int s0 = kind == GROUP_SAMPLES ? 1 : 0, s1 = kind == GROUP_CLEAN_ONLY ? 1 : k;
    g->groups[*ng] = (struct group){.req = i, .first = *nl, .n = s1 - s0, .kind = kind};
    /* FULL: the K rows' mean; CLEAN_ONLY: the clean row, kept on the home rank in case its
     * samples follow; SAMPLES: the kept clean row with the K-1 samples */
    g->cgroups[*ng] = (struct roe_group){
        .first = *nr, .n = s1 - s0,
        .mode = ROE_GROUP_MEAN | (kind == GROUP_CLEAN_ONLY ? ROE_GROUP_STORE_CLEAN : 0) |
                (kind == GROUP_SAMPLES ? ROE_GROUP_WITH_CLEAN : 0)};
    (*ng)++;
    for (int s = s0; s < s1; s++) {
        g->rows[(*nr)++] = (struct roe_row){.seq = i, .pos = p, .token = t, .sample = s, .want_logits = 1,
                                            .seed = r->sampling.seed, .roster = r->roster};
        (*nl)++;
    }
}

roe_status roe_generator_run(roe_generator *g, const struct roe_request *reqs, int n,
                             struct roe_result **results, struct roe_gen_timing *timing) {
    ROE_TRY(validate(g, reqs, n));
    roe_home_policy policy;
    ROE_TRY(roe_home_policy_parse(roe_env_home_policy(), &policy));
    const int R = roe_engine_get_opts(g->engine)->max_rows;
    const int ctx = roe_engine_get_opts(g->engine)->max_ctx;
    const int n_layers = roe_engine_model(g->engine)->cfg.n_layers;
    const int V = g->vocab;
    memset(timing, 0, sizeof *timing);
    for (int i = 0; i < n; i++) g->cost[i] = (double)(reqs[i].n_prompt + reqs[i].max_tokens) * roster_k(&reqs[i]);
    roe_cluster_plan_homes(g->cl, policy, g->cost, n, g->home);
    for (int i = 0; i < n; i++) {
        ROE_TRY(roe_cluster_reset_seq(g->cl, i, g->home[i]));
        g->results[i].n_tokens = 0;
        g->results[i].finish = ROE_FINISH_LENGTH;
        g->fed[i] = 0;
        g->pending[i] = 0;
        g->done[i] = reqs[i].max_tokens == 0;
    }
    double t0 = now_s(), t_first = -1.0;
    for (;;) {
        /* fill a step: prompt chunks, then one token group per live sequence, first-come */
        int nr = 0, ng = 0, nl = 0, live = 0;
        for (int i = 0; i < n; i++) {
            if (g->done[i]) continue;
            live++;
            const struct roe_request *r = &reqs[i];
            const struct roe_result *res = &g->results[i];
            while (g->fed[i] < r->n_prompt - 1 && nr < R) { /* prompt positions before the last */
                const int p = g->fed[i]++;
                g->rows[nr++] = (struct roe_row){.seq = i, .pos = p, .token = r->prompt[p]};
                timing->prefill_tokens++;
                timing->rows_naive += n_layers;
            }
            if (g->fed[i] < r->n_prompt - 1) continue;
            const int k = roster_k(r);
            group_kind kind = g->pending[i] ? GROUP_SAMPLES : is_adaptive(r) ? GROUP_CLEAN_ONLY : GROUP_FULL;
            const int need = kind == GROUP_SAMPLES ? k - 1 : kind == GROUP_CLEAN_ONLY ? 1 : k;
            if (nr + need > R) continue; /* the group waits for the next step, whole */
            int p;
            int32_t t;
            if (g->fed[i] == r->n_prompt - 1 && !g->pending[i]) {
                p = r->n_prompt - 1;
                t = r->prompt[p];
                g->fed[i]++;
                timing->prefill_tokens++;
            } else {
                /* the group predicts token n_tokens from position n_prompt + n_tokens - 1;
                 * adaptive samples (pending) run at the position their clean row ran at in
                 * the step before, since the token they decide has not been emitted yet */
                p = r->n_prompt + res->n_tokens - 1;
                t = p < r->n_prompt ? r->prompt[p] : res->tokens[p - r->n_prompt];
            }
            if (kind != GROUP_SAMPLES) timing->rows_naive += (long)k * n_layers;
            add_group(g, r, i, p, t, kind, &nr, &ng, &nl);
        }
        if (live == 0) break;
        struct roe_step_stats ss;
        ROE_TRY(roe_cluster_step(g->cl, g->rows, nr, g->cgroups, ng, g->z, &ss));
        timing->steps++;
        timing->rows_computed += ss.rows_computed;
        for (int gi = 0; gi < ng; gi++) {
            const struct group *gr = &g->groups[gi];
            const int i = gr->req;
            const struct roe_request *r = &reqs[i];
            const float *z = g->z + (size_t)gi * V; /* every group's output is one vocab row */
            timing->samples += gr->n;
            if (gr->kind == GROUP_CLEAN_ONLY && roe_entropy(z, V) > (double)r->roster->adaptive_entropy) {
                g->pending[i] = 1; /* the samples run next step; the token waits for them */
                continue;
            }
            g->pending[i] = 0;
            if (g->results[i].n_tokens > 0) timing->decode_tokens++;
            timing->tokens++;
            emit(g, r, i, z, ctx);
        }
        if (t_first < 0.0) {
            int started = 1;
            for (int i = 0; i < n; i++)
                if (g->results[i].n_tokens == 0 && !g->done[i]) started = 0;
            if (started) t_first = now_s();
        }
    }
    double t1 = now_s();
    if (t_first < 0.0) t_first = t1;
    timing->prefill_s = t_first - t0;
    timing->decode_s = t1 - t_first;
    *results = g->results;
    return ROE_OK;
}
