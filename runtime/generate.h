/*
 * generate.h — runs a set of requests to completion on one engine, all admitted at once into
 * the batching core (batch.h: prompt chunks, RoE token groups, adaptive K, sampling), until
 * each request has its tokens or meets its end.
 *
 * Several ranks (runtime/cluster.h): the generator runs on the coordinator (rank 0), which
 * owns the requests and the sampling; each request gets a home rank (ROE_HOME_POLICY:
 * round-robin, or least-loaded planned over the whole set by prompt + tokens x K) that holds
 * its KV cache, runs its rows and aggregates its RoE groups; only the aggregated scores come
 * back. Tokens and scores are the same bits as in one process.
 *
 * All buffers are allocated by roe_generator_create for the given limits; a generation
 * step allocates nothing (a test checks this with the counting allocator).
 */
#ifndef ROE_GENERATE_H
#define ROE_GENERATE_H

#include <stdint.h>

#include "batch.h"
#include "engine.h"
#include "sampler.h"
#include "base/status.h"

struct roe_request {
    const int32_t *prompt;  /* [n_prompt], borrowed */
    int n_prompt;
    int max_tokens;
    int stop_at_eos;        /* stop after the model's eos token */
    struct roe_sampling sampling; /* its seed also keys the RoE noise */
    const struct roe_roster *roster; /* RoE settings, borrowed; NULL: the plain model */
};

struct roe_result {
    int32_t *tokens;        /* [capacity max_tokens], owned by the generator */
    int n_tokens;
    roe_finish finish;
    float *logits;          /* [max_tokens, vocab] scores each token was picked from, if kept */
};

struct roe_gen_timing {
    double prefill_s;       /* until every request had its first token */
    double decode_s;        /* the rest */
    long prefill_tokens;
    long decode_tokens;     /* tokens produced by decode steps (excludes each first token) */
    long steps;
    long samples;           /* RoE sample rows run for generated tokens (clean rows included) */
    long tokens;            /* tokens generated */
    long rows_computed;     /* row-layers the engine computed (after dedup) */
    long rows_naive;        /* row-layers a roster computing every sample fully would run */
    long preemptions;       /* sequences preempted for KV blocks (batch.h), recomputed later */
    long prefix_hit_tokens; /* positions found in the KV caches (every rank's) instead of computed */
    long prefix_hit_tokens_other_ranks; /* of those, in the caches of ranks other than 0 */
};

typedef struct roe_generator roe_generator;

/* keep_logits: store the scores of every generated position in results[i].logits. */
roe_status roe_generator_create(roe_engine *engine, int max_requests, int max_tokens,
                                int keep_logits, roe_generator **out);
void roe_generator_free(roe_generator *g);

/* Validates every request (non-empty prompt, ids in the vocabulary, prompt fits the
 * context), then runs them all. results[i] stays valid until the next run or free. */
roe_status roe_generator_run(roe_generator *g, const struct roe_request *reqs, int n,
                             struct roe_result **results, struct roe_gen_timing *timing);

#endif
