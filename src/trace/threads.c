/*
 * threads.c: the tracer's per-thread state, the part of a tracer spans and
 * the exporter share. It exists so that a span start and end touch only their
 * own thread's memory: each thread that traces gets a free list of spans, a
 * single-producer ring of ended spans the exporter drains, and slots that show
 * which spans are open (for the "unfinished span" report). span.c (the owner's
 * side) and export.c (the exporter's side) both build on this file; it calls
 * neither of them.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trace/internal.h"

/* The calling thread's state for the tracer it used last. */
static _Thread_local struct {
    uint64_t tracer_id;
    tr_thread_t *st;
} tl;

void tr_log(const rdl_tracer_t *t, const char *level, const char *msg, const char *key,
            const char *value)
{
    if (t->o.log) {
        t->o.log(t->o.log_arg, level, msg, key, value);
        return;
    }
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_puts(&b, "{\"level\":");
    rdl_json_str(&b, level, strlen(level));
    rdl_buf_puts(&b, ",\"logger\":\"trace\",\"msg\":");
    rdl_json_str(&b, msg, strlen(msg));
    if (key && value) {
        rdl_buf_putc(&b, ',');
        rdl_json_str(&b, key, strlen(key));
        rdl_buf_putc(&b, ':');
        rdl_json_str(&b, value, strlen(value));
    }
    rdl_buf_puts(&b, "}\n");
    if (!b.oom)
        fputs(b.data, stderr);
    rdl_buf_free(&b);
}

/* ---- per-thread state ------------------------------------------------ */

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static tr_thread_t *thread_new(rdl_tracer_t *t)
{
    tr_thread_t *st = aligned_alloc(_Alignof(tr_thread_t), sizeof(*st));   /* its lines are laid out */
    if (!st)
        return NULL;
    memset(st, 0, sizeof(*st));
    st->tracer = t;
    uint32_t cap = pow2_at_least((uint32_t)t->o.max_queue);
    if (t->o.export) {
        st->ring = calloc(cap, sizeof(*st->ring));
        if (!st->ring) {
            free(st);
            return NULL;
        }
    }
    st->mask = cap - 1;
    pthread_mutex_lock(&t->mu);
    st->next = t->threads;
    t->threads = st;
    pthread_mutex_unlock(&t->mu);
    return st;
}

tr_thread_t *rdl__trace_thread(rdl_tracer_t *t)
{
    if (tl.tracer_id == t->id)
        return tl.st;
    tr_thread_t *st = thread_new(t);
    if (st) {
        tl.tracer_id = t->id;
        tl.st = st;
    }
    return st;
}

static void span_release_storage(rdl_span_t *s)
{
    for (tr_chunk_t *c = s->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    s->chunks = NULL;
}

void tr_threads_free(rdl_tracer_t *t)
{
    for (tr_thread_t *st = t->threads, *next; st; st = next) {
        next = st->next;
        rdl_span_t *lists[2] = { st->free, atomic_exchange(&st->back, NULL) };
        for (int i = 0; i < 2; i++)
            for (rdl_span_t *s = lists[i], *n; s; s = n) {
                n = s->next;
                span_release_storage(s);
                free(s);
            }
        /* Spans still queued or open belong to this thread too. */
        uint32_t tail = atomic_load(&st->tail), head = atomic_load(&st->head);
        for (; tail != head; tail++) {
            rdl_span_t *s = st->ring[tail & st->mask];
            span_release_storage(s);
            free(s);
        }
        for (int i = 0; i < TR_SLOTS; i++) {
            rdl_span_t *s = atomic_load(&st->slots[i].span);
            if (s && s->home == st) {
                span_release_storage(s);
                free(s);
            }
        }
        free(st->ring);
        free(st);
    }
    t->threads = NULL;
}

/* ---- free lists ------------------------------------------------------ */

rdl_span_t *rdl__trace_span_get(tr_thread_t *st)
{
    rdl_span_t *s = st->free;
    if (!s) {
        s = atomic_exchange_explicit(&st->back, NULL, memory_order_acquire);
        if (!s) {
            s = malloc(sizeof(*s));
            if (!s)
                return NULL;
            s->chunks = NULL;
            s->home = st;
            s->next = NULL;
        }
    }
    st->free = s->next;
    /*
     * The next span this thread will use was last written by the exporter on
     * the other core (encoded, recycled): asking for its lines now, while the
     * request runs, keeps that transfer off the next span start, which would
     * otherwise wait for it (the most expensive load of a span start under
     * load). Written out here, not in a helper: GCC 12 takes a function made
     * only of prefetches for one without effect and drops the call.
     */
    rdl_span_t *n = st->free;
    if (n) {
        for (size_t off = 0; off < offsetof(rdl_span_t, sc) + 32; off += 64)
            __builtin_prefetch((char *)n + off, 1);          /* the header and the ids */
        for (size_t off = 0; off < 320; off += 64)
            __builtin_prefetch((char *)n->attrs_inline + off, 1);
        __builtin_prefetch(n->store, 1);
        __builtin_prefetch(n->store + 64, 1);
    }
    return s;
}

/* Gives a span back to its home thread's free list (directly when that is us). */
void rdl__trace_span_put(rdl_span_t *s, tr_thread_t *me)
{
    span_release_storage(s);
    tr_thread_t *home = s->home;
    if (home == me) {
        s->next = home->free;
        home->free = s;
        return;
    }
    rdl_span_t *old = atomic_load_explicit(&home->back, memory_order_relaxed);
    do {
        s->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&home->back, &old, s, memory_order_release,
                                                    memory_order_relaxed));
}

void tr_recycle(rdl_span_t *s)
{
    rdl__trace_span_put(s, NULL);
}

/* ---- open spans and clocks ------------------------------------------- */

void rdl__trace_track_open(tr_thread_t *st, rdl_span_t *s)
{
    s->slot = -1;
    for (uint32_t i = 0; i < 8; i++) {
        uint32_t k = (st->slot_hint + i) & (TR_SLOTS - 1);
        tr_slot_t *slot = &st->slots[k];
        if (atomic_load_explicit(&slot->span, memory_order_relaxed))
            continue;
        atomic_store_explicit(&slot->reported, false, memory_order_relaxed);
        atomic_store_explicit(&slot->start_mono, s->start_mono, memory_order_relaxed);
        atomic_store_explicit(&slot->span, s, memory_order_release);
        s->slot = (int)k;
        st->slot_hint = k + 1;
        return;
    }
}

/*
 * Wall-clock time from the monotonic reading the span takes anyway: one clock
 * call per span start instead of two (clock_gettime is a third of a span's
 * cost on virtual machines). The offset is taken again every second, so a
 * stepped or slewed wall clock shows within a second.
 */
uint64_t rdl__trace_wall_ns(tr_thread_t *st, uint64_t mono)
{
    if (mono - st->synced_mono > 1000000000ull || st->synced_mono == 0) {
        st->wall_minus_mono = rdl_wall_ns() - mono;
        st->synced_mono = mono;
    }
    return mono + st->wall_minus_mono;
}

/* ---- the queue of ended spans ---------------------------------------- */

static void wake_exporter(rdl_tracer_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->wake = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* Pushes an ended recording span into this thread's queue, or drops it when full. */
void rdl__trace_enqueue(tr_thread_t *st, rdl_span_t *s)
{
    uint32_t head = atomic_load_explicit(&st->head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&st->tail, memory_order_acquire);
    if (head - tail >= (uint32_t)st->tracer->o.max_queue) {
        atomic_store_explicit(&st->dropped, atomic_load_explicit(&st->dropped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        rdl__trace_span_put(s, st);
        return;
    }
    st->ring[head & st->mask] = s;
    atomic_store_explicit(&st->head, head + 1, memory_order_release);
    /*
     * A full batch wakes the exporter once: the flag keeps the lock and the
     * futex off the path of the spans that follow until the exporter has
     * looked (a queue that stays above a batch would otherwise signal per span).
     */
    rdl_tracer_t *t = st->tracer;
    if (head + 1 - tail >= (uint32_t)t->o.max_batch &&
        !atomic_load_explicit(&t->wake_sent, memory_order_relaxed) &&
        !atomic_exchange_explicit(&t->wake_sent, true, memory_order_acq_rel))
        wake_exporter(t);
}

/* ---- exporter side --------------------------------------------------- */

size_t tr_collect(rdl_tracer_t *t, rdl_span_t **out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (tr_thread_t *st = t->threads; st && n < max; st = st->next) {
        uint32_t tail = atomic_load_explicit(&st->tail, memory_order_relaxed);
        uint32_t head = atomic_load_explicit(&st->head, memory_order_acquire);
        while (tail != head && n < max)
            out[n++] = st->ring[tail++ & st->mask];
        atomic_store_explicit(&st->tail, tail, memory_order_release);
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

size_t tr_queued(rdl_tracer_t *t)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (tr_thread_t *st = t->threads; st; st = st->next)
        n += atomic_load_explicit(&st->head, memory_order_acquire) -
             atomic_load_explicit(&st->tail, memory_order_relaxed);
    pthread_mutex_unlock(&t->mu);
    return n;
}

uint64_t tr_scan_open(rdl_tracer_t *t, bool at_shutdown)
{
    uint64_t now = rdl_now_ns(), limit = t->o.unfinished_ms * 1000000ull, open = 0, oldest = 0;
    pthread_mutex_lock(&t->mu);
    for (tr_thread_t *st = t->threads; st; st = st->next) {
        for (int i = 0; i < TR_SLOTS; i++) {
            tr_slot_t *slot = &st->slots[i];
            if (!atomic_load_explicit(&slot->span, memory_order_acquire))
                continue;
            open++;
            uint64_t start = atomic_load_explicit(&slot->start_mono, memory_order_relaxed);
            uint64_t age = now > start ? now - start : 0;
            if (age > oldest)
                oldest = age;
            if (age > limit && !atomic_exchange(&slot->reported, true))
                atomic_fetch_add(&t->unfinished, 1);
        }
    }
    pthread_mutex_unlock(&t->mu);
    char detail[64];
    snprintf(detail, sizeof(detail), "%llu", (unsigned long long)(oldest / 1000000ull));
    if (at_shutdown && open) {
        char n[24];
        snprintf(n, sizeof(n), "%llu", (unsigned long long)open);
        tr_log(t, "warn", "spans still open at shutdown (not exported)", "open_spans", n);
    } else if (oldest > limit && atomic_load(&t->unfinished) &&
               !atomic_exchange(&t->unfinished_logged, true)) {
        tr_log(t, "warn", "unfinished span: open longer than the limit (logged once; see spans_unfinished)",
               "age_ms", detail);
    }
    return open;
}
