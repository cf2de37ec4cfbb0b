/* stop.c — stop strings matched byte by byte (Knuth-Morris-Pratt); see stop.h. */
#include "stop.h"

#include <string.h>

roe_status roe_stop_text_init(struct roe_stop_text *t, const char *const *s, const size_t *len, int n) {
    memset(t, 0, sizeof *t);
    if (n < 0 || n > ROE_STOP_MAX_STRINGS)
        return roe_fail(ROE_ERR_INVALID_ARG, "%d stop strings: at most %d", n, ROE_STOP_MAX_STRINGS);
    for (int i = 0; i < n; i++) {
        if (len[i] < 1 || len[i] > ROE_STOP_MAX_BYTES)
            return roe_fail(ROE_ERR_INVALID_ARG, "stop string %d has %zu bytes: each must have 1 to %d", i,
                            len[i], ROE_STOP_MAX_BYTES);
        const int m = (int)len[i];
        memcpy(t->s[i], s[i], (size_t)m);
        t->len[i] = m;
        /* fail[j]: the longest proper prefix of s[0, j] that is also its suffix */
        t->fail[i][0] = 0;
        for (int j = 1, k = 0; j < m; j++) {
            while (k > 0 && t->s[i][j] != t->s[i][k]) k = t->fail[i][k - 1];
            if (t->s[i][j] == t->s[i][k]) k++;
            t->fail[i][j] = (short)k;
        }
    }
    t->n = n;
    return ROE_OK;
}

long roe_stop_feed(const struct roe_stop_text *t, struct roe_stop_state *st, const char *b, size_t n) {
    long first = -1;
    for (size_t x = 0; x < n; x++) {
        const char c = b[x];
        st->bytes++;
        for (int i = 0; i < t->n; i++) {
            int k = st->k[i];
            while (k > 0 && t->s[i][k] != c) k = t->fail[i][k - 1];
            if (t->s[i][k] == c) k++;
            if (k == t->len[i]) {
                const long at = st->bytes - t->len[i];
                if (first < 0 || at < first) first = at;
                k = t->fail[i][k - 1];
            }
            st->k[i] = (short)k;
        }
        if (first >= 0) return first; /* the earliest completed string; the rest is not needed */
    }
    return first;
}

int roe_stop_hold(const struct roe_stop_text *t, const struct roe_stop_state *st) {
    int h = 0;
    for (int i = 0; i < t->n; i++)
        if (st->k[i] > h) h = st->k[i];
    return h;
}
