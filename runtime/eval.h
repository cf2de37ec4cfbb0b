/*
 * eval.h — scoring with the clean cache, and the three evaluation tasks of `roe eval`.
 *
 * Scoring (ROE.md "Scoring a given text"): for every scored position p the K samples run
 * on the clean history [0, p) plus their own current K/V, and log p(next token) is read
 * from the aggregate; positions are batched into steps (clean rows first, then each
 * position's group of K rows), so a long text costs a handful of steps.
 *
 * Tasks (the JSONL formats of models/olmoe-tiny/README.md; each input is prefixed with the
 * document separator <|endoftext|> when the tokenizer has one, as tools/eval_bundled.py does):
 *   text    {"text": ...}                              NLL per token, perplexity
 *   arith   {"prompt": ..., "answer": ...}             greedy exact match (cut at "\n")
 *   choice  {"context": ..., "choices": [...], "label": i}  argmax of summed log-likelihood
 */
#ifndef ROE_EVAL_H
#define ROE_EVAL_H

#include <stdint.h>

#include "engine.h"
#include "roster.h"
#include "base/status.h"
#include "tokenizer.h"

typedef struct roe_scorer roe_scorer;

struct roe_score_stats {
    long positions;     /* scored positions */
    long samples;       /* rows run for scored positions (clean included) */
    long rows_computed; /* row-layers the engine computed */
    long rows_naive;    /* row-layers without dedup or adaptivity */
    double sample_logprob; /* sum over scored positions of the mean log p of the individual samples'
                            * own predictions (clean included): with sum_logprob, the averaging gain */
};

roe_status roe_scorer_create(roe_engine *engine, roe_scorer **out);
void roe_scorer_free(roe_scorer *s);

/* Sum of log p(ids[i] | ids[0..i)) over i in [first, n), with RoE per `roster` (NULL:
 * plain) keyed on `seed`. first >= 1. Uses sequence slot 0 of the engine. */
roe_status roe_score(roe_scorer *s, const int32_t *ids, int n, int first, const struct roe_roster *roster,
                     uint64_t seed, double *sum_logprob, struct roe_score_stats *stats);

typedef enum roe_task { ROE_TASK_TEXT = 0, ROE_TASK_ARITH, ROE_TASK_CHOICE } roe_task;

struct roe_eval_opts {
    const struct roe_roster *roster; /* NULL: plain */
    uint64_t seed;
    int limit;          /* items (0: all) */
    int arith_max_new;  /* tokens generated per arithmetic question (12) */
    int progress;       /* draw a progress bar on stderr */
};

struct roe_eval_result {
    roe_task task;
    int items;
    long tokens;               /* text: scored tokens */
    double nll_per_token;      /* text */
    double nll_ci[2];          /* text: 95% bootstrap over passages */
    double sample_nll_per_token; /* text: mean loss of the individual samples (= nll at K = 1) */
    double gain_ci[2];         /* text: 95% bootstrap of sample_nll_per_token - nll_per_token */
    /* text items that give "optimum_nll" (the exact best loss of their text in nats, synthetic
     * data: tools/data/synth_langs.py) and fit the context: how many, the optimum and the model's
     * loss over them, per scored token */
    int optimum_items;
    double optimum_nll_per_token, optimum_model_nll_per_token;
    double perplexity, ppl_ci[2];
    double accuracy, acc_ci[2];           /* arith: exact match; choice: accuracy */
    double accuracy_norm, acc_norm_ci[2]; /* choice: length-normalised (per UTF-8 byte) */
    double seconds;
    struct roe_score_stats stats;
    double samples_per_position;
};

/* Detects the task from the first line's keys. */
roe_status roe_eval_detect(const char *path, roe_task *task);
const char *roe_task_name(roe_task t);

/* Runs one task over a JSONL file. The engine needs >= 16 sequence slots for arith. */
roe_status roe_eval_run(roe_engine *engine, const roe_tokenizer *tok, const char *path, roe_task task,
                        const struct roe_eval_opts *opts, struct roe_eval_result *out);

/* 95% Wilson interval of k successes in n. */
void roe_wilson(long k, long n, double ci[2]);

#endif
