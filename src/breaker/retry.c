/*
 * retry.c: retries that cannot multiply load. Full-jitter backoff spreads the
 * retries of many callers that failed together (AWS, "Exponential Backoff and
 * Jitter"); the budget caps retries at a fraction of first attempts, so when a
 * dependency is down every caller does not triple its traffic.
 */
#include <stdatomic.h>
#include <string.h>

#include "redline/breaker.h"

void rdl_retry_policy_default(rdl_retry_policy_t *p)
{
    memset(p, 0, sizeof(*p));
    p->max_attempts = 3;
    p->base_ns = 50ull * 1000000ull;
    p->cap_ns = 1000ull * 1000000ull;
    p->retry_kinds = RDL_OUTCOME_BIT(RDL_OUTCOME_CONNECT) | RDL_OUTCOME_BIT(RDL_OUTCOME_TIMEOUT) |
                     RDL_OUTCOME_BIT(RDL_OUTCOME_HTTP_429) | RDL_OUTCOME_BIT(RDL_OUTCOME_HTTP_5XX);
}

uint64_t rdl_retry_backoff_ns(const rdl_retry_policy_t *p, uint32_t n, uint64_t rnd)
{
    uint64_t ceil = p->base_ns;
    for (uint32_t i = 0; i < n && ceil < p->cap_ns; i++)
        ceil = ceil > UINT64_MAX / 2 ? UINT64_MAX : ceil * 2;
    if (ceil > p->cap_ns)
        ceil = p->cap_ns;
    /* rnd scaled into [0, ceil]: the high 64 bits of rnd * (ceil + 1). */
    return (uint64_t)(((unsigned __int128)rnd * ((unsigned __int128)ceil + 1)) >> 64);
}

static uint64_t clock_now(const rdl_retry_budget_t *rb)
{
    return rb->clock ? rb->clock(rb->clock_arg) : rdl_now_ns();
}

void rdl_retry_budget_init(rdl_retry_budget_t *rb, double ratio, double min_per_sec,
                           rdl_clock_fn clock, void *clock_arg)
{
    memset(rb, 0, sizeof(*rb));
    if (ratio < 0)
        ratio = 0;
    if (min_per_sec < 0)
        min_per_sec = 0;
    rb->ratio_milli = (int64_t)(ratio * 1000 + 0.5);
    rb->floor_milli_per_s = (int64_t)(min_per_sec * 1000 + 0.5);
    /* At most ten tokens of credit, or ten seconds of the floor if that is more. */
    rb->max_milli = 10000 > 10 * rb->floor_milli_per_s ? 10000 : 10 * rb->floor_milli_per_s;
    rb->clock = clock;
    rb->clock_arg = clock_arg;
    atomic_init(&rb->milli, rb->floor_milli_per_s < rb->max_milli ? rb->floor_milli_per_s
                                                                  : rb->max_milli);
    atomic_init(&rb->last_ns, clock_now(rb));
}

static void credit(rdl_retry_budget_t *rb, int64_t add)
{
    int64_t v = atomic_load_explicit(&rb->milli, memory_order_relaxed);
    int64_t nv;
    do {
        nv = v + add > rb->max_milli ? rb->max_milli : v + add;
        if (nv <= v)
            return;
    } while (!atomic_compare_exchange_weak_explicit(&rb->milli, &v, nv, memory_order_relaxed,
                                                    memory_order_relaxed));
}

void rdl_retry_budget_deposit(rdl_retry_budget_t *rb)
{
    if (rb->ratio_milli)
        credit(rb, rb->ratio_milli);
}

/* The floor: min_per_sec tokens a second, credited lazily by whoever withdraws. */
static void refill(rdl_retry_budget_t *rb)
{
    if (!rb->floor_milli_per_s)
        return;
    uint64_t now = clock_now(rb);
    uint64_t last = atomic_load_explicit(&rb->last_ns, memory_order_relaxed);
    uint64_t step = 1000000000ull / (uint64_t)rb->floor_milli_per_s;   /* ns per milli-token */
    if (now <= last || now - last < step)
        return;
    uint64_t add = (now - last) / step;
    if (atomic_compare_exchange_strong_explicit(&rb->last_ns, &last, last + add * step,
                                                memory_order_relaxed, memory_order_relaxed))
        credit(rb, add > (uint64_t)rb->max_milli ? rb->max_milli : (int64_t)add);
}

bool rdl_retry_budget_withdraw(rdl_retry_budget_t *rb)
{
    refill(rb);
    int64_t v = atomic_load_explicit(&rb->milli, memory_order_relaxed);
    while (v >= 1000)
        if (atomic_compare_exchange_weak_explicit(&rb->milli, &v, v - 1000, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    atomic_fetch_add_explicit(&rb->exhausted, 1, memory_order_relaxed);
    return false;
}

bool rdl_retry_should(const rdl_retry_policy_t *p, rdl_retry_budget_t *rb, uint32_t attempts,
                      int kind, bool idempotent, uint64_t remaining_ns, uint64_t backoff_ns)
{
    if (attempts >= p->max_attempts || (!idempotent && !p->retry_non_idempotent))
        return false;
    if (kind < 0 || kind >= RDL_OUTCOME_COUNT || !(p->retry_kinds & RDL_OUTCOME_BIT(kind)))
        return false;
    if (remaining_ns <= backoff_ns)
        return false;           /* the retry could not finish in time */
    return rb ? rdl_retry_budget_withdraw(rb) : true;
}
