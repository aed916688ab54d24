/*
 * test_breaker.c: the circuit breaker's state machine as a table of scenarios
 * driven by an injected clock (thresholds, minimum calls, slow calls,
 * half-open success and failure, exponential waits, forced states, late
 * results), the retry backoff and budget, the bulkhead, and stress tests
 * with many threads whose counts must come out exact (run under TSan too).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <cmocka.h>

#include "redline/breaker.h"

#define MS 1000000ull

static uint64_t fake_now;

static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

typedef struct changes {
    int n;
    int from[32], to[32];
} changes_t;

static void on_change(rdl_breaker_t *b, int from, int to, void *arg)
{
    changes_t *c = arg;
    if (c->n < 32) {
        c->from[c->n] = from;
        c->to[c->n] = to;
    }
    c->n++;
}

/* ---- the scenario table -------------------------------------------------
 * Steps, separated by spaces:
 *   o  a call that succeeds          f  a call that fails (5xx)
 *   s  a slow success                S  a slow failure
 *   c  a canceled call (ignored)     4  a 4xx answer (success by default)
 *   x  acquire must be refused       +N advance the clock N ms
 *   h  acquire and hold a permit     H  record the held permit as a failure
 *   F/D/M/C/R  force open / disable / metrics only / close / reset
 *   =state  the state must be this now (closed, open, half_open, ...)
 * Every call step asserts that acquire was permitted.
 */
typedef struct scenario {
    const char *name;
    rdl_window_type_t window;
    uint32_t size, min_calls, half_open;
    double failure_rate, slow_rate;
    uint64_t wait_ms;
    double multiplier;
    uint64_t wait_max_ms, max_half_open_ms;
    const char *steps;
    const char *transitions;    /* expected "from>to" list, comma separated */
} scenario_t;

static const scenario_t scenarios[] = {
    { "below minimum calls never trips", RDL_WINDOW_COUNT, 10, 5, 2, 50, 100, 1000, 1, 0, 0,
      "f f f f =closed", "" },
    { "opens at the minimum when rate >= threshold", RDL_WINDOW_COUNT, 10, 5, 2, 50, 100, 1000,
      1, 0, 0, "f f f f f =open x", "closed>open" },
    { "rate exactly at threshold opens (>=)", RDL_WINDOW_COUNT, 4, 4, 2, 50, 100, 1000, 1, 0, 0,
      "o f o f =open", "closed>open" },
    { "rate under threshold stays closed", RDL_WINDOW_COUNT, 4, 4, 2, 50, 100, 1000, 1, 0, 0,
      "o o o f o o o f =closed", "" },
    { "a success can complete the minimum and trip", RDL_WINDOW_COUNT, 10, 4, 2, 50, 100, 1000,
      1, 0, 0, "f f o =closed o =open", "closed>open" },
    { "minimum capped by a count window's size", RDL_WINDOW_COUNT, 3, 100, 2, 50, 100, 1000, 1,
      0, 0, "f f =closed f =open", "closed>open" },
    { "old calls slide out of a count window", RDL_WINDOW_COUNT, 4, 4, 2, 75, 100, 1000, 1, 0, 0,
      "f f o o o o f f o =closed", "" },
    { "slow calls trip on the slow rate", RDL_WINDOW_COUNT, 4, 4, 2, 50, 50, 1000, 1, 0, 0,
      "s o s =closed o =open", "closed>open" },
    { "slow failures count as slow and failed", RDL_WINDOW_COUNT, 2, 2, 2, 100, 100, 1000, 1, 0,
      0, "S S =open", "closed>open" },
    { "ignored calls count neither way", RDL_WINDOW_COUNT, 4, 2, 2, 50, 100, 1000, 1, 0, 0,
      "c c c c c o =closed f =open", "closed>open" },
    { "4xx is a success by default", RDL_WINDOW_COUNT, 4, 2, 2, 50, 100, 1000, 1, 0, 0,
      "4 4 4 4 =closed", "" },
    { "open refuses until the wait, then half-open", RDL_WINDOW_COUNT, 2, 2, 2, 50, 100, 1000, 1,
      0, 0, "f f =open x +999 x +1 o =half_open", "closed>open,open>half_open" },
    { "half-open closes when trials succeed", RDL_WINDOW_COUNT, 2, 2, 2, 50, 100, 1000, 1, 0, 0,
      "f f +1000 o =half_open o =closed f =closed", "closed>open,open>half_open,half_open>closed" },
    { "half-open reopens when trials fail", RDL_WINDOW_COUNT, 2, 2, 2, 50, 100, 1000, 1, 0, 0,
      "f f +1000 o f =open x", "closed>open,open>half_open,half_open>open" },
    { "half-open permits only the trial calls", RDL_WINDOW_COUNT, 2, 2, 2, 50, 100, 1000, 1, 0, 0,
      "f f +1000 h h x H =half_open x", "closed>open,open>half_open" },
    { "half-open ignored calls give the permit back", RDL_WINDOW_COUNT, 2, 2, 1, 50, 100, 1000,
      1, 0, 0, "f f +1000 c c o =closed", "closed>open,open>half_open,half_open>closed" },
    { "half-open times out back to open", RDL_WINDOW_COUNT, 2, 2, 3, 50, 100, 1000, 1, 0, 500,
      "f f +1000 o =half_open +500 x =open", "closed>open,open>half_open,half_open>open" },
    { "exponential wait grows and is capped", RDL_WINDOW_COUNT, 2, 2, 1, 50, 100, 1000, 2, 3000,
      0, "f f +1000 f =open +1999 x +1 f =open +2999 x +1 f =open +2999 x +1 o =closed",
      "closed>open,open>half_open,half_open>open,open>half_open,half_open>open,"
      "open>half_open,half_open>open,open>half_open,half_open>closed" },
    { "closing resets the exponential streak", RDL_WINDOW_COUNT, 2, 2, 1, 50, 100, 1000, 2, 0, 0,
      "f f +1000 o =closed f f =open +999 x +1 o =closed",
      "closed>open,open>half_open,half_open>closed,closed>open,open>half_open,half_open>closed" },
    { "forced open refuses and never leaves by itself", RDL_WINDOW_COUNT, 2, 2, 1, 50, 100,
      1000, 1, 0, 0, "F x +100000 x =forced_open C o =closed", "closed>forced_open,forced_open>closed" },
    { "disabled passes everything and never trips", RDL_WINDOW_COUNT, 2, 2, 1, 50, 100, 1000, 1,
      0, 0, "D f f f f =disabled R =closed", "closed>disabled,disabled>closed" },
    { "metrics only counts but never trips", RDL_WINDOW_COUNT, 2, 2, 1, 50, 100, 1000, 1, 0, 0,
      "M f f f f =metrics_only", "closed>metrics_only" },
    { "time window forgets old seconds", RDL_WINDOW_TIME, 2, 3, 1, 50, 100, 1000, 1, 0, 0,
      "f f +2000 o =closed o =closed f =closed", "" },
    { "time window trips within its seconds", RDL_WINDOW_TIME, 2, 3, 1, 50, 100, 1000, 1, 0, 0,
      "f +1000 o f =open", "closed>open" },
    { "time window does not cap the minimum", RDL_WINDOW_TIME, 1, 4, 1, 50, 100, 1000, 1, 0, 0,
      "f f f =closed f =open", "closed>open" },
};

static int state_named(const char *s)
{
    for (int i = 0; i < RDL_BREAKER_STATE_COUNT; i++)
        if (strcmp(s, rdl_breaker_state_name(i)) == 0)
            return i;
    fail_msg("unknown state name '%s'", s);
    return -1;
}

static void run_scenario(const scenario_t *sc)
{
    rdl_breaker_opts_t o;
    rdl_breaker_opts_default(&o);
    changes_t ch = { 0 };
    o.window_type = sc->window;
    o.window_size = sc->size;
    o.minimum_calls = sc->min_calls;
    o.permitted_half_open = sc->half_open;
    o.failure_rate = sc->failure_rate;
    o.slow_rate = sc->slow_rate;
    o.slow_call_ns = 100 * MS;
    o.wait_open_ns = sc->wait_ms * MS;
    o.wait_multiplier = sc->multiplier;
    o.wait_open_max_ns = sc->wait_max_ms * MS;
    o.max_half_open_ns = sc->max_half_open_ms * MS;
    o.clock = fake_clock;
    o.on_change = on_change;
    o.on_change_arg = &ch;
    fake_now = 1000000 * MS;
    rdl_breaker_t *b;
    assert_int_equal(rdl_breaker_new(sc->name, &o, &b), 0);

    char steps[512];
    snprintf(steps, sizeof(steps), "%s", sc->steps);
    rdl_breaker_permit_t held = { 0 };
    int nheld = 0;
    for (char *save = NULL, *t = strtok_r(steps, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        rdl_breaker_permit_t p;
        int kind = -1;
        uint64_t dur = MS;
        switch (t[0]) {
        case 'o': kind = RDL_OUTCOME_OK; break;
        case 'f': kind = RDL_OUTCOME_HTTP_5XX; break;
        case 's': kind = RDL_OUTCOME_OK; dur = 100 * MS; break;
        case 'S': kind = RDL_OUTCOME_TIMEOUT; dur = 200 * MS; break;
        case 'c': kind = RDL_OUTCOME_CANCELED; break;
        case '4': kind = RDL_OUTCOME_HTTP_4XX; break;
        case 'x':
            if (rdl_breaker_acquire(b, &p) != RDL_EBUSY)
                fail_msg("%s: step x: acquire permitted in state %s", sc->name,
                         rdl_breaker_state_name(rdl_breaker_state(b)));
            break;
        case '+': fake_now += strtoull(t + 1, NULL, 10) * MS; break;
        case 'h':
            if (rdl_breaker_acquire(b, &held) != 0)
                fail_msg("%s: step h: refused", sc->name);
            nheld++;
            break;
        case 'H':
            assert_true(nheld > 0);
            rdl_breaker_record(b, &held, RDL_OUTCOME_HTTP_5XX, MS);
            nheld--;
            break;
        case 'F': rdl_breaker_force_open(b); break;
        case 'D': rdl_breaker_disable(b); break;
        case 'M': rdl_breaker_metrics_only(b); break;
        case 'C': rdl_breaker_force_closed(b); break;
        case 'R': rdl_breaker_reset(b); break;
        case '=':
            if (rdl_breaker_state(b) != state_named(t + 1))
                fail_msg("%s: expected %s, state is %s", sc->name, t + 1,
                         rdl_breaker_state_name(rdl_breaker_state(b)));
            break;
        default: fail_msg("bad step '%s'", t);
        }
        if (kind >= 0) {
            if (rdl_breaker_acquire(b, &p) != 0)
                fail_msg("%s: step %s refused in state %s", sc->name, t,
                         rdl_breaker_state_name(rdl_breaker_state(b)));
            rdl_breaker_record(b, &p, kind, dur);
        }
    }
    char got[512] = "";
    for (int i = 0; i < ch.n && i < 32; i++) {
        size_t len = strlen(got);
        snprintf(got + len, sizeof(got) - len, "%s%s>%s", i ? "," : "",
                 rdl_breaker_state_name(ch.from[i]), rdl_breaker_state_name(ch.to[i]));
    }
    if (strcmp(got, sc->transitions) != 0)
        fail_msg("%s: transitions '%s', expected '%s'", sc->name, got, sc->transitions);
    rdl_breaker_stats_t st;
    rdl_breaker_stats(b, &st);
    uint64_t total = 0;
    for (int i = 0; i < RDL_BREAKER_STATE_COUNT; i++)
        total += st.transitions[i];
    assert_int_equal(total, (uint64_t)ch.n);
    rdl_breaker_free(b);
}

static void test_scenarios(void **state)
{
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        run_scenario(&scenarios[i]);
}

/* ---- counters, rates, late results, retry-after -------------------------- */

static rdl_breaker_t *small_breaker(uint32_t size, uint32_t min)
{
    rdl_breaker_opts_t o;
    rdl_breaker_opts_default(&o);
    o.window_size = size;
    o.minimum_calls = min;
    o.wait_open_ns = 1000 * MS;
    o.permitted_half_open = 2;
    o.slow_call_ns = 100 * MS;
    o.clock = fake_clock;
    rdl_breaker_t *b;
    assert_int_equal(rdl_breaker_new("t", &o, &b), 0);
    return b;
}

static void call(rdl_breaker_t *b, int kind, uint64_t dur)
{
    rdl_breaker_permit_t p;
    assert_int_equal(rdl_breaker_acquire(b, &p), 0);
    rdl_breaker_record(b, &p, kind, dur);
}

static void test_stats(void **state)
{
    fake_now = 5000 * MS;
    rdl_breaker_t *b = small_breaker(10, 10);
    call(b, RDL_OUTCOME_OK, MS);
    call(b, RDL_OUTCOME_OK, 150 * MS);
    call(b, RDL_OUTCOME_CONNECT, MS);
    call(b, RDL_OUTCOME_CANCELED, MS);
    rdl_breaker_stats_t st;
    rdl_breaker_stats(b, &st);
    assert_int_equal(st.successful, 2);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.ignored, 1);
    assert_int_equal(st.slow, 1);
    assert_int_equal(st.window_calls, 3);
    assert_int_equal(st.window_failed, 1);
    assert_int_equal(st.window_slow, 1);
    assert_true(st.failure_rate < 0);       /* below the minimum: undefined */
    for (int i = 0; i < 7; i++)
        call(b, RDL_OUTCOME_OK, MS);
    rdl_breaker_stats(b, &st);
    assert_int_equal(st.window_calls, 10);
    assert_true(st.failure_rate > 9.99 && st.failure_rate < 10.01);
    assert_true(st.slow_rate > 9.99 && st.slow_rate < 10.01);
    rdl_breaker_free(b);
}

static void test_late_result_dropped(void **state)
{
    fake_now = 5000 * MS;
    rdl_breaker_t *b = small_breaker(2, 2);
    rdl_breaker_permit_t late;
    assert_int_equal(rdl_breaker_acquire(b, &late), 0);
    call(b, RDL_OUTCOME_HTTP_5XX, MS);
    call(b, RDL_OUTCOME_HTTP_5XX, MS);
    assert_int_equal(rdl_breaker_state(b), RDL_BREAKER_OPEN);
    assert_int_equal(rdl_breaker_retry_after_ns(b), 1000 * MS);
    fake_now += 400 * MS;
    assert_int_equal(rdl_breaker_retry_after_ns(b), 600 * MS);
    fake_now += 600 * MS;
    rdl_breaker_permit_t p1, p2;
    assert_int_equal(rdl_breaker_acquire(b, &p1), 0);
    assert_int_equal(rdl_breaker_state(b), RDL_BREAKER_HALF_OPEN);
    /* The call that started while CLOSED fails now: it must not count as a trial. */
    rdl_breaker_record(b, &late, RDL_OUTCOME_HTTP_5XX, MS);
    assert_int_equal(rdl_breaker_acquire(b, &p2), 0);
    rdl_breaker_record(b, &p1, RDL_OUTCOME_OK, MS);
    assert_int_equal(rdl_breaker_state(b), RDL_BREAKER_HALF_OPEN);
    rdl_breaker_record(b, &p2, RDL_OUTCOME_OK, MS);
    assert_int_equal(rdl_breaker_state(b), RDL_BREAKER_CLOSED);
    rdl_breaker_stats_t st;
    rdl_breaker_stats(b, &st);
    assert_int_equal(st.failed, 3);         /* the late failure still counts in the totals */
    assert_int_equal(st.window_calls, 0);
    rdl_breaker_free(b);
}

static void test_automatic_half_open(void **state)
{
    rdl_breaker_opts_t o;
    rdl_breaker_opts_default(&o);
    o.window_size = o.minimum_calls = 1;
    o.wait_open_ns = 10 * MS;
    o.automatic_half_open = true;
    o.clock = fake_clock;
    fake_now = 5000 * MS;
    rdl_breaker_t *b;
    assert_int_equal(rdl_breaker_new("auto", &o, &b), 0);
    call(b, RDL_OUTCOME_TIMEOUT, MS);
    assert_int_equal(rdl_breaker_state(b), RDL_BREAKER_OPEN);
    fake_now += 10 * MS;
    assert_int_equal(rdl_breaker_state(b), RDL_BREAKER_HALF_OPEN);   /* no acquire needed */
    rdl_breaker_free(b);
}

static void test_configured_failures(void **state)
{
    rdl_breaker_opts_t o;
    rdl_breaker_opts_default(&o);
    o.window_size = o.minimum_calls = 2;
    o.failure_kinds = RDL_OUTCOME_BIT(RDL_OUTCOME_HTTP_4XX);
    o.ignored_kinds = RDL_OUTCOME_BIT(RDL_OUTCOME_HTTP_5XX);
    o.clock = fake_clock;
    rdl_breaker_t *b;
    assert_int_equal(rdl_breaker_new("kinds", &o, &b), 0);
    call(b, RDL_OUTCOME_HTTP_5XX, MS);
    call(b, RDL_OUTCOME_HTTP_5XX, MS);
    call(b, RDL_OUTCOME_TIMEOUT, MS);       /* not in the mask: a success */
    assert_int_equal(rdl_breaker_state(b), RDL_BREAKER_CLOSED);
    call(b, RDL_OUTCOME_HTTP_4XX, MS);
    assert_int_equal(rdl_breaker_state(b), RDL_BREAKER_OPEN);
    rdl_breaker_free(b);
}

static void test_invalid_opts(void **state)
{
    static const struct {
        const char *what;
        int field;
        double value;
    } bad[] = {
        { "window 0", 0, 0 }, { "count window 65537", 0, 65537 }, { "minimum 0", 1, 0 },
        { "failure rate 101", 2, 101 }, { "slow rate -1", 3, -1 }, { "half-open 0", 4, 0 },
        { "half-open 4096", 4, 4096 }, { "multiplier 0.5", 5, 0.5 }, { "initial open", 6, 1 },
        { "initial half-open", 6, 2 }, { "time window 513", 7, 513 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rdl_breaker_opts_t o;
        rdl_breaker_opts_default(&o);
        switch (bad[i].field) {
        case 0: o.window_size = (uint32_t)bad[i].value; break;
        case 1: o.minimum_calls = (uint32_t)bad[i].value; break;
        case 2: o.failure_rate = bad[i].value; break;
        case 3: o.slow_rate = bad[i].value; break;
        case 4: o.permitted_half_open = (uint32_t)bad[i].value; break;
        case 5: o.wait_multiplier = bad[i].value; break;
        case 6: o.initial = (rdl_breaker_state_t)bad[i].value; break;
        case 7: o.window_type = RDL_WINDOW_TIME; o.window_size = (uint32_t)bad[i].value; break;
        }
        rdl_breaker_t *b = NULL;
        if (rdl_breaker_new("bad", &o, &b) != RDL_EINVAL)
            fail_msg("%s accepted", bad[i].what);
        assert_null(b);
    }
    rdl_breaker_free(NULL);
}

static void test_outcome_of_status(void **state)
{
    assert_int_equal(rdl_outcome_of_status(200), RDL_OUTCOME_OK);
    assert_int_equal(rdl_outcome_of_status(304), RDL_OUTCOME_OK);
    assert_int_equal(rdl_outcome_of_status(404), RDL_OUTCOME_HTTP_4XX);
    assert_int_equal(rdl_outcome_of_status(429), RDL_OUTCOME_HTTP_429);
    assert_int_equal(rdl_outcome_of_status(503), RDL_OUTCOME_HTTP_5XX);
    assert_int_equal(rdl_outcome_of_status(0), RDL_OUTCOME_OTHER);
    assert_string_equal(rdl_outcome_name(RDL_OUTCOME_TIMEOUT), "timeout");
    assert_string_equal(rdl_outcome_name(99), "other");
    assert_string_equal(rdl_breaker_state_name(RDL_BREAKER_HALF_OPEN), "half_open");
}

/* ---- retry --------------------------------------------------------------- */

static void test_backoff(void **state)
{
    rdl_retry_policy_t p;
    rdl_retry_policy_default(&p);
    p.base_ns = 100;
    p.cap_ns = 1000;
    assert_int_equal(rdl_retry_backoff_ns(&p, 0, 0), 0);
    assert_int_equal(rdl_retry_backoff_ns(&p, 0, UINT64_MAX), 100);
    assert_int_equal(rdl_retry_backoff_ns(&p, 1, UINT64_MAX), 200);
    assert_int_equal(rdl_retry_backoff_ns(&p, 3, UINT64_MAX), 800);
    assert_int_equal(rdl_retry_backoff_ns(&p, 4, UINT64_MAX), 1000);   /* capped */
    assert_int_equal(rdl_retry_backoff_ns(&p, 60, UINT64_MAX), 1000);
    assert_int_equal(rdl_retry_backoff_ns(&p, 1, UINT64_MAX / 2), 100);  /* half of [0, 200] */
    /* full jitter: spread over the whole range */
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t v = rdl_retry_backoff_ns(&p, 2, rdl_rand64());
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_true(lo < 40 && hi > 360 && hi <= 400);
}

static void test_retry_should(void **state)
{
    rdl_retry_policy_t p;
    rdl_retry_policy_default(&p);
    uint64_t s = 1000 * MS;
    assert_true(rdl_retry_should(&p, NULL, 1, RDL_OUTCOME_CONNECT, true, s, MS));
    assert_true(rdl_retry_should(&p, NULL, 2, RDL_OUTCOME_HTTP_5XX, true, s, MS));
    assert_false(rdl_retry_should(&p, NULL, 3, RDL_OUTCOME_HTTP_5XX, true, s, MS));  /* max 3 */
    assert_false(rdl_retry_should(&p, NULL, 1, RDL_OUTCOME_HTTP_5XX, false, s, MS)); /* POST */
    assert_false(rdl_retry_should(&p, NULL, 1, RDL_OUTCOME_HTTP_4XX, true, s, MS));
    assert_false(rdl_retry_should(&p, NULL, 1, RDL_OUTCOME_CANCELED, true, s, MS));
    assert_false(rdl_retry_should(&p, NULL, 1, RDL_OUTCOME_CONNECT, true, MS, MS));  /* no time */
    p.retry_non_idempotent = true;
    assert_true(rdl_retry_should(&p, NULL, 1, RDL_OUTCOME_HTTP_5XX, false, s, MS));
}

static void test_budget(void **state)
{
    rdl_retry_budget_t rb;
    fake_now = 1000 * MS;
    rdl_retry_budget_init(&rb, 0.2, 0, fake_clock, NULL);
    assert_false(rdl_retry_budget_withdraw(&rb));       /* nothing deposited yet */
    for (int i = 0; i < 10; i++)
        rdl_retry_budget_deposit(&rb);                  /* 10 calls x 0.2 = 2 retries */
    assert_true(rdl_retry_budget_withdraw(&rb));
    assert_true(rdl_retry_budget_withdraw(&rb));
    assert_false(rdl_retry_budget_withdraw(&rb));
    assert_int_equal(atomic_load(&rb.exhausted), 2);
    for (int i = 0; i < 1000; i++)
        rdl_retry_budget_deposit(&rb);                  /* capped at 10 tokens */
    int n = 0;
    while (rdl_retry_budget_withdraw(&rb))
        n++;
    assert_int_equal(n, 10);

    rdl_retry_budget_init(&rb, 0, 2, fake_clock, NULL);   /* floor: 2 a second */
    assert_true(rdl_retry_budget_withdraw(&rb));
    assert_true(rdl_retry_budget_withdraw(&rb));
    assert_false(rdl_retry_budget_withdraw(&rb));
    fake_now += 500 * MS;
    assert_true(rdl_retry_budget_withdraw(&rb));
    assert_false(rdl_retry_budget_withdraw(&rb));
    rdl_retry_policy_t p;
    rdl_retry_policy_default(&p);
    assert_false(rdl_retry_should(&p, &rb, 1, RDL_OUTCOME_CONNECT, true, 1000 * MS, MS));
}

/* ---- bulkhead -------------------------------------------------------------- */

static void test_bulkhead(void **state)
{
    rdl_bulkhead_t *bh;
    assert_int_equal(rdl_bulkhead_new(0, &bh), RDL_EINVAL);
    assert_int_equal(rdl_bulkhead_new(2, &bh), 0);
    assert_int_equal(rdl_bulkhead_try_acquire(bh), 0);
    assert_int_equal(rdl_bulkhead_acquire(bh, 10 * MS), 0);
    assert_int_equal(rdl_bulkhead_try_acquire(bh), RDL_EBUSY);
    assert_int_equal(rdl_bulkhead_acquire(bh, 5 * MS), RDL_EBUSY);   /* waits, then gives up */
    rdl_bulkhead_release(bh);
    assert_int_equal(rdl_bulkhead_try_acquire(bh), 0);
    rdl_bulkhead_stats_t st;
    rdl_bulkhead_stats(bh, &st);
    assert_int_equal(st.in_use, 2);
    assert_int_equal(st.admitted, 3);
    assert_int_equal(st.rejected, 2);
    rdl_bulkhead_release(bh);
    rdl_bulkhead_release(bh);
    rdl_bulkhead_free(bh);
    rdl_bulkhead_free(NULL);
}

/* ---- stress: many threads, exact counts -------------------------------------- */

#define THREADS 8
#define CALLS 20000

typedef struct stress {
    rdl_breaker_t *b;
    rdl_bulkhead_t *bh;
    atomic_int in_half_open, max_half_open;
    atomic_int in_bulkhead, max_bulkhead;
    atomic_ullong permitted, refused, kinds[RDL_OUTCOME_COUNT], bh_ok, bh_busy;
    atomic_int changes;
    int seed;
} stress_t;

static void stress_change(rdl_breaker_t *b, int from, int to, void *arg)
{
    stress_t *s = arg;
    atomic_fetch_add(&s->changes, 1);
}

static void *stress_thread(void *arg)
{
    stress_t *s = arg;
    unsigned seed = (unsigned)atomic_fetch_add(&s->changes, 0) + (unsigned)(uintptr_t)&seed;
    for (int i = 0; i < CALLS; i++) {
        rdl_breaker_permit_t p;
        if (rdl_breaker_acquire(s->b, &p) != 0) {
            atomic_fetch_add(&s->refused, 1);
        } else {
            atomic_fetch_add(&s->permitted, 1);
            bool trial = p.state == RDL_BREAKER_HALF_OPEN;
            if (trial) {
                int n = atomic_fetch_add(&s->in_half_open, 1) + 1;
                int m = atomic_load(&s->max_half_open);
                while (n > m && !atomic_compare_exchange_weak(&s->max_half_open, &m, n))
                    ;
            }
            int kind = (int)(rand_r(&seed) % 4 == 0 ? RDL_OUTCOME_HTTP_5XX
                             : rand_r(&seed) % 16 == 0 ? RDL_OUTCOME_CANCELED : RDL_OUTCOME_OK);
            atomic_fetch_add(&s->kinds[kind], 1);
            if (trial)
                atomic_fetch_sub(&s->in_half_open, 1);
            rdl_breaker_record(s->b, &p, kind, 1000);
        }
        if (rdl_bulkhead_try_acquire(s->bh) == 0) {
            int n = atomic_fetch_add(&s->in_bulkhead, 1) + 1;
            int m = atomic_load(&s->max_bulkhead);
            while (n > m && !atomic_compare_exchange_weak(&s->max_bulkhead, &m, n))
                ;
            atomic_fetch_add(&s->bh_ok, 1);
            atomic_fetch_sub(&s->in_bulkhead, 1);
            rdl_bulkhead_release(s->bh);
        } else {
            atomic_fetch_add(&s->bh_busy, 1);
        }
    }
    return NULL;
}

static void run_stress(stress_t *s)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, stress_thread, s), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
}

static void test_stress_counts(void **state)
{
    /* METRICS_ONLY: every call passes, so window and totals can be checked exactly. */
    static stress_t s;
    memset(&s, 0, sizeof(s));
    rdl_breaker_opts_t o;
    rdl_breaker_opts_default(&o);
    o.window_size = 64;
    o.initial = RDL_BREAKER_METRICS_ONLY;
    assert_int_equal(rdl_breaker_new("stress", &o, &s.b), 0);
    assert_int_equal(rdl_bulkhead_new(3, &s.bh), 0);
    run_stress(&s);
    rdl_breaker_stats_t st;
    rdl_breaker_stats(s.b, &st);
    assert_int_equal(atomic_load(&s.permitted), THREADS * CALLS);
    assert_int_equal(st.successful, atomic_load(&s.kinds[RDL_OUTCOME_OK]));
    assert_int_equal(st.failed, atomic_load(&s.kinds[RDL_OUTCOME_HTTP_5XX]));
    assert_int_equal(st.ignored, atomic_load(&s.kinds[RDL_OUTCOME_CANCELED]));
    assert_int_equal(st.window_calls, 64);          /* ring and counters agree */
    assert_true(st.window_failed <= 64);
    rdl_bulkhead_stats_t bs;
    rdl_bulkhead_stats(s.bh, &bs);
    assert_int_equal(bs.in_use, 0);
    assert_int_equal(bs.admitted, atomic_load(&s.bh_ok));
    assert_int_equal(bs.rejected, atomic_load(&s.bh_busy));
    assert_int_equal(bs.admitted + bs.rejected, THREADS * CALLS);
    assert_true(atomic_load(&s.max_bulkhead) <= 3);
    rdl_bulkhead_free(s.bh);
    rdl_breaker_free(s.b);
}

static void test_stress_transitions(void **state)
{
    /* A breaker that opens and half-opens all the time under 8 threads. */
    static stress_t s;
    memset(&s, 0, sizeof(s));
    rdl_breaker_opts_t o;
    rdl_breaker_opts_default(&o);
    o.window_size = 8;
    o.minimum_calls = 4;
    o.failure_rate = 30;
    o.permitted_half_open = 3;
    o.wait_open_ns = 20000;                     /* 20 us: many cycles */
    o.on_change = stress_change;
    o.on_change_arg = &s;
    assert_int_equal(rdl_breaker_new("flap", &o, &s.b), 0);
    assert_int_equal(rdl_bulkhead_new(2, &s.bh), 0);
    run_stress(&s);
    rdl_breaker_stats_t st;
    rdl_breaker_stats(s.b, &st);
    assert_int_equal(atomic_load(&s.permitted) + atomic_load(&s.refused), THREADS * CALLS);
    assert_int_equal(st.not_permitted, atomic_load(&s.refused));
    assert_int_equal(st.successful + st.failed + st.ignored, atomic_load(&s.permitted));
    assert_int_equal(st.failed, atomic_load(&s.kinds[RDL_OUTCOME_HTTP_5XX]));
    uint64_t total = 0;
    for (int i = 0; i < RDL_BREAKER_STATE_COUNT; i++)
        total += st.transitions[i];
    assert_int_equal(total, (uint64_t)atomic_load(&s.changes));
    assert_true(st.transitions[RDL_BREAKER_OPEN] > 0);
    /* never more trial calls at once than permitted */
    assert_true(atomic_load(&s.max_half_open) <= 3);
    assert_true(atomic_load(&s.max_bulkhead) <= 2);
    rdl_bulkhead_free(s.bh);
    rdl_breaker_free(s.b);
}

typedef struct waiter {
    rdl_bulkhead_t *bh;
    atomic_int got;
} waiter_t;

static void *bulkhead_waiter(void *arg)
{
    waiter_t *w = arg;
    for (int i = 0; i < 200; i++) {
        if (rdl_bulkhead_acquire(w->bh, 5000 * MS) == 0) {
            atomic_fetch_add(&w->got, 1);
            rdl_bulkhead_release(w->bh);
        }
    }
    return NULL;
}

static void test_bulkhead_waiters(void **state)
{
    /* Waiters on a bulkhead of 1 are woken by releases: every acquire succeeds. */
    waiter_t w = { 0 };
    assert_int_equal(rdl_bulkhead_new(1, &w.bh), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, bulkhead_waiter, &w);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&w.got), 800);
    rdl_bulkhead_free(w.bh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenarios),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_late_result_dropped),
        cmocka_unit_test(test_automatic_half_open),
        cmocka_unit_test(test_configured_failures),
        cmocka_unit_test(test_invalid_opts),
        cmocka_unit_test(test_outcome_of_status),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retry_should),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_bulkhead),
        cmocka_unit_test(test_stress_counts),
        cmocka_unit_test(test_stress_transitions),
        cmocka_unit_test(test_bulkhead_waiters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
