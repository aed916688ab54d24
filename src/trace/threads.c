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
#include "trace/threads.h"

_Thread_local tr_tl_t rdl__trace_tl __attribute__((tls_model("initial-exec")));

void rdl__trace_log(const rdl_tracer_t *t, const char *level, const char *msg, const char *key,
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
    rdl_buf_close(&b);
}

/* ---- per-thread state ------------------------------------------------ */

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* Makes and registers the calling thread's state for t; NULL when out of memory. */
tr_thread_t *rdl__trace_thread_new(rdl_tracer_t *t)
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
    rdl__trace_tl.tracer_id = t->id;
    rdl__trace_tl.st = st;
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

void rdl__trace_threads_free(rdl_tracer_t *t)
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

void rdl__trace_recycle(rdl_span_t *s)
{
    rdl__trace_span_put(s, NULL);
}

/* ---- the queue of ended spans ---------------------------------------- */

void rdl__trace_wake(rdl_tracer_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->wake = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* ---- exporter side --------------------------------------------------- */

size_t rdl__trace_collect(rdl_tracer_t *t, rdl_span_t **out, size_t max)
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

size_t rdl__trace_queued(rdl_tracer_t *t)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (tr_thread_t *st = t->threads; st; st = st->next)
        n += atomic_load_explicit(&st->head, memory_order_acquire) -
             atomic_load_explicit(&st->tail, memory_order_relaxed);
    pthread_mutex_unlock(&t->mu);
    return n;
}

uint64_t rdl__trace_scan_open(rdl_tracer_t *t, bool at_shutdown)
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
        rdl__trace_log(t, "warn", "spans still open at shutdown (not exported)", "open_spans", n);
    } else if (oldest > limit && atomic_load(&t->unfinished) &&
               !atomic_exchange(&t->unfinished_logged, true)) {
        rdl__trace_log(t, "warn", "unfinished span: open longer than the limit (logged once; see spans_unfinished)",
               "age_ms", detail);
    }
    return open;
}
