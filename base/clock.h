/* clock.h — monotonic seconds, for timings reported to users and benchmarks; and the
 * wall-clock deadline that pthread_cond_timedwait takes. */
#ifndef ROE_CLOCK_H
#define ROE_CLOCK_H

#include <time.h>

static inline double roe_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The CLOCK_REALTIME time `wait_s` seconds from now (a deadline for pthread_cond_timedwait). */
static inline struct timespec roe_deadline(double wait_s) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const double t = (double)ts.tv_sec + 1e-9 * ts.tv_nsec + wait_s;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    return ts;
}

#endif
