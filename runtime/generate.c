/* generate.c — the batch generation loop; see generate.h. */
#include "generate.h"

#include <string.h>
#include <time.h>

#include "alloc.h"

struct roe_generator {
    roe_engine *engine;
    roe_sampler *sampler;
    int max_requests;
    int max_tokens;
    int keep_logits;
    int vocab;
    struct roe_result *results;  /* [max_requests] */
    int32_t *tokens;             /* [max_requests, max_tokens] */
    float *kept;                 /* [max_requests, max_tokens, vocab] if keep_logits */
    struct roe_row *rows;        /* [max_rows] */
    int *row_req;                /* [max_rows] request of each row wanting logits, -1 otherwise */
    float *logits;               /* [max_rows, vocab] */
    int *fed;                    /* [max_requests] prompt tokens already fed */
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
    roe_free(g->results);
    roe_free(g->tokens);
    roe_free_aligned(g->kept);
    roe_free(g->rows);
    roe_free(g->row_req);
    roe_free_aligned(g->logits);
    roe_free(g->fed);
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
    const size_t R = (size_t)eo->max_rows, V = (size_t)g->vocab, T = (size_t)(max_tokens ? max_tokens : 1);
    g->results = roe_calloc((size_t)max_requests, sizeof *g->results);
    g->tokens = roe_calloc((size_t)max_requests * T, sizeof *g->tokens);
    g->rows = roe_calloc(R, sizeof *g->rows);
    g->row_req = roe_calloc(R, sizeof *g->row_req);
    g->logits = roe_malloc_aligned(R * V * sizeof(float));
    g->fed = roe_calloc((size_t)max_requests, sizeof *g->fed);
    g->done = roe_calloc((size_t)max_requests, 1);
    if (keep_logits) g->kept = roe_malloc_aligned((size_t)max_requests * T * V * sizeof(float));
    if (!g->results || !g->tokens || !g->rows || !g->row_req || !g->logits || !g->fed || !g->done ||
        (keep_logits && !g->kept)) {
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

static roe_status validate(const roe_generator *g, const struct roe_request *reqs, int n) {
    const struct roe_model_config *c = &roe_engine_model(g->engine)->cfg;
    const int ctx = roe_engine_get_opts(g->engine)->max_ctx;
    if (n <= 0 || n > g->max_requests)
        return roe_fail(ROE_ERR_INVALID_ARG, "%d requests: the generator takes 1 to %d", n,
                        g->max_requests);
    for (int i = 0; i < n; i++) {
        const struct roe_request *r = &reqs[i];
        if (r->n_prompt <= 0)
            return roe_fail(ROE_ERR_INVALID_ARG, "request %d: the prompt is empty", i);
        if (r->n_prompt >= ctx)
            return roe_fail(ROE_ERR_INVALID_ARG,
                            "request %d: the prompt has %d tokens, but the context holds %d "
                            "(max_position_embeddings %d) and one is needed to generate",
                            i, r->n_prompt, ctx, c->max_position);
        if (r->max_tokens < 0 || r->max_tokens > g->max_tokens)
            return roe_fail(ROE_ERR_INVALID_ARG, "request %d: max_tokens %d is outside [0, %d]", i,
                            r->max_tokens, g->max_tokens);
        for (int j = 0; j < r->n_prompt; j++)
            if (r->prompt[j] < 0 || r->prompt[j] >= c->vocab_size)
                return roe_fail(ROE_ERR_INVALID_ARG,
                                "request %d: prompt token %d is id %d, outside the vocabulary [0, %d)",
                                i, j, r->prompt[j], c->vocab_size);
        ROE_TRY(roe_sampling_validate(&r->sampling));
    }
    return ROE_OK;
}

/* Appends a token picked from `z` to request i; marks it done at its end. */
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

roe_status roe_generator_run(roe_generator *g, const struct roe_request *reqs, int n,
                             struct roe_result **results, struct roe_gen_timing *timing) {
    ROE_TRY(validate(g, reqs, n));
    const int R = roe_engine_get_opts(g->engine)->max_rows;
    const int ctx = roe_engine_get_opts(g->engine)->max_ctx;
    memset(timing, 0, sizeof *timing);
    for (int i = 0; i < n; i++) {
        roe_engine_reset_seq(g->engine, i);
        g->results[i].n_tokens = 0;
        g->results[i].finish = ROE_FINISH_LENGTH;
        g->fed[i] = 0;
        g->done[i] = reqs[i].max_tokens == 0;
    }
    double t0 = now_s(), t_first = -1.0;
    for (;;) {
        /* fill a step: prompt chunks first-come, then one decode row per live sequence */
        int nr = 0, live = 0;
        for (int i = 0; i < n && nr < R; i++) {
            if (g->done[i]) continue;
            live++;
            const struct roe_request *r = &reqs[i];
            if (g->fed[i] < r->n_prompt) {
                while (g->fed[i] < r->n_prompt && nr < R) {
                    const int p = g->fed[i]++;
                    const int last = p == r->n_prompt - 1;
                    g->rows[nr] = (struct roe_row){.seq = i, .pos = p, .token = r->prompt[p],
                                                   .sample = 0, .want_logits = last};
                    g->row_req[nr++] = last ? i : -1;
                }
            } else {
                const struct roe_result *res = &g->results[i];
                const int p = r->n_prompt + res->n_tokens - 1;
                g->rows[nr] = (struct roe_row){.seq = i, .pos = p, .token = res->tokens[res->n_tokens - 1],
                                               .sample = 0, .want_logits = 1};
                g->row_req[nr++] = i;
            }
        }
        if (live == 0) break;
        ROE_TRY(roe_engine_step(g->engine, g->rows, nr, g->logits));
        timing->steps++;
        int nl = 0;
        for (int j = 0; j < nr; j++) {
            if (!g->rows[j].want_logits) {
                timing->prefill_tokens++;
                continue;
            }
            const int i = g->row_req[j];
            if (g->results[i].n_tokens == 0) timing->prefill_tokens++;
            else timing->decode_tokens++;
            emit(g, &reqs[i], i, g->logits + (size_t)nl++ * g->vocab, ctx);
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
