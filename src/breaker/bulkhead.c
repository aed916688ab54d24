/*
 * bulkhead.c: bounded concurrency for calls to one dependency, so a slow
 * dependency can hold at most max_concurrent callers instead of all of them.
 * The admission path is one CAS on a counter; a mutex and condition variable
 * exist only for callers that choose to wait for a slot (never I/O threads).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "redline/breaker.h"

struct rdl_bulkhead {
    _Atomic int64_t in_use;
    int64_t max;
    _Atomic int64_t waiters;
    _Atomic uint64_t admitted, rejected;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

int rdl_bulkhead_new(int64_t max_concurrent, rdl_bulkhead_t **out)
{
    if (max_concurrent < 1 || !out)
        return RDL_EINVAL;
    rdl_bulkhead_t *bh = calloc(1, sizeof(*bh));
    if (!bh)
        return RDL_ENOMEM;
    bh->max = max_concurrent;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&bh->mu, NULL);
    pthread_cond_init(&bh->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = bh;
    return 0;
}

void rdl_bulkhead_free(rdl_bulkhead_t *bh)
{
    if (!bh)
        return;
    pthread_cond_destroy(&bh->cv);
    pthread_mutex_destroy(&bh->mu);
    free(bh);
}

static bool take(rdl_bulkhead_t *bh)
{
    int64_t n = atomic_load_explicit(&bh->in_use, memory_order_relaxed);
    while (n < bh->max)
        if (atomic_compare_exchange_weak_explicit(&bh->in_use, &n, n + 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    return false;
}

int rdl_bulkhead_try_acquire(rdl_bulkhead_t *bh)
{
    if (take(bh)) {
        atomic_fetch_add_explicit(&bh->admitted, 1, memory_order_relaxed);
        return 0;
    }
    atomic_fetch_add_explicit(&bh->rejected, 1, memory_order_relaxed);
    return RDL_EBUSY;
}

int rdl_bulkhead_acquire(rdl_bulkhead_t *bh, uint64_t wait_ns)
{
    if (wait_ns == 0 || take(bh)) {
        if (wait_ns == 0)
            return rdl_bulkhead_try_acquire(bh);
        atomic_fetch_add_explicit(&bh->admitted, 1, memory_order_relaxed);
        return 0;
    }
    struct timespec until = rdl_timespec_in(CLOCK_MONOTONIC, wait_ns);
    bool got = false;
    pthread_mutex_lock(&bh->mu);
    /* Registered before the retry, so a release after this sees us and signals. */
    atomic_fetch_add(&bh->waiters, 1);
    while (!(got = take(bh)) && pthread_cond_timedwait(&bh->cv, &bh->mu, &until) == 0)
        ;
    atomic_fetch_sub(&bh->waiters, 1);
    pthread_mutex_unlock(&bh->mu);
    atomic_fetch_add_explicit(got ? &bh->admitted : &bh->rejected, 1, memory_order_relaxed);
    return got ? 0 : RDL_EBUSY;
}

void rdl_bulkhead_release(rdl_bulkhead_t *bh)
{
    atomic_fetch_sub(&bh->in_use, 1);
    if (atomic_load(&bh->waiters) > 0) {
        pthread_mutex_lock(&bh->mu);
        pthread_cond_signal(&bh->cv);
        pthread_mutex_unlock(&bh->mu);
    }
}

void rdl_bulkhead_stats(rdl_bulkhead_t *bh, rdl_bulkhead_stats_t *out)
{
    out->in_use = atomic_load_explicit(&bh->in_use, memory_order_relaxed);
    out->max_concurrent = bh->max;
    out->admitted = atomic_load_explicit(&bh->admitted, memory_order_relaxed);
    out->rejected = atomic_load_explicit(&bh->rejected, memory_order_relaxed);
}
