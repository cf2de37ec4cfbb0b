/*
 * test_stop.c — stop strings (runtime/stop.h): matched whatever the cut of the text into tokens
 * (every split of a text into two or three pieces finds the same first match), with the
 * earliest start when several complete at once, overlapping prefixes ("aab" in "aaab"), and
 * the held bytes: exactly the longest end of the text that begins some stop string.
 */
#include "harness.h"
#include "runtime/stop.h"

static struct roe_stop_text make(int n, const char *const *s) {
    size_t len[ROE_STOP_MAX_STRINGS];
    for (int i = 0; i < n; i++) len[i] = strlen(s[i]);
    struct roe_stop_text t;
    if (roe_stop_text_init(&t, s, len, n) != ROE_OK) abort();
    return t;
}

/* The first match in text[0, n) by brute force: the earliest end, then the earliest start. */
static long brute(const struct roe_stop_text *t, const char *text, size_t n) {
    for (size_t end = 1; end <= n; end++) {
        long best = -1;
        for (int i = 0; i < t->n; i++) {
            const size_t m = (size_t)t->len[i];
            if (m <= end && memcmp(text + end - m, t->s[i], m) == 0 && (best < 0 || (long)(end - m) < best))
                best = (long)(end - m);
        }
        if (best >= 0) return best;
    }
    return -1;
}

/* The longest end of text[0, n) that is a proper prefix of some string, by brute force. */
static int brute_hold(const struct roe_stop_text *t, const char *text, size_t n) {
    int h = 0;
    for (int i = 0; i < t->n; i++)
        for (int k = t->len[i] - 1; k > h; k--)
            if ((size_t)k <= n && memcmp(text + n - k, t->s[i], (size_t)k) == 0) {
                h = k;
                break;
            }
    return h;
}

TEST(any_cut_finds_the_same_match) {
    static const char *const stops[] = {"aab", "the end", "\n\n", "d t"};
    const struct roe_stop_text t = make(4, stops);
    static const char *const texts[] = {"aaab", "we said the end.", "x\n\ny", "and then", "no match here",
                                        "aaaab aab", "th the en the end"};
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        const char *s = texts[k];
        const size_t n = strlen(s);
        const long want = brute(&t, s, n);
        for (size_t c1 = 0; c1 <= n; c1++)
            for (size_t c2 = c1; c2 <= n; c2++) {
                struct roe_stop_state st = {0};
                const size_t cuts[3] = {c1, c2, n};
                size_t fed = 0;
                long got = -1;
                for (int p = 0; p < 3 && got < 0; p++) {
                    got = roe_stop_feed(&t, &st, s + fed, cuts[p] - fed);
                    fed = cuts[p];
                    if (got < 0 && roe_stop_hold(&t, &st) != brute_hold(&t, s, fed))
                        TEST__FAIL("'%s' after %zu bytes: hold %d, want %d", s, fed, roe_stop_hold(&t, &st),
                                   brute_hold(&t, s, fed));
                }
                if (got != want) TEST__FAIL("'%s' cut at %zu, %zu: match at %ld, want %ld", s, c1, c2, got, want);
            }
    }
}

TEST(limits) {
    struct roe_stop_text t;
    const char *s[] = {""};
    size_t len[] = {0};
    ASSERT_TRUE(roe_stop_text_init(&t, s, len, 1) == ROE_ERR_INVALID_ARG);
    len[0] = ROE_STOP_MAX_BYTES + 1;
    ASSERT_TRUE(roe_stop_text_init(&t, s, len, 1) == ROE_ERR_INVALID_ARG);
    ASSERT_TRUE(roe_stop_text_init(&t, s, len, ROE_STOP_MAX_STRINGS + 1) == ROE_ERR_INVALID_ARG);
    ASSERT_TRUE(roe_stop_text_init(&t, s, len, 0) == ROE_OK);
    struct roe_stop_state st = {0};
    ASSERT_EQ_INT(roe_stop_feed(&t, &st, "abc", 3), -1);
    ASSERT_EQ_INT(roe_stop_hold(&t, &st), 0);
}

int main(void) {
    RUN(any_cut_finds_the_same_match);
    RUN(limits);
    return test_summary();
}
