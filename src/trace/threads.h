/*
 * threads.h: the tracer's per-thread state (threads.c), as span.c, export.c
 * and tracer.c use it. What every span start and end runs on its own thread
 * (find the thread's state, take a span, claim an open-span slot, read the
 * wall clock, queue the ended span) is here and inline: as calls into
 * threads.c they cost a span start and end 6 % more instructions. Making a
 * thread's state, giving spans back and everything the exporter does are in
 * threads.c, which calls neither span.c nor export.c.
 */
#ifndef REDLINE_TRACE_THREADS_H
#define REDLINE_TRACE_THREADS_H

#include <stddef.h>
#include <stdlib.h>
#include "trace/internal.h"

/* The calling thread's state for the tracer it used last. */
typedef struct tr_tl {
    uint64_t tracer_id;
    tr_thread_t *st;
} tr_tl_t;

extern _Thread_local tr_tl_t rdl__trace_tl __attribute__((tls_model("initial-exec")));

/* Makes and registers the calling thread's state for t; NULL when out of memory. */
tr_thread_t *rdl__trace_thread_new(rdl_tracer_t *t);
/* Gives a span back to its home thread's free list; me is the calling thread's state or NULL. */
void rdl__trace_span_put(rdl_span_t *s, tr_thread_t *me);
/* Wakes the exporter: a queue holds a batch. */
void rdl__trace_wake(rdl_tracer_t *t);

/* The calling thread's state for t, made on its first span; NULL when out of memory. */
static inline tr_thread_t *rdl__trace_thread(rdl_tracer_t *t)
{
    if (rdl__trace_tl.tracer_id == t->id)
        return rdl__trace_tl.st;
    return rdl__trace_thread_new(t);
}

/* ---- the owner's side: free list, open slots, clock, queue -------------- */

/* A span object from st's free list (or the heap); NULL when out of memory. */
static inline rdl_span_t *rdl__trace_span_get(tr_thread_t *st)
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

/* Watches a recording span in one of st's open-span slots (when one of a few is free). */
static inline void rdl__trace_track_open(tr_thread_t *st, rdl_span_t *s)
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
static inline uint64_t rdl__trace_wall_ns(tr_thread_t *st, uint64_t mono)
{
    if (mono - st->synced_mono > 1000000000ull || st->synced_mono == 0) {
        st->wall_minus_mono = rdl_wall_ns() - mono;
        st->synced_mono = mono;
    }
    return mono + st->wall_minus_mono;
}

/* Pushes an ended recording span into this thread's queue, or drops it when full. */
static inline void rdl__trace_enqueue(tr_thread_t *st, rdl_span_t *s)
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
        rdl__trace_wake(t);
}

/* ---- the exporter's side (export.c) and the tracer's (tracer.c) --------- */

void rdl__trace_log(const rdl_tracer_t *t, const char *level, const char *msg, const char *key,
            const char *value);
/* Pops up to max ended spans from every thread's queue. Exporter thread. */
size_t rdl__trace_collect(rdl_tracer_t *t, rdl_span_t **out, size_t max);
/* Ended spans waiting in all threads' queues. Exporter thread. */
size_t rdl__trace_queued(rdl_tracer_t *t);
/* Returns exported or dropped spans to their home threads. */
void rdl__trace_recycle(rdl_span_t *s);
/* Counts and logs spans open longer than o.unfinished_ms; returns how many are open. */
uint64_t rdl__trace_scan_open(rdl_tracer_t *t, bool at_shutdown);
void rdl__trace_threads_free(rdl_tracer_t *t);

#endif
