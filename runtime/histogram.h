/*
 * histogram.h — a fixed-bucket histogram of seconds, Prometheus-style: count[i] counts the
 * observations <= le[i] (not cumulative here; cumulated when rendered), count[n] those above
 * every bound, with their sum. Bucket bounds are static tables, so recording allocates
 * nothing and a histogram is a plain value that can be copied as a snapshot.
 */
#ifndef ROE_HISTOGRAM_H
#define ROE_HISTOGRAM_H

#include <stdint.h>

enum { ROE_HIST_MAX_BUCKETS = 32 };

struct roe_histogram {
    int n;                                    /* finite bounds */
    const double *le;                         /* [n] increasing upper bounds, static storage */
    uint64_t count[ROE_HIST_MAX_BUCKETS + 1]; /* per bucket; [n]: above every bound (+Inf) */
    uint64_t total;
    double sum;
};

static inline void roe_histogram_init(struct roe_histogram *h, const double *le, int n) {
    *h = (struct roe_histogram){.n = n > ROE_HIST_MAX_BUCKETS ? ROE_HIST_MAX_BUCKETS : n, .le = le};
}

static inline void roe_histogram_observe(struct roe_histogram *h, double v) {
    int i = 0;
    while (i < h->n && v > h->le[i])
        i++;
    h->count[i]++;
    h->total++;
    h->sum += v;
}

#endif
