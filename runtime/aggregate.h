/*
 * aggregate.h — RoE's output rule (ROE.md "Aggregation"): the K samples of a token meet
 * only at the output, as p = mean_s softmax(logits_s) over the vocabulary. Greedy,
 * sampling and scoring all use log p. With K = 1 the scores are the logits themselves,
 * so the plain model is reproduced bit for bit.
 */
#ifndef ROE_AGGREGATE_H
#define ROE_AGGREGATE_H

/* z[vocab] = log(mean_s softmax(logits[s])), or a copy of logits[0] when K = 1 or all K rows
 * are bitwise identical (the same distribution, exactly the plain model's scores).
 * scratch is [vocab]. Sample order is fixed (s = 0..K-1), so the result is deterministic. */
void roe_aggregate(const float *const *logits, int k, int vocab, float *z, float *scratch);

/* log softmax(z)[token] — for K = 1 scores; for aggregated z (already log p) it is z[token]
 * up to rounding, and is computed the same way so plain and RoE scoring share one path. */
double roe_log_prob(const float *z, int vocab, int token);

/* Entropy (nats) of softmax(z). */
double roe_entropy(const float *z, int vocab);

#endif
