/*
 * bench_util.h: the clocks and the statistic every microbenchmark uses, so
 * their figures are comparable. On a shared machine a round's thread CPU time
 * is its cost (time spent descheduled is not); wall time is for what crosses
 * threads or the kernel's queues. Rounds are summarised by their median.
 */
#ifndef RDL_BENCH_UTIL_H
#define RDL_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

/* The calling thread's CPU time, nanoseconds. */
static inline double bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Monotonic wall time, nanoseconds. */
static inline double bench_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v (v[0] is then the least disturbed round) and returns its median. */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
