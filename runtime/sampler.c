/* sampler.c — greedy / temperature / top-k / top-p; see sampler.h. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/philox.h"

struct roe_sampler {
    int vocab;
    float *p;    /* [vocab] */
    int32_t *ix; /* [vocab] */
};

struct roe_sampling roe_sampling_default(void) {
    struct roe_sampling s = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
    return s;
}

roe_status roe_sampling_validate(const struct roe_sampling *s) {
    if (!(s->temperature >= 0.0f && s->temperature <= 100.0f))
        return roe_fail(ROE_ERR_INVALID_ARG, "temperature %g is outside [0, 100]", s->temperature);
    if (s->top_k < 0)
        return roe_fail(ROE_ERR_INVALID_ARG, "top-k %d must be >= 0 (0 disables it)", s->top_k);
    if (!(s->top_p > 0.0f && s->top_p <= 1.0f))
        return roe_fail(ROE_ERR_INVALID_ARG, "top-p %g is outside (0, 1]", s->top_p);
    return ROE_OK;
}

roe_status roe_sampler_create(int vocab, roe_sampler **out) {
    *out = NULL;
    roe_sampler *s = roe_calloc(1, sizeof *s);
    if (!s) return roe_fail(ROE_ERR_NOMEM, "sampler: out of memory");
    s->vocab = vocab;
    s->p = roe_malloc((size_t)vocab * sizeof *s->p);
    s->ix = roe_malloc((size_t)vocab * sizeof *s->ix);
    if (!s->p || !s->ix) {
        roe_sampler_free(s);
        return roe_fail(ROE_ERR_NOMEM, "sampler: out of memory for a vocabulary of %d", vocab);
    }
    *out = s;
    return ROE_OK;
}

void roe_sampler_free(roe_sampler *s) {
    if (!s) return;
    roe_free(s->p);
    roe_free(s->ix);
    roe_free(s);
}

static int32_t argmax(const float *z, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (z[i] > z[best]) best = i;
    return best;
}

/* qsort context-free comparator over (prob desc, index asc) via a file-static pointer is
 * not thread-safe; sort indices with an explicit heap-free insertion for the top part. */
static void sort_desc(const float *p, int32_t *ix, int n) {
    /* shell sort: in place, no allocation, deterministic */
    static const int gaps[] = {1750, 701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        const int gap = gaps[g];
        for (int i = gap; i < n; i++) {
            int32_t t = ix[i];
            int j = i;
            while (j >= gap && (p[ix[j - gap]] < p[t] || (p[ix[j - gap]] == p[t] && ix[j - gap] > t))) {
                ix[j] = ix[j - gap];
                j -= gap;
            }
            ix[j] = t;
        }
    }
}

int32_t roe_sampler_pick(roe_sampler *s, const struct roe_sampling *opt, const float *z,
                         int position) {
    const int V = s->vocab;
    if (opt->temperature == 0.0f) return argmax(z, V);
    /* softmax(z / T) */
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = z[i] > mx ? z[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        s->p[i] = expf((z[i] - mx) / opt->temperature);
        sum += s->p[i];
        s->ix[i] = i;
    }
    int n = V;
    if ((opt->top_k > 0 && opt->top_k < V) || opt->top_p < 1.0f) {
        sort_desc(s->p, s->ix, V);
        if (opt->top_k > 0 && opt->top_k < n) n = opt->top_k;
        if (opt->top_p < 1.0f) {
            double kept = 0.0, total = 0.0;
            for (int i = 0; i < n; i++) total += s->p[s->ix[i]];
            int m = 0;
            while (m < n) { /* keep the smallest prefix whose mass reaches top_p */
                kept += s->p[s->ix[m++]];
                if (kept >= opt->top_p * total) break;
            }
            n = m;
        }
        sum = 0.0;
        for (int i = 0; i < n; i++) sum += s->p[s->ix[i]];
    }
    struct roe_philox_out r = roe_philox4x32((uint32_t)position, 0x5A4D504Cu /* "SMPL" */, 0, 0,
                                             (uint32_t)opt->seed, (uint32_t)(opt->seed >> 32));
    const double u = roe_u32_to_unit(r.v[0]) * sum;
    double acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += s->p[s->ix[i]];
        if (acc >= u) return s->ix[i];
    }
    return s->ix[n - 1];
}
