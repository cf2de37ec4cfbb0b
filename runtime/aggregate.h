/*
 * aggregate.h — RoE's output rule (ROE.md "Aggregation"): the K samples of a token meet
 * only at the output, as p = mean_s softmax(logits_s) over the vocabulary. Greedy,
 * sampling and scoring all use log p. With K = 1 the scores are the logits themselves,
 * so the plain model is reproduced bit for bit.
 */
#ifndef ROE_AGGREGATE_H
#define ROE_AGGREGATE_H

#include <stdint.h>

/* z[vocab] = log(mean_s softmax(logits[s])), or a copy of logits[0] when K = 1 or all K rows
 * are bitwise identical (the same distribution, exactly the plain model's scores).
 * scratch is [vocab]. Sample order is fixed (s = 0..K-1), so the result is deterministic. */
void roe_aggregate(const float *const *logits, int k, int vocab, float *z, float *scratch);

/* log softmax(z)[token] — for K = 1 scores; for aggregated z (already log p) it is z[token]
 * up to rounding, and is computed the same way so plain and RoE scoring share one path. */
double roe_log_prob(const float *z, int vocab, int token);

/* The log-probabilities a client asks for (logprobs, top_logprobs): log softmax(z) of token
 * (each equal to roe_log_prob's, bit for bit) and of the `top` most likely tokens, most likely
 * first (ties: the lower id), into ids[top] and lps[top]; top <= vocab. Returns token's. */
double roe_log_probs_top(const float *z, int vocab, int token, int top, int32_t *ids, float *lps);

/* out[v] = log softmax(z)[v], each as roe_log_prob computes it (out may be z): the one
 * convention of scores written out (roe generate --logits-out), whatever K is. */
void roe_log_softmax(const float *z, int vocab, float *out);

/* Entropy (nats) of softmax(z). */
double roe_entropy(const float *z, int vocab);

#endif
