/* clock.h — monotonic seconds, for timings reported to users and benchmarks. */
#ifndef ROE_CLOCK_H
#define ROE_CLOCK_H

#include <time.h>

static inline double roe_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
