/*
 * tune.h — a Tree-structured Parzen Estimator (Bergstra et al., NeurIPS 2011), the search
 * the RoE paper uses for per-layer temperatures, in its simplest form:
 *
 *   - the first n_init points: the centre of the box, then uniform random points;
 *   - afterwards: split the trials so far into the best quarter ("good") and the rest;
 *     model each as a product of per-dimension Gaussian kernels (plus a uniform prior);
 *     draw candidates around good points and propose the one maximising l(x) / g(x).
 *
 * Minimises. Pure and deterministic (Philox keyed on the seed); allocation-free after
 * create. The caller evaluates each proposal and reports it with roe_tpe_observe().
 */
#ifndef ROE_TUNE_H
#define ROE_TUNE_H

#include <stdint.h>

#include "base/status.h"

typedef struct roe_tpe roe_tpe;

roe_status roe_tpe_create(int dims, double lo, double hi, int max_trials, int n_init, uint64_t seed,
                          roe_tpe **out);
void roe_tpe_free(roe_tpe *t);

/* Writes the next point to x[dims]. */
void roe_tpe_propose(roe_tpe *t, double *x);
/* Records the objective value y (lower is better) of point x. */
void roe_tpe_observe(roe_tpe *t, const double *x, double y);
/* Best point so far (x[dims]) and its value; returns the number of trials. */
int roe_tpe_best(const roe_tpe *t, double *x, double *y);

#endif
