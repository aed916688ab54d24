/*
 * bench_metrics.c: ns/op of the metrics hot path and ms per 10,000-series
 * scrape, against a mutex-based registry written here (the design the stale
 * C clients use: one lock around every update) measured in the same run, so
 * the ratio holds on a shared, noisy machine.
 *
 *   build/bench/bench_metrics [ROUNDS]      (default 5; medians printed)
 *
 * Cases: counter inc on 1 thread; 2 threads on one counter (per-thread ns/op:
 * equal to the 1-thread figure when nothing is contended); a labelled
 * counter's inc through a handle looked up once; the lookup itself; histogram
 * observe (14 buckets); exposition of 10,000 counter series (text 0.0.4).
 * Times are each thread's CPU time (CLOCK_THREAD_CPUTIME_ID).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "redline/metrics.h"
#include "bench_util.h"

#define ITERS 20000000L

/* The calling thread's CPU time: on a shared machine, time spent descheduled is not the
 * operation's cost (cache-line contention still is: stalled cycles are CPU time). */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the baseline: a mutex around each update -------------------------- */

typedef struct base_counter {
    pthread_mutex_t mu;
    double v;
} base_counter_t;

static void base_inc(base_counter_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->v += 1;
    pthread_mutex_unlock(&c->mu);
}

typedef struct base_hist {
    pthread_mutex_t mu;
    const double *bounds;
    int nb;
    uint64_t counts[32];
    double sum;
} base_hist_t;

static void base_observe(base_hist_t *h, double v)
{
    pthread_mutex_lock(&h->mu);
    int i = 0;
    while (i < h->nb && h->bounds[i] < v)
        i++;
    h->counts[i]++;
    h->sum += v;
    pthread_mutex_unlock(&h->mu);
}

/* ---- cases ----------------------------------------------------------------- */

/* A second reference: one shared atomic (lock xadd), what a lock-free but unsharded counter costs. */
static _Atomic uint64_t shared_atomic;

typedef struct job {
    rdl_counter_t *c;
    base_counter_t *bc;
    long iters;
    double ns;                  /* out: CPU ns per op on this thread */
} job_t;

static void *run_inc(void *arg)
{
    job_t *j = arg;
    rdl_counter_inc(j->c);      /* takes this thread's slot outside the timing */
    double t0 = now_s();
    for (long i = 0; i < j->iters; i++)
        rdl_counter_inc(j->c);
    j->ns = (now_s() - t0) * 1e9 / (double)j->iters;
    return NULL;
}

static void *run_base_inc(void *arg)
{
    job_t *j = arg;
    double t0 = now_s();
    for (long i = 0; i < j->iters; i++)
        base_inc(j->bc);
    j->ns = (now_s() - t0) * 1e9 / (double)j->iters;
    return NULL;
}

static void *run_atomic_inc(void *arg)
{
    job_t *j = arg;
    double t0 = now_s();
    for (long i = 0; i < j->iters; i++)
        atomic_fetch_add_explicit(&shared_atomic, 1, memory_order_relaxed);
    j->ns = (now_s() - t0) * 1e9 / (double)j->iters;
    return NULL;
}

/* ns per op of fn on n threads at once (each doing iters ops): the mean of the threads. */
static double threads_ns(void *(*fn)(void *), job_t *proto, int n)
{
    pthread_t t[2];
    job_t jobs[2];
    for (int i = 0; i < n; i++) {
        jobs[i] = *proto;
        pthread_create(&t[i], NULL, fn, &jobs[i]);
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        sum += jobs[i].ns;
    }
    return sum / n;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1 || rounds > 99)
        rounds = 5;
    rdl_registry_t *r;
    rdl_registry_new(&r);
    rdl_counter_t *c, *c2;
    rdl_histogram_t *h;
    static const double b[] = { .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10 };
    rdl_counter_new(r, "bench_total", "", &c, NULL);
    rdl_counter_new(r, "bench2_total", "", &c2, NULL);
    rdl_histogram_new(r, "bench_seconds", "", b, 14, &h, NULL);
    static const char *const labels[] = { "method", "route", "code" };
    rdl_metric_opts_t lo = { .name = "bench_labelled_total", .help = "", .labels = labels, .nlabels = 3 };
    rdl_metric_t *lm;
    rdl_metric_new(r, RDL_METRIC_COUNTER, &lo, &lm, NULL);
    const char *vals[] = { "GET", "/v1/courses/{id}", "200" };
    rdl_counter_t *held = rdl_metric_counter(lm, vals);

    /* the 10,000-series registry: 100 routes x 100 codes-ish */
    rdl_registry_t *big;
    rdl_registry_new(&big);
    static const char *const bl[] = { "route", "code" };
    rdl_metric_opts_t bo = { .name = "big_requests_total", .help = "Requests.", .labels = bl,
                             .nlabels = 2, .max_series = 10000 };
    rdl_metric_t *bm;
    rdl_metric_new(big, RDL_METRIC_COUNTER, &bo, &bm, NULL);
    for (int i = 0; i < 100; i++)
        for (int k = 0; k < 100; k++) {
            char route[32], code[16];
            snprintf(route, sizeof(route), "/api/v1/resource_%d/{id}", i);
            snprintf(code, sizeof(code), "%d", 100 + k);
            const char *v[] = { route, code };
            rdl_counter_add(rdl_metric_counter(bm, v), (uint64_t)(i * 1000 + k));
        }
    base_counter_t bc = { .v = 0 };
    pthread_mutex_init(&bc.mu, NULL);
    base_hist_t bh = { .bounds = b, .nb = 14 };
    pthread_mutex_init(&bh.mu, NULL);

    double inc1[99], inc2[99], lab[99], look[99], obs[99], expo[99];
    double binc1[99], binc2[99], bobs[99], bexpo[99], ainc1[99], ainc2[99];
    size_t expo_bytes = 0;
    rdl_buf_t out;
    rdl_buf_init(&out);
    for (int rd = 0; rd < rounds; rd++) {
        job_t j = { .c = c, .bc = &bc, .iters = ITERS };
        inc1[rd] = threads_ns(run_inc, &j, 1);
        binc1[rd] = threads_ns(run_base_inc, &j, 1);
        j.c = c2;
        inc2[rd] = threads_ns(run_inc, &j, 2);
        binc2[rd] = threads_ns(run_base_inc, &j, 2);
        ainc1[rd] = threads_ns(run_atomic_inc, &j, 1);
        ainc2[rd] = threads_ns(run_atomic_inc, &j, 2);

        double t0 = now_s();
        for (long i = 0; i < ITERS; i++)
            rdl_counter_inc(held);
        lab[rd] = (now_s() - t0) * 1e9 / ITERS;

        t0 = now_s();
        for (long i = 0; i < ITERS / 20; i++)
            rdl_counter_inc(rdl_metric_counter(lm, vals));
        look[rd] = (now_s() - t0) * 1e9 / (ITERS / 20);

        t0 = now_s();
        for (long i = 0; i < ITERS; i++)
            rdl_histogram_observe(h, (double)(i & 1023) * 0.0001);
        obs[rd] = (now_s() - t0) * 1e9 / ITERS;
        t0 = now_s();
        for (long i = 0; i < ITERS; i++)
            base_observe(&bh, (double)(i & 1023) * 0.0001);
        bobs[rd] = (now_s() - t0) * 1e9 / ITERS;

        rdl_buf_reset(&out);
        t0 = now_s();
        rdl_metrics_expose(big, RDL_FMT_TEXT, &out);
        expo[rd] = (now_s() - t0) * 1e3;
        expo_bytes = out.len;

        /* baseline scrape: the same 10,000 lines, each value read under its lock and printed with %g */
        rdl_buf_reset(&out);
        t0 = now_s();
        rdl_buf_puts(&out, "# HELP big_requests_total Requests.\n# TYPE big_requests_total counter\n");
        for (int i = 0; i < 100; i++)
            for (int k = 0; k < 100; k++) {
                pthread_mutex_lock(&bc.mu);
                double v = bc.v;
                pthread_mutex_unlock(&bc.mu);
                rdl_buf_printf(&out, "big_requests_total{route=\"/api/v1/resource_%d/{id}\",code=\"%d\"} %g\n",
                               i, 100 + k, v);
            }
        bexpo[rd] = (now_s() - t0) * 1e3;
    }
    double m_inc1 = bench_median(inc1, rounds), m_inc2 = bench_median(inc2, rounds), m_lab = bench_median(lab, rounds);
    double m_look = bench_median(look, rounds), m_obs = bench_median(obs, rounds), m_expo = bench_median(expo, rounds);
    double m_binc1 = bench_median(binc1, rounds), m_binc2 = bench_median(binc2, rounds);
    double m_bobs = bench_median(bobs, rounds), m_bexpo = bench_median(bexpo, rounds);
    printf("bench_metrics: medians of %d rounds, %ld ops per case (mutex baseline in the same run)\n",
           rounds, ITERS);
    printf("%-44s %10s %10s %8s\n", "case", "redline", "mutex", "ratio");
    printf("%-44s %8.2f ns %8.2f ns %7.1fx\n", "counter inc, 1 thread", m_inc1, m_binc1, m_binc1 / m_inc1);
    printf("%-44s %8.2f ns %8.2f ns %7.1fx\n", "counter inc, 2 threads, one counter", m_inc2, m_binc2,
           m_binc2 / m_inc2);
    printf("%-44s %8.2f ns\n", "labelled counter inc, held handle", m_lab);
    printf("%-44s %8.2f ns\n", "labelled counter lookup (3 labels) + inc", m_look);
    printf("%-44s %8.2f ns %8.2f ns %7.1fx\n", "histogram observe (14 buckets)", m_obs, m_bobs, m_bobs / m_obs);
    printf("%-44s %8.3f ms %8.3f ms %7.1fx  (%zu bytes)\n", "exposition, 10,000 series (text 0.0.4)",
           m_expo, m_bexpo, m_bexpo / m_expo, expo_bytes);
    printf("%-44s %8.2f ns (1 thread), %.2f ns (2 threads)\n", "reference: one shared atomic fetch_add",
           bench_median(ainc1, rounds), bench_median(ainc2, rounds));
    printf("2 threads / 1 thread (contended inc): %.2f (target <= 2)\n", m_inc2 / m_inc1);
    rdl_buf_close(&out);
    rdl_registry_free(big);
    rdl_registry_free(r);
    return 0;
}
