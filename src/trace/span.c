/*
 * span.c: the tracer object and spans. It exists to make a span cheap enough
 * for every request: a thread takes span objects from its own free list,
 * copies strings into the span's inline storage, and on end pushes the span
 * into its own single-producer queue for the exporter thread. No global lock
 * and, once warm, no heap allocation on start/end; the exporter hands spans
 * back through a push-only stack per thread.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "trace/internal.h"

static atomic_uint_fast64_t tracer_ids = 1;
static _Atomic(rdl_tracer_t *) default_tracer;

/* The calling thread's state for the tracer it used last. */
static _Thread_local struct {
    uint64_t tracer_id;
    tr_thread_t *st;
} tl;

rdl_tracer_t *rdl_tracer_default(void)
{
    return atomic_load_explicit(&default_tracer, memory_order_acquire);
}

void rdl_tracer_set_default(rdl_tracer_t *t)
{
    atomic_store_explicit(&default_tracer, t, memory_order_release);
}

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

/* ---- ids ------------------------------------------------------------- */

static void fill_id(uint8_t *out, size_t n)
{
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = rdl_rand64();
            memcpy(out + i, &r, 8);
        }
    } while (!out[0] && !memcmp(out, out + 1, n - 1));    /* never all zero */
}

/* ---- tracer ---------------------------------------------------------- */

void rdl_tracer_opts_default(rdl_tracer_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    rdl_sampler_init(&o->sampler, "parentbased_always_on", NULL, NULL);
    o->export = true;
    o->max_attributes = 128;
    o->max_events = 128;
    o->max_links = 128;
    o->unfinished_ms = 60000;
    o->max_queue = 2048;
    o->max_batch = 512;
    o->schedule_delay_ms = 5000;
    o->export_timeout_ms = 30000;
    snprintf(o->endpoint, sizeof(o->endpoint), "http://localhost:4318/v1/traces");
    o->protocol = RDL_OTLP_PROTOBUF;
    o->timeout_ms = 10000;
    o->retry_initial_ms = 1000;
    o->retry_max_ms = 30000;
    o->shutdown_ms = 5000;
}

int rdl_tracer_new(const rdl_tracer_opts_t *o, rdl_tracer_t **out)
{
    *out = NULL;
    if (!o || o->max_queue < 1 || o->max_batch < 1 || o->max_attributes < 0 ||
        o->max_events < 0 || o->max_links < 0)
        return RDL_EINVAL;
    rdl_tracer_t *t = calloc(1, sizeof(*t));
    if (!t)
        return RDL_ENOMEM;
    t->o = *o;
    t->id = atomic_fetch_add(&tracer_ids, 1);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    pthread_cond_init(&t->flushed, NULL);
    int rc = tr_parse_resource(t);
    if (rc == 0 && t->o.export)
        rc = tr_exporter_start(t);
    if (rc) {
        t->o.export = false;
        rdl_tracer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void rdl_tracer_free(rdl_tracer_t *t)
{
    if (!t)
        return;
    if (rdl_tracer_default() == t)
        rdl_tracer_set_default(NULL);
    if (t->running)
        tr_exporter_stop(t);
    tr_scan_open(t, true);
    tr_threads_free(t);
    for (int i = 0; i < t->nresource; i++) {
        free(t->resource[i].key);
        free(t->resource[i].value);
    }
    pthread_cond_destroy(&t->flushed);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void rdl_tracer_stats(const rdl_tracer_t *t, rdl_tracer_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    rdl_tracer_t *mt = (rdl_tracer_t *)t;
    pthread_mutex_lock(&mt->mu);
    for (tr_thread_t *st = t->threads; st; st = st->next) {
        out->spans_started += atomic_load_explicit(&st->started, memory_order_relaxed);
        out->spans_ended += atomic_load_explicit(&st->ended, memory_order_relaxed);
        out->spans_dropped += atomic_load_explicit(&st->dropped, memory_order_relaxed);
    }
    pthread_mutex_unlock(&mt->mu);
    out->spans_dropped += atomic_load(&mt->dropped);
    out->spans_exported = atomic_load(&mt->exported);
    out->export_requests = atomic_load(&mt->requests);
    out->export_failures = atomic_load(&mt->failures);
    out->spans_unfinished = atomic_load(&mt->unfinished);
    out->spans_open = out->spans_started > out->spans_ended ? out->spans_started - out->spans_ended : 0;
}

const rdl_sampler_t *rdl_tracer_sampler(const rdl_tracer_t *t)
{
    return &t->o.sampler;
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

static tr_thread_t *thread_state(rdl_tracer_t *t)
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

/* ---- span memory ----------------------------------------------------- */

static void *span_alloc(rdl_span_t *s, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (n > s->bump_left) {
        size_t size = n > 4096 ? n : 4096;
        tr_chunk_t *c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->next = s->chunks;
        c->size = size;
        s->chunks = c;
        s->bump = c->data;
        s->bump_left = size;
    }
    void *p = s->bump;
    s->bump += n;
    s->bump_left -= n;
    return p;
}

/*
 * Whether n bytes are all ASCII (the common case: names, paths, ids): words
 * of 8, 4 or single bytes, the last one overlapping, never past the end, so
 * a short value costs two loads and no loop.
 */
static inline bool all_ascii(const char *p, size_t n)
{
    uint64_t acc = 0, w;
    uint32_t h;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&w, p + i, 8);
            acc |= w;
        }
        memcpy(&w, p + n - 8, 8);
        acc |= w;
    } else if (n >= 4) {
        memcpy(&h, p, 4);
        acc = h;
        memcpy(&h, p + n - 4, 4);
        acc |= h;
    } else if (n > 0) {
        acc = (unsigned char)p[0] | (unsigned char)p[n / 2] | (unsigned char)p[n - 1];
    }
    return (acc & 0x8080808080808080ull) == 0;
}

static bool valid_utf8(const char *str, size_t n)
{
    size_t k;
    for (size_t i = 0; i < n; i += k)
        if ((k = rdl_utf8_seq(str + i, n - i, NULL)) == 0)
            return false;
    return true;
}

/* str with each invalid UTF-8 sequence replaced by U+FFFD into out (room for clean bytes). */
static void copy_replacing(char *out, const char *str, size_t n)
{
    size_t o = 0, k, skip;
    for (size_t i = 0; i < n;) {
        if ((k = rdl_utf8_seq(str + i, n - i, &skip)) > 0) {
            memcpy(out + o, str + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += skip;
        }
    }
}

/* span_strdup for text that is not all ASCII: kept as is when valid, else repaired. */
__attribute__((noinline)) static char *span_strdup_utf8(rdl_span_t *s, const char *str, size_t *n)
{
    bool valid = valid_utf8(str, *n);
    size_t len = valid ? *n : rdl_utf8_clean_len(str, *n);
    char *p = span_alloc(s, len + 1);
    if (!p)
        return NULL;
    if (valid)
        memcpy(p, str, len);
    else
        copy_replacing(p, str, *n);
    p[len] = '\0';
    *n = len;
    return p;
}

/*
 * A NUL-terminated copy of str (*n bytes) in the span's storage. OTLP strings
 * are protobuf `string`s, which must be valid UTF-8: a collector refuses the
 * whole export otherwise. So invalid sequences become U+FFFD here, and *n
 * receives the copy's length.
 */
static inline char *span_strdup(rdl_span_t *s, const char *str, size_t *n)
{
    size_t len = *n;
    if (!all_ascii(str, len))
        return span_strdup_utf8(s, str, n);
    char *p = span_alloc(s, len + 1);
    if (p) {
        memcpy(p, str, len);
        p[len] = '\0';
    }
    return p;
}

static rdl_span_t *span_get(tr_thread_t *st)
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
static void span_put(rdl_span_t *s, tr_thread_t *me)
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
    span_put(s, NULL);
}

/* ---- start ----------------------------------------------------------- */

static void track_open(tr_thread_t *st, rdl_span_t *s)
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
static uint64_t wall_from_mono(tr_thread_t *st, uint64_t mono)
{
    if (mono - st->synced_mono > 1000000000ull || st->synced_mono == 0) {
        st->wall_minus_mono = rdl_wall_ns() - mono;
        st->synced_mono = mono;
    }
    return mono + st->wall_minus_mono;
}

/* start_mono: the start on rdl_now_ns()'s clock, 0 for now. */
static rdl_span_t *span_begin(rdl_tracer_t *t, const char *name, rdl_span_kind_t kind,
                              const rdl_span_context_t *parent, const rdl_span_t *local_parent,
                              uint64_t start_mono)
{
    if (!t)
        t = local_parent ? local_parent->tracer : rdl_tracer_default();
    if (!t)
        return NULL;
    tr_thread_t *st = thread_state(t);
    if (!st)
        return NULL;
    rdl_span_t *s = span_get(st);
    if (!s)
        return NULL;
    bool has_parent = parent && rdl_span_context_valid(parent);
    s->next = NULL;
    s->tracer = t;
    s->sc.remote = false;
    if (has_parent) {
        memcpy(s->sc.trace_id, parent->trace_id, 16);
        memcpy(s->parent_span_id, parent->span_id, 8);
        s->sc.tracestate_len = parent->tracestate_len;
        memcpy(s->sc.tracestate, parent->tracestate, parent->tracestate_len + 1u);
    } else {
        fill_id(s->sc.trace_id, 16);
        memset(s->parent_span_id, 0, 8);
        s->sc.tracestate_len = 0;
        s->sc.tracestate[0] = '\0';
    }
    fill_id(s->sc.span_id, 8);
    bool sampled = rdl_sampler_should_sample(&t->o.sampler, has_parent ? parent : NULL,
                                             s->sc.trace_id);
    s->sc.flags = (uint8_t)((has_parent ? parent->flags & ~RDL_TRACE_FLAG_SAMPLED : 0) |
                            (sampled ? RDL_TRACE_FLAG_SAMPLED : 0));
    s->has_parent = has_parent;
    s->parent_remote = has_parent && parent->remote;
    s->holder = NULL;
    s->is_local_root = !local_parent;
    s->recording = t->o.export && sampled;
    /* keep_errors: an unsampled trace records until its local root decides. */
    if (t->o.export && !sampled && t->o.keep_errors) {
        if (local_parent && local_parent->holder) {
            s->holder = local_parent->holder;
            atomic_fetch_add(&s->holder->refs, 1);
            s->recording = true;
        } else if (!local_parent) {
            s->holder = malloc(sizeof(*s->holder));
            if (s->holder) {
                atomic_init(&s->holder->refs, 1);
                atomic_init(&s->holder->decision, 0);
                atomic_init(&s->holder->parked, NULL);
                s->recording = true;
            }
        }
    }
    atomic_store_explicit(&s->ended, false, memory_order_relaxed);
    s->slot = -1;
    if (!s->recording)
        return s;
    s->kind = (uint8_t)kind;
    s->status = RDL_STATUS_UNSET;
    s->status_msg = NULL;
    s->bump = s->store;
    s->bump_left = sizeof(s->store);
    s->attrs = s->attrs_inline;
    s->cap_attrs = TR_INLINE_ATTRS;
    s->nattrs = s->dropped_attrs = 0;
    s->key_bits = 0;
    s->events = s->events_tail = NULL;
    s->links = s->links_tail = NULL;
    s->nevents = s->dropped_events = s->nlinks = s->dropped_links = 0;
    size_t name_len = name ? strlen(name) : 0;
    s->name = span_strdup(s, name ? name : "", &name_len);
    s->name_len = s->name ? name_len : 0;
    s->start_mono = start_mono ? start_mono : rdl_now_ns();
    s->start_wall = wall_from_mono(st, s->start_mono);
    atomic_store_explicit(&st->started, atomic_load_explicit(&st->started, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    track_open(st, s);
    return s;
}

rdl_span_t *rdl_span_start(rdl_tracer_t *t, const char *name, rdl_span_kind_t kind,
                           const rdl_span_t *parent)
{
    return span_begin(t, name, kind, parent ? &parent->sc : NULL, parent, 0);
}

rdl_span_t *rdl_span_start_remote(rdl_tracer_t *t, const char *name, rdl_span_kind_t kind,
                                  const rdl_span_context_t *parent)
{
    return span_begin(t, name, kind, parent, NULL, 0);
}

rdl_span_t *rdl_span_start_remote_at(rdl_tracer_t *t, const char *name, rdl_span_kind_t kind,
                                     const rdl_span_context_t *parent, uint64_t mono_ns)
{
    return span_begin(t, name, kind, parent, NULL, mono_ns);
}

const rdl_span_context_t *rdl_span_context(const rdl_span_t *s)
{
    return s ? &s->sc : NULL;
}

bool rdl_span_recording(const rdl_span_t *s)
{
    return s && s->recording && !atomic_load_explicit(&s->ended, memory_order_relaxed);
}

/* ---- attributes, events, links --------------------------------------- */

/*
 * A key's bit in a span's key_bits: from its length and its first and last
 * bytes, which tell most of a server span's keys apart.
 */
static uint64_t key_bit(const char *key, size_t klen)
{
    unsigned h = (unsigned)klen * 7u;
    if (klen)
        h += (unsigned char)key[0] * 3u + (unsigned char)key[klen - 1];
    return 1ull << (h & 63);
}

/*
 * The attribute of key (klen bytes): the one set before when scan finds it,
 * else a new one. A static key (it outlives the span) is kept by pointer,
 * others are copied into the span's storage.
 */
static tr_attr_t *attr_slot(rdl_span_t *s, const char *key, size_t klen, bool scan, bool static_key)
{
    if (klen > TR_MAX_KEY) {
        s->dropped_attrs++;
        return NULL;
    }
    uint64_t bit = key_bit(key, klen);
    if (scan && (s->key_bits & bit))
        for (uint32_t i = 0; i < s->nattrs; i++)
            if (s->attrs[i].key_len == klen && memcmp(s->attrs[i].key, key, klen) == 0)
                return &s->attrs[i];
    if (s->nattrs >= (uint32_t)s->tracer->o.max_attributes) {
        s->dropped_attrs++;
        return NULL;
    }
    if (s->nattrs == s->cap_attrs) {
        tr_attr_t *more = span_alloc(s, 2 * s->cap_attrs * sizeof(*more));
        if (!more) {
            s->dropped_attrs++;
            return NULL;
        }
        memcpy(more, s->attrs, s->nattrs * sizeof(*more));
        s->attrs = more;
        s->cap_attrs *= 2;
    }
    tr_attr_t *a = &s->attrs[s->nattrs];
    a->key = static_key ? key : span_strdup(s, key, &klen);
    a->key_len = (uint16_t)klen;
    if (!a->key || klen > TR_MAX_KEY) {
        s->dropped_attrs++;
        return NULL;
    }
    s->key_bits |= bit;
    s->nattrs++;
    return a;
}

static bool span_open(const rdl_span_t *s)
{
    return s && s->recording && !atomic_load_explicit(&s->ended, memory_order_relaxed);
}

static tr_attr_t *attr_for(rdl_span_t *s, const char *key)
{
    if (!key || !span_open(s))
        return NULL;
    return attr_slot(s, key, strlen(key), true, false);
}

/* The string value of a, copied into the span's storage ("" when out of memory). */
static void attr_set_str(rdl_span_t *s, tr_attr_t *a, const char *value, size_t len)
{
    if (!value || len > TR_MAX_VALUE)
        len = 0;
    const char *copy = span_strdup(s, value ? value : "", &len);
    a->type = RDL_ATTR_STRING;
    a->v.s = copy && len <= TR_MAX_VALUE ? copy : "";
    a->len = copy && len <= TR_MAX_VALUE ? (uint32_t)len : 0;
}

/* A non-string value of in into a. */
static void attr_set_scalar(tr_attr_t *a, const rdl_attr_t *in)
{
    a->type = (uint8_t)in->type;
    switch (in->type) {
    case RDL_ATTR_INT:
        a->v.i = in->v.i;
        break;
    case RDL_ATTR_DOUBLE:
        a->v.d = in->v.d;
        break;
    case RDL_ATTR_BOOL:
        a->v.b = in->v.b;
        break;
    case RDL_ATTR_STRING:
        break;
    }
    a->len = 0;
}

void rdl_span_set_attrs(rdl_span_t *s, const rdl_attr_t *attrs, size_t n, unsigned flags)
{
    if (!attrs || !span_open(s))
        return;
    bool scan = !(flags & RDL_ATTRS_NEW_KEYS), static_keys = flags & RDL_ATTRS_STATIC_KEYS;
    for (size_t i = 0; i < n; i++) {
        const rdl_attr_t *in = &attrs[i];
        if (!in->key)
            continue;
        size_t klen = in->key_len ? in->key_len : strlen(in->key);
        tr_attr_t *a = attr_slot(s, in->key, klen, scan, static_keys);
        if (!a)
            continue;
        if (in->type == RDL_ATTR_STRING)
            attr_set_str(s, a, in->v.str.s, in->v.str.len);
        else
            attr_set_scalar(a, in);
    }
}

void rdl_span_set_str(rdl_span_t *s, const char *key, const char *value, size_t len)
{
    tr_attr_t *a = attr_for(s, key);
    if (a)
        attr_set_str(s, a, value, len);
}

void rdl_span_set_int(rdl_span_t *s, const char *key, int64_t value)
{
    tr_attr_t *a = attr_for(s, key);
    if (a) {
        a->type = RDL_ATTR_INT;
        a->v.i = value;
        a->len = 0;
    }
}

void rdl_span_set_double(rdl_span_t *s, const char *key, double value)
{
    tr_attr_t *a = attr_for(s, key);
    if (a) {
        a->type = RDL_ATTR_DOUBLE;
        a->v.d = value;
        a->len = 0;
    }
}

void rdl_span_set_bool(rdl_span_t *s, const char *key, bool value)
{
    tr_attr_t *a = attr_for(s, key);
    if (a) {
        a->type = RDL_ATTR_BOOL;
        a->v.b = value;
        a->len = 0;
    }
}

/* Copies attrs (at most max of them) into the span's storage. */
static tr_attr_t *copy_attrs(rdl_span_t *s, const rdl_attr_t *attrs, size_t n, uint32_t *count,
                             uint32_t *dropped)
{
    size_t max = (size_t)s->tracer->o.max_attributes;
    size_t keep = n < max ? n : max;
    *count = 0;
    *dropped = (uint32_t)(n - keep);
    if (!keep)
        return NULL;
    tr_attr_t *out = span_alloc(s, keep * sizeof(*out));
    if (!out) {
        *dropped = (uint32_t)n;
        return NULL;
    }
    for (size_t i = 0; i < keep; i++) {
        const rdl_attr_t *in = &attrs[i];
        tr_attr_t *a = &out[*count];
        size_t klen = in->key_len ? in->key_len : strlen(in->key);
        bool is_str = in->type == RDL_ATTR_STRING;
        if (klen > TR_MAX_KEY || (is_str && in->v.str.len > TR_MAX_VALUE)) {
            (*dropped)++;
            continue;
        }
        a->key = span_strdup(s, in->key, &klen);
        a->key_len = (uint16_t)klen;
        if (is_str) {
            size_t vlen = in->v.str.len;
            a->type = RDL_ATTR_STRING;
            a->v.s = span_strdup(s, in->v.str.s, &vlen);
            a->len = (uint32_t)vlen;
        } else {
            attr_set_scalar(a, in);
        }
        if (!a->key || klen > TR_MAX_KEY || (is_str && !a->v.s)) {
            *dropped += (uint32_t)(keep - i);
            break;
        }
        (*count)++;
    }
    return out;
}

void rdl_span_add_event(rdl_span_t *s, const char *name, const rdl_attr_t *attrs, size_t n)
{
    if (!rdl_span_recording(s) || !name)
        return;
    if (s->nevents >= (uint32_t)s->tracer->o.max_events) {
        s->dropped_events++;
        return;
    }
    tr_event_t *e = span_alloc(s, sizeof(*e));
    size_t name_len = strlen(name);
    if (!e || !(e->name = span_strdup(s, name, &name_len))) {
        s->dropped_events++;
        return;
    }
    e->next = NULL;
    e->time_ns = s->start_wall + (rdl_now_ns() - s->start_mono);
    e->attrs = copy_attrs(s, attrs, n, &e->nattrs, &e->dropped);
    if (s->events_tail)
        s->events_tail->next = e;
    else
        s->events = e;
    s->events_tail = e;
    s->nevents++;
}

void rdl_span_add_link(rdl_span_t *s, const rdl_span_context_t *sc, const rdl_attr_t *attrs, size_t n)
{
    if (!rdl_span_recording(s) || !rdl_span_context_valid(sc))
        return;
    if (s->nlinks >= (uint32_t)s->tracer->o.max_links) {
        s->dropped_links++;
        return;
    }
    tr_link_t *l = span_alloc(s, sizeof(*l));
    if (!l) {
        s->dropped_links++;
        return;
    }
    l->next = NULL;
    memcpy(l->trace_id, sc->trace_id, 16);
    memcpy(l->span_id, sc->span_id, 8);
    l->flags = sc->flags;
    size_t ts_len = sc->tracestate_len;
    l->tracestate = ts_len ? span_strdup(s, sc->tracestate, &ts_len) : NULL;
    l->attrs = copy_attrs(s, attrs, n, &l->nattrs, &l->dropped);
    if (s->links_tail)
        s->links_tail->next = l;
    else
        s->links = l;
    s->links_tail = l;
    s->nlinks++;
}

void rdl_span_set_status(rdl_span_t *s, rdl_span_status_t code, const char *message)
{
    if (!rdl_span_recording(s))
        return;
    /* OK is final; UNSET never overrides (the spec's precedence). */
    if (s->status == RDL_STATUS_OK || code == RDL_STATUS_UNSET)
        return;
    s->status = (uint8_t)code;
    size_t len = message ? strlen(message) : 0;
    s->status_msg = code == RDL_STATUS_ERROR && message ? span_strdup(s, message, &len) : NULL;
}

void rdl_span_set_name(rdl_span_t *s, const char *name)
{
    if (rdl_span_recording(s) && name) {
        size_t len = strlen(name);
        const char *copy = span_strdup(s, name, &len);
        if (copy) {
            s->name = copy;
            s->name_len = len;
        }
    }
}

/* ---- end ------------------------------------------------------------- */

static void wake_exporter(rdl_tracer_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->wake = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* Pushes an ended recording span into this thread's queue, or drops it when full. */
static void enqueue(tr_thread_t *st, rdl_span_t *s)
{
    uint32_t head = atomic_load_explicit(&st->head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&st->tail, memory_order_acquire);
    if (head - tail >= (uint32_t)st->tracer->o.max_queue) {
        atomic_store_explicit(&st->dropped, atomic_load_explicit(&st->dropped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        span_put(s, st);
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

/* Spans parked by a keep-errors holder, handled per its decision. */
static void holder_flush(tr_thread_t *st, tr_holder_t *h)
{
    rdl_span_t *list = atomic_exchange(&h->parked, NULL);
    bool keep = atomic_load(&h->decision) == 1;
    for (rdl_span_t *s = list, *next; s; s = next) {
        next = s->next;
        if (keep)
            enqueue(st, s);
        else
            span_put(s, st);
    }
}

static void holder_release(tr_holder_t *h)
{
    if (atomic_fetch_sub(&h->refs, 1) == 1)
        free(h);
}

static void end_held(tr_thread_t *st, rdl_span_t *s)
{
    tr_holder_t *h = s->holder;
    if (s->is_local_root) {
        atomic_store(&h->decision, s->status == RDL_STATUS_ERROR ? 1 : 2);
        holder_flush(st, h);
        if (s->status == RDL_STATUS_ERROR)
            enqueue(st, s);
        else
            span_put(s, st);
    } else {
        rdl_span_t *old = atomic_load(&h->parked);
        do {
            s->next = old;
        } while (!atomic_compare_exchange_weak(&h->parked, &old, s));
        if (atomic_load(&h->decision) != 0)
            holder_flush(st, h);        /* the root decided already: follow it */
    }
    holder_release(h);
}

/* 0 means now, read only for a recording span (an unsampled one needs no time). */
void rdl_span_end_at(rdl_span_t *s, uint64_t end_mono)
{
    if (!s || atomic_exchange_explicit(&s->ended, true, memory_order_acq_rel))
        return;
    tr_thread_t *st = thread_state(s->tracer);
    if (!s->recording) {
        if (st)
            span_put(s, st);
        return;
    }
    if (!end_mono)
        end_mono = rdl_now_ns();
    s->end_wall = s->start_wall + (end_mono > s->start_mono ? end_mono - s->start_mono : 0);
    if (s->slot >= 0)
        atomic_store_explicit(&s->home->slots[s->slot].span, NULL, memory_order_release);
    if (!st) {
        /* No memory for this thread's state: the span cannot be queued. */
        atomic_fetch_add(&s->tracer->dropped, 1);
        span_put(s, NULL);
        return;
    }
    atomic_store_explicit(&st->ended, atomic_load_explicit(&st->ended, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (s->holder)
        end_held(st, s);
    else
        enqueue(st, s);
}

void rdl_span_end(rdl_span_t *s)
{
    rdl_span_end_at(s, 0);
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
