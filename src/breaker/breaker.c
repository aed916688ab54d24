/*
 * breaker.c: the circuit breaker. It exists so that a failing dependency is
 * given up on quickly (fail fast instead of piling up waiting calls) and tried
 * again carefully (a few trial calls) once it may have recovered.
 *
 * Every call on the request path goes through acquire and record, so both are
 * lock-free:
 *   - the state lives in one 64-bit word (state, opening streak, a generation
 *     and the time of the last transition); a transition is one CAS, so
 *     exactly one thread performs it and runs the callback;
 *   - a COUNT window is a ring of one-byte outcome codes written with
 *     atomic exchange: the exchanged-out code tells exactly how the aggregate
 *     counters change, so slots and counters never disagree;
 *   - a TIME window is an array of one-second buckets, each one 64-bit word
 *     (epoch and three counters) updated by CAS;
 *   - HALF_OPEN trial permits and results are one 64-bit word tagged with the
 *     generation, so a half-open phase never sees another phase's counts.
 * A result that comes back after a transition carries an older generation and
 * is dropped (gobreaker's rule): a late answer cannot move the new state. The
 * one approximation: a result whose generation check ran just before a
 * transition and whose write lands just after may leave one outcome in the
 * emptied CLOSED window (at most one per racing caller); the totals stay exact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redline/breaker.h"

/* ---- names ------------------------------------------------------------- */

const char *rdl_outcome_name(int kind)
{
    static const char *names[RDL_OUTCOME_COUNT] = {
        "ok", "http_4xx", "http_429", "http_5xx", "timeout", "connect", "canceled", "other",
    };
    return kind >= 0 && kind < RDL_OUTCOME_COUNT ? names[kind] : "other";
}

rdl_outcome_t rdl_outcome_of_status(int status)
{
    if (status >= 200 && status < 400)
        return RDL_OUTCOME_OK;
    if (status == 429)
        return RDL_OUTCOME_HTTP_429;
    if (status >= 400 && status < 500)
        return RDL_OUTCOME_HTTP_4XX;
    if (status >= 500 && status < 600)
        return RDL_OUTCOME_HTTP_5XX;
    return RDL_OUTCOME_OTHER;
}

const char *rdl_breaker_state_name(int state)
{
    static const char *names[RDL_BREAKER_STATE_COUNT] = {
        "closed", "open", "half_open", "disabled", "metrics_only", "forced_open",
    };
    return state >= 0 && state < RDL_BREAKER_STATE_COUNT ? names[state] : "unknown";
}

/* ---- the state word ------------------------------------------------------
 * bits 0-2 state, 3-7 opening streak (consecutive OPENs, capped at 31),
 * 8-23 generation (wraps; only compared for equality), 24-63 time of the
 * last transition in milliseconds (mod 2^40, about 34 years).
 */
#define SW_STREAK_MAX 31u
#define SW_MS_MASK ((1ull << 40) - 1)

static int sw_state(uint64_t sw) { return (int)(sw & 7u); }
static uint32_t sw_streak(uint64_t sw) { return (uint32_t)((sw >> 3) & 31u); }
static uint64_t sw_gen(uint64_t sw) { return (sw >> 8) & 0xffffu; }
static uint64_t sw_ms(uint64_t sw) { return sw >> 24; }

static uint64_t sw_pack(int state, uint32_t streak, uint64_t gen, uint64_t ms)
{
    if (streak > SW_STREAK_MAX)
        streak = SW_STREAK_MAX;
    return (uint64_t)state | (uint64_t)streak << 3 | (gen & 0xffffu) << 8 | (ms & SW_MS_MASK) << 24;
}

/* ---- the half-open word ------------------------------------------------
 * bits 0-15 generation, 16-27 permits issued, 28-39 results, 40-51 failed,
 * 52-63 slow.
 */
#define HW_FIELD 0xfffull

static uint64_t hw_gen(uint64_t w) { return w & 0xffffu; }
static uint64_t hw_issued(uint64_t w) { return (w >> 16) & HW_FIELD; }
static uint64_t hw_done(uint64_t w) { return (w >> 28) & HW_FIELD; }
static uint64_t hw_failed(uint64_t w) { return (w >> 40) & HW_FIELD; }
static uint64_t hw_slow(uint64_t w) { return (w >> 52) & HW_FIELD; }

/* ---- the time-window bucket ----------------------------------------------
 * bits 0-9 epoch (second mod 1024), 10-27 calls, 28-45 failed, 46-63 slow;
 * each counter saturates at 2^18 - 1 calls per second.
 */
#define TB_EPOCHS 1024u
#define TB_MAX ((1ull << 18) - 1)

static uint64_t tb_epoch(uint64_t w) { return w & (TB_EPOCHS - 1); }
static uint64_t tb_calls(uint64_t w) { return (w >> 10) & TB_MAX; }
static uint64_t tb_failed(uint64_t w) { return (w >> 28) & TB_MAX; }
static uint64_t tb_slow(uint64_t w) { return (w >> 46) & TB_MAX; }

static uint64_t tb_pack(uint64_t epoch, uint64_t calls, uint64_t failed, uint64_t slow)
{
    if (calls > TB_MAX)
        calls = TB_MAX;
    if (failed > TB_MAX)
        failed = TB_MAX;
    if (slow > TB_MAX)
        slow = TB_MAX;
    return epoch | calls << 10 | failed << 28 | slow << 46;
}

/* Ring slot codes (COUNT window): 0 empty, else 1 | failed << 1 | slow << 2. */
#define CODE_CALL 1u
#define CODE_FAILED 2u
#define CODE_SLOW 4u

struct rdl_breaker {
    _Atomic uint64_t sw;
    _Atomic uint64_t hw;
    rdl_breaker_opts_t o;
    uint32_t min_calls;             /* effective minimum */
    /* COUNT window */
    _Atomic uint8_t *ring;
    _Atomic uint64_t seq;
    _Atomic int64_t w_calls, w_failed, w_slow;
    /* TIME window */
    _Atomic uint64_t *buckets;
    /* counters */
    _Atomic uint64_t successful, failed, ignored, slow, not_permitted;
    _Atomic uint64_t transitions[RDL_BREAKER_STATE_COUNT];
    char name[64];
};

static uint64_t now_ns(const rdl_breaker_t *b)
{
    return b->o.clock ? b->o.clock(b->o.clock_arg) : rdl_now_ns();
}

void rdl_breaker_opts_default(rdl_breaker_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->window_type = RDL_WINDOW_COUNT;
    o->window_size = 100;
    o->minimum_calls = 100;
    o->failure_rate = 50;
    o->slow_rate = 100;
    o->slow_call_ns = 60ull * 1000000000ull;
    o->permitted_half_open = 10;
    o->wait_open_ns = 60ull * 1000000000ull;
    o->wait_multiplier = 1;
    o->failure_kinds = RDL_OUTCOME_DEFAULT_FAILURES;
    o->ignored_kinds = RDL_OUTCOME_DEFAULT_IGNORED;
    o->initial = RDL_BREAKER_CLOSED;
}

static bool opts_valid(const rdl_breaker_opts_t *o)
{
    uint32_t max_size = o->window_type == RDL_WINDOW_TIME ? TB_EPOCHS / 2 : 65536;
    return o->window_size >= 1 && o->window_size <= max_size && o->minimum_calls >= 1 &&
           o->failure_rate >= 0 && o->failure_rate <= 100 && o->slow_rate >= 0 &&
           o->slow_rate <= 100 && o->permitted_half_open >= 1 &&
           o->permitted_half_open <= HW_FIELD && o->wait_multiplier >= 1 &&
           (o->window_type == RDL_WINDOW_COUNT || o->window_type == RDL_WINDOW_TIME) &&
           (o->initial == RDL_BREAKER_CLOSED || o->initial == RDL_BREAKER_DISABLED ||
            o->initial == RDL_BREAKER_METRICS_ONLY || o->initial == RDL_BREAKER_FORCED_OPEN);
}

int rdl_breaker_new(const char *name, const rdl_breaker_opts_t *opts, rdl_breaker_t **out)
{
    if (!opts || !out || !opts_valid(opts))
        return RDL_EINVAL;
    rdl_breaker_t *b = calloc(1, sizeof(*b));
    if (!b)
        return RDL_ENOMEM;
    b->o = *opts;
    b->min_calls = opts->minimum_calls;
    if (opts->window_type == RDL_WINDOW_COUNT) {
        if (b->min_calls > opts->window_size)
            b->min_calls = opts->window_size;
        b->ring = calloc(opts->window_size, sizeof(*b->ring));
    } else {
        b->buckets = calloc(opts->window_size, sizeof(*b->buckets));
    }
    if (!b->ring && !b->buckets) {
        free(b);
        return RDL_ENOMEM;
    }
    snprintf(b->name, sizeof(b->name), "%s", name ? name : "");
    atomic_init(&b->sw, sw_pack(opts->initial, 0, 0, now_ns(b) / 1000000));
    *out = b;
    return 0;
}

void rdl_breaker_free(rdl_breaker_t *b)
{
    if (!b)
        return;
    free((void *)b->ring);
    free((void *)b->buckets);
    free(b);
}

const char *rdl_breaker_name(const rdl_breaker_t *b)
{
    return b->name;
}

/* ---- the window -------------------------------------------------------- */

/* Empties the window; exact against concurrent writers (each slot is exchanged out). */
static void window_clear(rdl_breaker_t *b)
{
    if (b->ring) {
        for (uint32_t i = 0; i < b->o.window_size; i++) {
            unsigned old = atomic_exchange_explicit(&b->ring[i], 0, memory_order_relaxed);
            if (old) {
                atomic_fetch_sub_explicit(&b->w_calls, 1, memory_order_relaxed);
                if (old & CODE_FAILED)
                    atomic_fetch_sub_explicit(&b->w_failed, 1, memory_order_relaxed);
                if (old & CODE_SLOW)
                    atomic_fetch_sub_explicit(&b->w_slow, 1, memory_order_relaxed);
            }
        }
        return;
    }
    for (uint32_t i = 0; i < b->o.window_size; i++)
        atomic_store_explicit(&b->buckets[i], 0, memory_order_relaxed);
}

static void ring_add(rdl_breaker_t *b, bool failed, bool slow)
{
    unsigned code = CODE_CALL | (failed ? CODE_FAILED : 0) | (slow ? CODE_SLOW : 0);
    uint64_t i = atomic_fetch_add_explicit(&b->seq, 1, memory_order_relaxed) % b->o.window_size;
    unsigned old = atomic_exchange_explicit(&b->ring[i], (uint8_t)code, memory_order_relaxed);
    /* In the steady state (same code in and out) no counter changes. */
    if (old == code)
        return;
    if (!old)
        atomic_fetch_add_explicit(&b->w_calls, 1, memory_order_relaxed);
    int df = (int)((code & CODE_FAILED) != 0) - (int)((old & CODE_FAILED) != 0);
    int ds = (int)((code & CODE_SLOW) != 0) - (int)((old & CODE_SLOW) != 0);
    if (df)
        atomic_fetch_add_explicit(&b->w_failed, df, memory_order_relaxed);
    if (ds)
        atomic_fetch_add_explicit(&b->w_slow, ds, memory_order_relaxed);
}

static void bucket_add(rdl_breaker_t *b, uint64_t now, bool failed, bool slow)
{
    uint64_t sec = now / 1000000000ull;
    uint64_t epoch = sec & (TB_EPOCHS - 1);
    _Atomic uint64_t *cell = &b->buckets[sec % b->o.window_size];
    uint64_t old = atomic_load_explicit(cell, memory_order_relaxed), nw;
    do {
        if (tb_epoch(old) == epoch && old != 0)
            nw = tb_pack(epoch, tb_calls(old) + 1, tb_failed(old) + failed, tb_slow(old) + slow);
        else
            nw = tb_pack(epoch, 1, failed, slow);
    } while (!atomic_compare_exchange_weak_explicit(cell, &old, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
}

typedef struct counts {
    int64_t calls, failed, slow;
} counts_t;

static counts_t window_counts(rdl_breaker_t *b, uint64_t now)
{
    counts_t c = { 0, 0, 0 };
    if (b->ring) {
        c.calls = atomic_load_explicit(&b->w_calls, memory_order_relaxed);
        c.failed = atomic_load_explicit(&b->w_failed, memory_order_relaxed);
        c.slow = atomic_load_explicit(&b->w_slow, memory_order_relaxed);
        return c;
    }
    uint64_t epoch = (now / 1000000000ull) & (TB_EPOCHS - 1);
    for (uint32_t i = 0; i < b->o.window_size; i++) {
        uint64_t w = atomic_load_explicit(&b->buckets[i], memory_order_relaxed);
        if (w == 0 || ((epoch - tb_epoch(w)) & (TB_EPOCHS - 1)) >= b->o.window_size)
            continue;
        c.calls += (int64_t)tb_calls(w);
        c.failed += (int64_t)tb_failed(w);
        c.slow += (int64_t)tb_slow(w);
    }
    return c;
}

/* Percent, or -1 when below the minimum number of calls. */
static double rate(int64_t part, int64_t calls, uint32_t min_calls)
{
    if (calls <= 0 || calls < (int64_t)min_calls)
        return -1;
    if (part < 0)
        part = 0;
    return (double)part * 100.0 / (double)calls;
}

/* ---- transitions --------------------------------------------------------- */

/*
 * Moves from the state word seen (from) to state `to`; false when another
 * thread moved first. Leaving for CLOSED or METRICS_ONLY empties the window
 * before the new state is visible (so no new call's outcome is wiped); other
 * targets take no window outcomes, so it is emptied after.
 */
static bool transition(rdl_breaker_t *b, uint64_t from, int to, uint32_t streak)
{
    uint64_t nw = sw_pack(to, streak, sw_gen(from) + 1, now_ns(b) / 1000000);
    bool clear_before = to == RDL_BREAKER_CLOSED || to == RDL_BREAKER_METRICS_ONLY;
    if (clear_before)
        window_clear(b);
    if (!atomic_compare_exchange_strong_explicit(&b->sw, &from, nw, memory_order_acq_rel,
                                                 memory_order_acquire))
        return false;
    if (!clear_before)
        window_clear(b);
    atomic_fetch_add_explicit(&b->transitions[to], 1, memory_order_relaxed);
    if (b->o.on_change)
        b->o.on_change(b, sw_state(from), to, b->o.on_change_arg);
    return true;
}

static uint64_t open_wait_ns(const rdl_breaker_t *b, uint32_t streak)
{
    double w = (double)b->o.wait_open_ns;
    for (uint32_t i = 1; i < streak && b->o.wait_multiplier > 1; i++) {
        w *= b->o.wait_multiplier;
        if (b->o.wait_open_max_ns && w >= (double)b->o.wait_open_max_ns)
            break;
    }
    if (b->o.wait_open_max_ns && w > (double)b->o.wait_open_max_ns)
        w = (double)b->o.wait_open_max_ns;
    return w >= 1.8e19 ? UINT64_MAX : (uint64_t)w;
}

/* Milliseconds since the state word's transition (mod 2^40 arithmetic). */
static uint64_t ms_in_state(uint64_t sw, uint64_t now)
{
    return ((now / 1000000) - sw_ms(sw)) & SW_MS_MASK;
}

/* Applies the time-driven transitions to sw; true when the state word changed. */
static bool timed(rdl_breaker_t *b, uint64_t sw, uint64_t now)
{
    int st = sw_state(sw);
    if (st == RDL_BREAKER_OPEN) {
        uint64_t wait = open_wait_ns(b, sw_streak(sw));
        if (ms_in_state(sw, now) * 1000000ull < wait)
            return false;
        transition(b, sw, RDL_BREAKER_HALF_OPEN, sw_streak(sw));
        return true;
    }
    if (st == RDL_BREAKER_HALF_OPEN && b->o.max_half_open_ns) {
        if (ms_in_state(sw, now) * 1000000ull < b->o.max_half_open_ns)
            return false;
        transition(b, sw, RDL_BREAKER_OPEN, sw_streak(sw) + 1);
        return true;
    }
    return false;
}

static int refuse(rdl_breaker_t *b)
{
    atomic_fetch_add_explicit(&b->not_permitted, 1, memory_order_relaxed);
    return RDL_EBUSY;
}

/* A HALF_OPEN trial permit for the phase of state word sw. */
static int half_open_permit(rdl_breaker_t *b, uint64_t sw, bool *retry)
{
    uint64_t gen = sw_gen(sw);
    uint64_t hw = atomic_load_explicit(&b->hw, memory_order_acquire), nw;
    for (;;) {
        if (hw_gen(hw) != gen) {
            /* First permit of this phase; but only if the phase is still current. */
            if (atomic_load_explicit(&b->sw, memory_order_acquire) != sw) {
                *retry = true;
                return 0;
            }
            nw = gen | 1ull << 16;
        } else if (hw_issued(hw) >= b->o.permitted_half_open) {
            return refuse(b);
        } else {
            nw = hw + (1ull << 16);
        }
        if (atomic_compare_exchange_weak_explicit(&b->hw, &hw, nw, memory_order_acq_rel,
                                                  memory_order_acquire))
            return 0;
    }
}

int rdl_breaker_acquire(rdl_breaker_t *b, rdl_breaker_permit_t *p)
{
    for (;;) {
        uint64_t sw = atomic_load_explicit(&b->sw, memory_order_acquire);
        int st = sw_state(sw);
        p->gen = sw_gen(sw);
        p->state = (uint8_t)st;
        switch (st) {
        case RDL_BREAKER_CLOSED:
        case RDL_BREAKER_DISABLED:
        case RDL_BREAKER_METRICS_ONLY:
            return 0;
        case RDL_BREAKER_FORCED_OPEN:
            return refuse(b);
        case RDL_BREAKER_OPEN:
            if (timed(b, sw, now_ns(b)))
                continue;
            return refuse(b);
        default: {              /* HALF_OPEN */
            bool retry = false;
            if (b->o.max_half_open_ns && timed(b, sw, now_ns(b)))
                continue;
            int rc = half_open_permit(b, sw, &retry);
            if (retry)
                continue;
            return rc;
        }
        }
    }
}

/* Gives back a half-open permit of an ignored or released call. */
static void half_open_return(rdl_breaker_t *b, uint64_t gen)
{
    uint64_t hw = atomic_load_explicit(&b->hw, memory_order_acquire);
    while (hw_gen(hw) == gen && hw_issued(hw) > hw_done(hw) &&
           !atomic_compare_exchange_weak_explicit(&b->hw, &hw, hw - (1ull << 16),
                                                  memory_order_acq_rel, memory_order_acquire))
        ;
}

static void half_open_result(rdl_breaker_t *b, const rdl_breaker_permit_t *p, bool failed,
                             bool slow)
{
    uint64_t hw = atomic_load_explicit(&b->hw, memory_order_acquire), nw;
    do {
        if (hw_gen(hw) != p->gen)
            return;
        nw = hw + (1ull << 28) + ((uint64_t)failed << 40) + ((uint64_t)slow << 52);
    } while (!atomic_compare_exchange_weak_explicit(&b->hw, &hw, nw, memory_order_acq_rel,
                                                    memory_order_acquire));
    uint32_t n = b->o.permitted_half_open;
    if (hw_done(nw) != n)
        return;
    /* The last trial result decides. */
    uint64_t sw = atomic_load_explicit(&b->sw, memory_order_acquire);
    if (sw_state(sw) != RDL_BREAKER_HALF_OPEN || sw_gen(sw) != p->gen)
        return;
    double fr = (double)hw_failed(nw) * 100.0 / n, sr = (double)hw_slow(nw) * 100.0 / n;
    if (fr >= b->o.failure_rate || sr >= b->o.slow_rate)
        transition(b, sw, RDL_BREAKER_OPEN, sw_streak(sw) + 1);
    else
        transition(b, sw, RDL_BREAKER_CLOSED, 0);
}

static void closed_result(rdl_breaker_t *b, const rdl_breaker_permit_t *p, uint64_t now,
                          bool failed, bool slow)
{
    if (b->ring)
        ring_add(b, failed, slow);
    else
        bucket_add(b, now, failed, slow);
    if (p->state != RDL_BREAKER_CLOSED)
        return;                 /* METRICS_ONLY never trips */
    counts_t c = window_counts(b, now);
    if (c.calls < (int64_t)b->min_calls || (c.failed <= 0 && c.slow <= 0))
        return;
    if (rate(c.failed, c.calls, b->min_calls) < b->o.failure_rate &&
        rate(c.slow, c.calls, b->min_calls) < b->o.slow_rate)
        return;
    uint64_t sw = atomic_load_explicit(&b->sw, memory_order_acquire);
    if (sw_state(sw) == RDL_BREAKER_CLOSED && sw_gen(sw) == p->gen)
        transition(b, sw, RDL_BREAKER_OPEN, sw_streak(sw) + 1);
}

void rdl_breaker_record(rdl_breaker_t *b, const rdl_breaker_permit_t *p, int kind,
                        uint64_t duration_ns)
{
    if (p->state == RDL_BREAKER_DISABLED)
        return;
    uint32_t bit = kind >= 0 && kind < RDL_OUTCOME_COUNT ? RDL_OUTCOME_BIT(kind)
                                                         : RDL_OUTCOME_BIT(RDL_OUTCOME_OTHER);
    if (b->o.ignored_kinds & bit) {
        atomic_fetch_add_explicit(&b->ignored, 1, memory_order_relaxed);
        if (p->state == RDL_BREAKER_HALF_OPEN)
            half_open_return(b, p->gen);
        return;
    }
    bool failed = (b->o.failure_kinds & bit) != 0;
    bool slow = duration_ns >= b->o.slow_call_ns;
    atomic_fetch_add_explicit(failed ? &b->failed : &b->successful, 1, memory_order_relaxed);
    if (slow)
        atomic_fetch_add_explicit(&b->slow, 1, memory_order_relaxed);
    /* A result from an earlier phase only counts in the totals above. */
    uint64_t sw = atomic_load_explicit(&b->sw, memory_order_acquire);
    if (sw_gen(sw) != p->gen)
        return;
    if (p->state == RDL_BREAKER_HALF_OPEN)
        half_open_result(b, p, failed, slow);
    else
        closed_result(b, p, b->ring ? 0 : now_ns(b), failed, slow);   /* rings need no time */
}

void rdl_breaker_release(rdl_breaker_t *b, const rdl_breaker_permit_t *p)
{
    if (p->state == RDL_BREAKER_HALF_OPEN)
        half_open_return(b, p->gen);
}

int rdl_breaker_state(rdl_breaker_t *b)
{
    if (b->o.automatic_half_open)
        rdl_breaker_tick(b);
    return sw_state(atomic_load_explicit(&b->sw, memory_order_acquire));
}

void rdl_breaker_tick(rdl_breaker_t *b)
{
    uint64_t sw = atomic_load_explicit(&b->sw, memory_order_acquire);
    int st = sw_state(sw);
    if ((st == RDL_BREAKER_OPEN && b->o.automatic_half_open) || st == RDL_BREAKER_HALF_OPEN)
        timed(b, sw, now_ns(b));
}

uint64_t rdl_breaker_retry_after_ns(rdl_breaker_t *b)
{
    uint64_t sw = atomic_load_explicit(&b->sw, memory_order_acquire);
    if (sw_state(sw) != RDL_BREAKER_OPEN)
        return 0;
    uint64_t in = ms_in_state(sw, now_ns(b)) * 1000000ull;
    uint64_t wait = open_wait_ns(b, sw_streak(sw));
    return in >= wait ? 0 : wait - in;
}

/* ---- manual transitions ----------------------------------------------------- */

static void force(rdl_breaker_t *b, int to, bool keep_streak)
{
    for (;;) {
        uint64_t sw = atomic_load_explicit(&b->sw, memory_order_acquire);
        if (transition(b, sw, to, keep_streak ? sw_streak(sw) : 0))
            return;
    }
}

void rdl_breaker_force_open(rdl_breaker_t *b) { force(b, RDL_BREAKER_FORCED_OPEN, true); }
void rdl_breaker_disable(rdl_breaker_t *b) { force(b, RDL_BREAKER_DISABLED, true); }
void rdl_breaker_metrics_only(rdl_breaker_t *b) { force(b, RDL_BREAKER_METRICS_ONLY, true); }
void rdl_breaker_force_closed(rdl_breaker_t *b) { force(b, RDL_BREAKER_CLOSED, true); }
void rdl_breaker_reset(rdl_breaker_t *b) { force(b, RDL_BREAKER_CLOSED, false); }

void rdl_breaker_stats(rdl_breaker_t *b, rdl_breaker_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->state = rdl_breaker_state(b);
    out->successful = atomic_load_explicit(&b->successful, memory_order_relaxed);
    out->failed = atomic_load_explicit(&b->failed, memory_order_relaxed);
    out->ignored = atomic_load_explicit(&b->ignored, memory_order_relaxed);
    out->slow = atomic_load_explicit(&b->slow, memory_order_relaxed);
    out->not_permitted = atomic_load_explicit(&b->not_permitted, memory_order_relaxed);
    for (int i = 0; i < RDL_BREAKER_STATE_COUNT; i++)
        out->transitions[i] = atomic_load_explicit(&b->transitions[i], memory_order_relaxed);
    counts_t c = window_counts(b, now_ns(b));
    out->window_calls = c.calls > 0 ? (uint64_t)c.calls : 0;
    out->window_failed = c.failed > 0 ? (uint64_t)c.failed : 0;
    out->window_slow = c.slow > 0 ? (uint64_t)c.slow : 0;
    out->failure_rate = rate(c.failed, c.calls, b->min_calls);
    out->slow_rate = rate(c.slow, c.calls, b->min_calls);
}
