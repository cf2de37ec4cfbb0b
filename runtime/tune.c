/* tune.c — TPE for the per-layer RoE temperatures; see tune.h. */
#include "tune.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/philox.h"

enum { TPE_CANDIDATES = 48 };

struct roe_tpe {
    int dims, max_trials, n_init, n;
    double lo, hi;
    uint64_t seed;
    uint32_t draws;   /* Philox counter */
    double *xs;       /* [max_trials, dims] */
    double *ys;       /* [max_trials] */
    int *order;       /* [max_trials] trial indices sorted by y */
    double *cand;     /* [dims] */
};

/* The arrays of a search of T trials in D dimensions. */
#define TPE_ARRAYS(t, T, D)                                                                        \
    {ROE_ARRAY((t)->xs, (T) * (D)), ROE_ARRAY((t)->ys, T), ROE_ARRAY((t)->order, T), ROE_ARRAY((t)->cand, D)}

roe_status roe_tpe_create(int dims, double lo, double hi, int max_trials, int n_init, uint64_t seed,
                          roe_tpe **out) {
    *out = NULL;
    if (dims < 1 || !(hi > lo) || max_trials < 1 || n_init < 1)
        return roe_fail(ROE_ERR_INVALID_ARG, "tpe: %d dims in [%g, %g], %d trials, %d initial", dims, lo,
                        hi, max_trials, n_init);
    roe_tpe *t = roe_calloc(1, sizeof *t);
    if (!t) return roe_fail(ROE_ERR_NOMEM, "tpe: out of memory");
    t->dims = dims;
    t->lo = lo;
    t->hi = hi;
    t->max_trials = max_trials;
    t->n_init = n_init;
    t->seed = seed;
    const struct roe_array arrays[] = TPE_ARRAYS(t, (size_t)max_trials, (size_t)dims);
    roe_status st = roe_arrays_alloc(arrays, ROE_N_OF(arrays), "tpe");
    if (st != ROE_OK) {
        roe_tpe_free(t);
        return st;
    }
    *out = t;
    return ROE_OK;
}

void roe_tpe_free(roe_tpe *t) {
    if (!t) return;
    const struct roe_array arrays[] = TPE_ARRAYS(t, 0, 0);
    roe_arrays_free(arrays, ROE_N_OF(arrays));
    roe_free(t);
}

static double unif(roe_tpe *t) {
    struct roe_philox_out r = roe_philox4x32(t->draws++, 0x7E5E, 0, 0, (uint32_t)t->seed, (uint32_t)(t->seed >> 32));
    return ((double)r.v[0] + 0.5) / 4294967296.0;
}

static double normal(roe_tpe *t) {
    const double u1 = unif(t), u2 = unif(t);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* log of a Parzen density over trials order[a..b): per-dimension Gaussian kernels of width bw,
 * mixed with a uniform prior of weight 1/(m+1). */
static double log_density(const roe_tpe *t, const double *x, int a, int b, double bw) {
    const int m = b - a;
    double acc = 0.0;
    const double prior = 1.0 / (m + 1), range = t->hi - t->lo;
    double uniform = 1.0;
    for (int d = 0; d < t->dims; d++) uniform /= range;
    for (int i = a; i < b; i++) {
        const double *xi = t->xs + (size_t)t->order[i] * t->dims;
        double logk = 0.0;
        for (int d = 0; d < t->dims; d++) {
            const double z = (x[d] - xi[d]) / bw;
            logk += -0.5 * z * z - log(bw * 2.5066282746310002);
        }
        acc += exp(logk) * (1.0 - prior) / m;
    }
    return log(acc + prior * uniform + 1e-300);
}

static void sort_trials(roe_tpe *t) {
    for (int i = 0; i < t->n; i++) t->order[i] = i;
    for (int i = 1; i < t->n; i++) {
        int v = t->order[i], j = i;
        while (j > 0 && t->ys[t->order[j - 1]] > t->ys[v]) {
            t->order[j] = t->order[j - 1];
            j--;
        }
        t->order[j] = v;
    }
}

void roe_tpe_propose(roe_tpe *t, double *x) {
    const int D = t->dims;
    if (t->n == 0) {
        for (int d = 0; d < D; d++) x[d] = 0.5 * (t->lo + t->hi);
        return;
    }
    if (t->n < t->n_init) {
        for (int d = 0; d < D; d++) x[d] = t->lo + (t->hi - t->lo) * unif(t);
        return;
    }
    sort_trials(t);
    int n_good = (int)ceil(0.25 * t->n);
    if (n_good < 1) n_good = 1;
    /* kernel width shrinks with the number of good points (Scott-like rule) */
    const double bw = (t->hi - t->lo) * fmax(0.02, 0.2 * pow((double)n_good, -1.0 / (D + 4)));
    double best = -INFINITY;
    for (int c = 0; c < TPE_CANDIDATES; c++) {
        const double *centre = t->xs + (size_t)t->order[(int)(unif(t) * n_good) % n_good] * D;
        for (int d = 0; d < D; d++) {
            double v = centre[d] + bw * normal(t);
            if (v < t->lo) v = 2 * t->lo - v; /* reflect at the walls */
            if (v > t->hi) v = 2 * t->hi - v;
            t->cand[d] = v < t->lo ? t->lo : v > t->hi ? t->hi : v;
        }
        const double score = log_density(t, t->cand, 0, n_good, bw) -
                             (t->n > n_good ? log_density(t, t->cand, n_good, t->n, bw) : 0.0);
        if (score > best) {
            best = score;
            memcpy(x, t->cand, (size_t)D * sizeof *x);
        }
    }
}

void roe_tpe_observe(roe_tpe *t, const double *x, double y) {
    if (t->n >= t->max_trials) return;
    memcpy(t->xs + (size_t)t->n * t->dims, x, (size_t)t->dims * sizeof *x);
    t->ys[t->n++] = y;
}

int roe_tpe_best(const roe_tpe *t, double *x, double *y) {
    int b = -1;
    for (int i = 0; i < t->n; i++)
        if (b < 0 || t->ys[i] < t->ys[b]) b = i;
    if (b >= 0) {
        memcpy(x, t->xs + (size_t)b * t->dims, (size_t)t->dims * sizeof *x);
        *y = t->ys[b];
    }
    return t->n;
}
