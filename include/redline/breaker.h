/*
 * breaker.h: resilience for outbound calls: a circuit breaker with
 * resilience4j's semantics, a bulkhead (bounded concurrency) and retries with
 * full-jitter backoff under a retry budget.
 *
 * A breaker watches the outcomes of calls to one dependency. CLOSED lets every
 * call through and keeps a sliding window (the last N calls, or the last N
 * seconds); once the window holds minimum_calls and the failure rate or the
 * slow-call rate reaches its threshold it turns OPEN and refuses calls for the
 * wait duration (fixed, or doubling per consecutive opening up to a cap), then
 * HALF_OPEN lets permitted_half_open trial calls through and closes or opens
 * again on their rates. DISABLED, METRICS_ONLY and FORCED_OPEN are set by hand.
 *
 *   rdl_breaker_opts_t o; rdl_breaker_opts_default(&o);
 *   rdl_breaker_t *b; rdl_breaker_new("recommend", &o, &b);
 *   rdl_breaker_permit_t p;
 *   if (rdl_breaker_acquire(b, &p) != 0) return fallback();        // open: fail fast
 *   int kind = call();  rdl_breaker_record(b, &p, kind, elapsed_ns);
 *
 * Thread-safety: acquire, record, state, stats and the manual transitions are
 * safe from any thread and take no lock (atomics only); _new/_free from one
 * thread while no other uses the breaker. The state-change callback runs on
 * the thread whose call caused the transition, once per transition.
 */
#ifndef REDLINE_BREAKER_H
#define REDLINE_BREAKER_H

#include <stdint.h>
#include <stdbool.h>
#include <stdatomic.h>
#include "redline/common.h"
#include "redline/util.h"

/* ---- outcomes --------------------------------------------------------- */

/*
 * What became of a call. Which kinds count as failures, and which are ignored
 * (neither success nor failure), is configured by bit masks of (1u << kind).
 */
typedef enum rdl_outcome {
    RDL_OUTCOME_OK = 0,         /* 2xx/3xx answer */
    RDL_OUTCOME_HTTP_4XX,       /* the peer refused the request (4xx other than 429) */
    RDL_OUTCOME_HTTP_429,       /* the peer shed load */
    RDL_OUTCOME_HTTP_5XX,       /* the peer failed (5xx) */
    RDL_OUTCOME_TIMEOUT,        /* no answer within the deadline */
    RDL_OUTCOME_CONNECT,        /* could not connect / resolve */
    RDL_OUTCOME_CANCELED,       /* the caller gave up (request canceled) */
    RDL_OUTCOME_OTHER,          /* any other transport error */
    RDL_OUTCOME_COUNT
} rdl_outcome_t;

#define RDL_OUTCOME_BIT(k) (1u << (k))
/* Defaults: transport errors, timeouts, 429 and 5xx are failures; cancellation is ignored. */
#define RDL_OUTCOME_DEFAULT_FAILURES                                                    \
    (RDL_OUTCOME_BIT(RDL_OUTCOME_HTTP_429) | RDL_OUTCOME_BIT(RDL_OUTCOME_HTTP_5XX) |    \
     RDL_OUTCOME_BIT(RDL_OUTCOME_TIMEOUT) | RDL_OUTCOME_BIT(RDL_OUTCOME_CONNECT) |      \
     RDL_OUTCOME_BIT(RDL_OUTCOME_OTHER))
#define RDL_OUTCOME_DEFAULT_IGNORED RDL_OUTCOME_BIT(RDL_OUTCOME_CANCELED)

/* "ok", "http_4xx", "http_429", "http_5xx", "timeout", "connect", "canceled", "other". */
RDL_EXTERN const char *rdl_outcome_name(int kind);
/* Outcome of an HTTP status (0 = transport error: RDL_OUTCOME_OTHER). */
RDL_EXTERN rdl_outcome_t rdl_outcome_of_status(int status);

/* ---- circuit breaker -------------------------------------------------- */

typedef enum rdl_breaker_state {
    RDL_BREAKER_CLOSED = 0,
    RDL_BREAKER_OPEN,
    RDL_BREAKER_HALF_OPEN,
    RDL_BREAKER_DISABLED,       /* every call passes; nothing recorded, no transitions */
    RDL_BREAKER_METRICS_ONLY,   /* every call passes; outcomes counted, never trips */
    RDL_BREAKER_FORCED_OPEN,    /* no call passes until changed by hand */
    RDL_BREAKER_STATE_COUNT
} rdl_breaker_state_t;

/* "closed", "open", "half_open", "disabled", "metrics_only", "forced_open". */
RDL_EXTERN const char *rdl_breaker_state_name(int state);

typedef enum rdl_window_type {
    RDL_WINDOW_COUNT = 0,       /* the last window_size calls */
    RDL_WINDOW_TIME             /* the calls of the last window_size seconds */
} rdl_window_type_t;

typedef struct rdl_breaker rdl_breaker_t;

/* Called once per transition, on the thread that caused it. */
typedef void (*rdl_breaker_change_fn)(rdl_breaker_t *b, int from, int to, void *arg);
/* A monotonic clock in nanoseconds (tests inject one; default rdl_now_ns). */
typedef uint64_t (*rdl_clock_fn)(void *arg);

typedef struct rdl_breaker_opts {
    rdl_window_type_t window_type;  /* COUNT */
    uint32_t window_size;           /* calls (1..65536) or seconds (1..512); 100 */
    uint32_t minimum_calls;         /* no rate below this many calls in the window; 100
                                       (COUNT windows use min(minimum_calls, window_size)) */
    double failure_rate;            /* percent, open when >= ; 50 */
    double slow_rate;               /* percent, open when >= ; 100 */
    uint64_t slow_call_ns;          /* a call this slow or slower is slow; 60 s */
    uint32_t permitted_half_open;   /* trial calls in HALF_OPEN (1..4095); 10 */
    uint64_t max_half_open_ns;      /* HALF_OPEN longer than this -> OPEN; 0 = wait forever */
    uint64_t wait_open_ns;          /* OPEN -> HALF_OPEN after this; 60 s */
    double wait_multiplier;         /* each consecutive opening waits this much longer; 1 = fixed */
    uint64_t wait_open_max_ns;      /* cap on the grown wait; 0 = no cap */
    bool automatic_half_open;       /* rdl_breaker_state()/tick() move OPEN -> HALF_OPEN when
                                       the wait is over, not only the next acquire */
    uint32_t failure_kinds;         /* RDL_OUTCOME_BIT mask; RDL_OUTCOME_DEFAULT_FAILURES */
    uint32_t ignored_kinds;         /* ignore beats failure; RDL_OUTCOME_DEFAULT_IGNORED */
    rdl_breaker_state_t initial;    /* CLOSED, DISABLED, METRICS_ONLY or FORCED_OPEN */
    rdl_breaker_change_fn on_change;
    void *on_change_arg;
    rdl_clock_fn clock;             /* NULL = rdl_now_ns */
    void *clock_arg;
} rdl_breaker_opts_t;

/* resilience4j's defaults, listed above. */
RDL_EXTERN void rdl_breaker_opts_default(rdl_breaker_opts_t *o);

/* What acquire hands out and record takes back (caller-owned, on the stack). */
typedef struct rdl_breaker_permit {
    uint64_t gen;               /* the breaker generation the call started in */
    uint8_t state;              /* the state it was permitted in */
} rdl_breaker_permit_t;

/* Counters since creation (relaxed reads of atomics: each exact, not a snapshot). */
typedef struct rdl_breaker_stats {
    int state;
    uint64_t successful;        /* recorded, not failures, not ignored */
    uint64_t failed;
    uint64_t ignored;
    uint64_t slow;              /* successful or failed calls at least slow_call_ns long */
    uint64_t not_permitted;     /* acquires refused */
    uint64_t transitions[RDL_BREAKER_STATE_COUNT];   /* transitions into each state */
    /* the current window (CLOSED / METRICS_ONLY) */
    uint64_t window_calls, window_failed, window_slow;
    double failure_rate;        /* percent; -1 below minimum_calls */
    double slow_rate;
} rdl_breaker_stats_t;

/*
 * Makes a breaker. name is copied (for callbacks, logs, metrics). 0,
 * RDL_EINVAL (opts out of range: window size, rates outside 0..100,
 * permitted_half_open 0 or above 4095, initial HALF_OPEN/OPEN) or RDL_ENOMEM.
 */
RDL_EXTERN int rdl_breaker_new(const char *name, const rdl_breaker_opts_t *opts,
                               rdl_breaker_t **out);
RDL_EXTERN void rdl_breaker_free(rdl_breaker_t *b);
RDL_EXTERN const char *rdl_breaker_name(const rdl_breaker_t *b);

/*
 * Asks to make a call: 0 and a permit, or RDL_EBUSY (open, forced open, or
 * HALF_OPEN with every trial permit taken): the call must not be made and
 * nothing is recorded for it. Lock-free.
 */
RDL_EXTERN int rdl_breaker_acquire(rdl_breaker_t *b, rdl_breaker_permit_t *p);
/*
 * Records the outcome (an rdl_outcome_t) of a permitted call that took
 * duration_ns. A result from before a transition is dropped, so a late answer
 * cannot move the new state. Every permit must be recorded or released once.
 */
RDL_EXTERN void rdl_breaker_record(rdl_breaker_t *b, const rdl_breaker_permit_t *p, int kind,
                                   uint64_t duration_ns);
/* Gives a permit back without an outcome (the call was not made after all). */
RDL_EXTERN void rdl_breaker_release(rdl_breaker_t *b, const rdl_breaker_permit_t *p);

/* The state; with automatic_half_open, an OPEN breaker whose wait is over turns HALF_OPEN here. */
RDL_EXTERN int rdl_breaker_state(rdl_breaker_t *b);
/* Applies time-driven transitions (automatic OPEN -> HALF_OPEN, half-open timeout). */
RDL_EXTERN void rdl_breaker_tick(rdl_breaker_t *b);
/* Nanoseconds until an OPEN breaker admits trial calls (0 when not OPEN). For Retry-After. */
RDL_EXTERN uint64_t rdl_breaker_retry_after_ns(rdl_breaker_t *b);

/* Manual transitions (resilience4j's transitionTo...): each clears the window. */
RDL_EXTERN void rdl_breaker_force_open(rdl_breaker_t *b);
RDL_EXTERN void rdl_breaker_disable(rdl_breaker_t *b);
RDL_EXTERN void rdl_breaker_metrics_only(rdl_breaker_t *b);
RDL_EXTERN void rdl_breaker_force_closed(rdl_breaker_t *b); /* to CLOSED, window cleared */
RDL_EXTERN void rdl_breaker_reset(rdl_breaker_t *b);       /* to CLOSED, window and opening streak cleared */

RDL_EXTERN void rdl_breaker_stats(rdl_breaker_t *b, rdl_breaker_stats_t *out);

/* ---- bulkhead ---------------------------------------------------------- */

/*
 * At most max_concurrent calls at a time. try_acquire never blocks (the I/O
 * threads use it); acquire waits up to wait_ns for a slot (worker threads).
 * Thread-safe; the try path is lock-free, a waiter sleeps on a condition
 * variable only while the bulkhead is full.
 */
typedef struct rdl_bulkhead rdl_bulkhead_t;

typedef struct rdl_bulkhead_stats {
    int64_t in_use;
    int64_t max_concurrent;
    uint64_t admitted;
    uint64_t rejected;          /* full (after waiting, for acquire) */
} rdl_bulkhead_stats_t;

/* 0, RDL_EINVAL (max_concurrent < 1) or RDL_ENOMEM. */
RDL_EXTERN int rdl_bulkhead_new(int64_t max_concurrent, rdl_bulkhead_t **out);
RDL_EXTERN void rdl_bulkhead_free(rdl_bulkhead_t *bh);
/* 0, or RDL_EBUSY when full. */
RDL_EXTERN int rdl_bulkhead_try_acquire(rdl_bulkhead_t *bh);
/* 0, or RDL_EBUSY when still full after wait_ns. Blocks: not on an I/O thread. */
RDL_EXTERN int rdl_bulkhead_acquire(rdl_bulkhead_t *bh, uint64_t wait_ns);
RDL_EXTERN void rdl_bulkhead_release(rdl_bulkhead_t *bh);
RDL_EXTERN void rdl_bulkhead_stats(rdl_bulkhead_t *bh, rdl_bulkhead_stats_t *out);

/* ---- retry ------------------------------------------------------------- */

/*
 * Retries: attempt n (0 = first retry) sleeps a uniform random time in
 * [0, min(cap, base * 2^n)] (full jitter), up to max_attempts calls in all
 * (the first included), only for idempotent requests unless allowed, only for
 * kinds in retry_kinds, only while the deadline leaves room for the backoff,
 * and only while the retry budget has a token.
 */
typedef struct rdl_retry_policy {
    uint32_t max_attempts;      /* calls in all, the first included; 1 = no retry; 3 */
    uint64_t base_ns;           /* 50 ms */
    uint64_t cap_ns;            /* 1 s */
    uint32_t retry_kinds;       /* RDL_OUTCOME_BIT mask; connect, timeout, 429, 5xx */
    bool retry_non_idempotent;  /* false: POST/PATCH are never retried */
} rdl_retry_policy_t;

RDL_EXTERN void rdl_retry_policy_default(rdl_retry_policy_t *p);

/*
 * The backoff before retry n (0-based), given a uniform random 64-bit value
 * (rdl_rand64(); tests choose it): rnd scaled into [0, min(cap, base * 2^n)].
 */
RDL_EXTERN uint64_t rdl_retry_backoff_ns(const rdl_retry_policy_t *p, uint32_t n, uint64_t rnd);

/*
 * A retry budget (Finagle's shape): every first attempt deposits ratio of a
 * token, every retry withdraws one; min_per_sec tokens a second trickle in so
 * a quiet client can still retry. Retries therefore stay below ratio of the
 * traffic (plus the floor) however many callers fail at once. Lock-free.
 */
typedef struct rdl_retry_budget {
    _Atomic int64_t milli;      /* balance in thousandths of a token */
    _Atomic uint64_t last_ns;   /* last floor refill */
    int64_t ratio_milli;        /* deposit per first attempt */
    int64_t floor_milli_per_s;
    int64_t max_milli;          /* balance cap */
    _Atomic uint64_t exhausted; /* retries refused by the budget */
    rdl_clock_fn clock;
    void *clock_arg;
} rdl_retry_budget_t;

/* ratio 0..1 (0.2 = retries up to 20 % of calls), min_per_sec >= 0; clock NULL = rdl_now_ns. */
RDL_EXTERN void rdl_retry_budget_init(rdl_retry_budget_t *rb, double ratio, double min_per_sec,
                                      rdl_clock_fn clock, void *clock_arg);
RDL_EXTERN void rdl_retry_budget_deposit(rdl_retry_budget_t *rb);
/* Takes a token for one retry: true, or false (counted in exhausted). */
RDL_EXTERN bool rdl_retry_budget_withdraw(rdl_retry_budget_t *rb);

/*
 * Whether to retry after a failed call: attempts made so far (>= 1), the
 * outcome kind, whether the request is idempotent, the time left before the
 * deadline and the backoff planned. Takes a budget token when it says yes
 * (budget may be NULL: unlimited).
 */
RDL_EXTERN bool rdl_retry_should(const rdl_retry_policy_t *p, rdl_retry_budget_t *rb,
                                 uint32_t attempts, int kind, bool idempotent,
                                 uint64_t remaining_ns, uint64_t backoff_ns);

#endif
