/*
 * harness.h — a tiny test harness in the libuv/redis style: each ASSERT prints both
 * sides and the location, and a test binary's exit code is its verdict.
 *
 *   TEST(name) { ASSERT_EQ_INT(1 + 1, 2); }
 *   int main(void) { RUN(name); return test_summary(); }
 *
 * A GPU or MPI test that cannot run returns TEST_SKIP (77), which ctest reports as
 * skipped when SKIP_RETURN_CODE is set.
 */
#ifndef ROE_TEST_HARNESS_H
#define ROE_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_SKIP 77

__attribute__((unused)) static int test__failed = 0;
__attribute__((unused)) static int test__passed = 0;
__attribute__((unused)) static int test__current_failed = 0;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                                                  \
    do {                                                                                           \
        test__current_failed = 0;                                                                  \
        test_##name();                                                                             \
        if (test__current_failed) {                                                                \
            test__failed++;                                                                        \
            fprintf(stderr, "FAIL %s\n", #name);                                                   \
        } else {                                                                                   \
            test__passed++;                                                                        \
            fprintf(stderr, "ok   %s\n", #name);                                                   \
        }                                                                                          \
    } while (0)

static inline int test_summary(void) {
    fprintf(stderr, "%d passed, %d failed\n", test__passed, test__failed);
    return test__failed ? 1 : 0;
}

#define TEST__FAIL(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                          \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        test__current_failed = 1;                                                                  \
    } while (0)

#define ASSERT_TRUE(c)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            TEST__FAIL("expected true: %s", #c);                                                   \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define ASSERT_EQ_INT(a, b)                                                                        \
    do {                                                                                           \
        long long test__a = (long long)(a), test__b = (long long)(b);                              \
        if (test__a != test__b) {                                                                  \
            TEST__FAIL("%s == %s: %lld != %lld", #a, #b, test__a, test__b);                        \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define ASSERT_EQ_STR(a, b)                                                                        \
    do {                                                                                           \
        const char *test__a = (a), *test__b = (b);                                                 \
        if (!test__a || !test__b || strcmp(test__a, test__b) != 0) {                               \
            TEST__FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, test__a ? test__a : "(null)",         \
                       test__b ? test__b : "(null)");                                              \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define ASSERT_NEAR(a, b, tol)                                                                     \
    do {                                                                                           \
        double test__a = (a), test__b = (b);                                                       \
        if (!(fabs(test__a - test__b) <= (tol))) {                                                 \
            TEST__FAIL("%s ~= %s: %.9g vs %.9g (tol %g)", #a, #b, test__a, test__b, (double)(tol)); \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Asserts a status-returning call fails with `want` and that its message contains `needle`. */
#define ASSERT_FAILS_WITH(call, want, needle)                                                      \
    do {                                                                                           \
        roe_error_clear();                                                                         \
        roe_status test__s = (call);                                                               \
        if (test__s != (want)) {                                                                   \
            TEST__FAIL("%s: status %s, expected %s (message: %s)", #call,                          \
                       roe_status_name(test__s), roe_status_name(want), roe_error_message());      \
            return;                                                                                \
        }                                                                                          \
        if (!strstr(roe_error_message(), (needle))) {                                              \
            TEST__FAIL("%s: message \"%s\" lacks \"%s\"", #call, roe_error_message(), (needle));   \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define ASSERT_OK(call)                                                                            \
    do {                                                                                           \
        roe_status test__s = (call);                                                               \
        if (test__s != ROE_OK) {                                                                   \
            TEST__FAIL("%s: %s: %s", #call, roe_status_name(test__s), roe_error_message());        \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#endif
