/*
 * span.c: the span API. It exists to make a span cheap enough for every
 * request: a thread takes span objects from its own free list, copies strings
 * into the span's inline storage, and on end pushes the span into its own
 * single-producer queue for the exporter thread (threads.c keeps those). No
 * global lock and, once warm, no heap allocation on start/end; the exporter
 * hands spans back through a push-only stack per thread.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "trace/threads.h"

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

/* ---- start ----------------------------------------------------------- */

/* start_mono: the start on rdl_now_ns()'s clock, 0 for now. */
static rdl_span_t *span_begin(rdl_tracer_t *t, const char *name, rdl_span_kind_t kind,
                              const rdl_span_context_t *parent, const rdl_span_t *local_parent,
                              uint64_t start_mono)
{
    if (!t)
        t = local_parent ? local_parent->tracer : rdl_tracer_default();
    if (!t)
        return NULL;
    tr_thread_t *st = rdl__trace_thread(t);
    if (!st)
        return NULL;
    rdl_span_t *s = rdl__trace_span_get(st);
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
    s->start_wall = rdl__trace_wall_ns(st, s->start_mono);
    atomic_store_explicit(&st->started, atomic_load_explicit(&st->started, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    rdl__trace_track_open(st, s);
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

/* Spans parked by a keep-errors holder, handled per its decision. */
static void holder_flush(tr_thread_t *st, tr_holder_t *h)
{
    rdl_span_t *list = atomic_exchange(&h->parked, NULL);
    bool keep = atomic_load(&h->decision) == 1;
    for (rdl_span_t *s = list, *next; s; s = next) {
        next = s->next;
        if (keep)
            rdl__trace_enqueue(st, s);
        else
            rdl__trace_span_put(s, st);
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
            rdl__trace_enqueue(st, s);
        else
            rdl__trace_span_put(s, st);
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
    tr_thread_t *st = rdl__trace_thread(s->tracer);
    if (!s->recording) {
        if (st)
            rdl__trace_span_put(s, st);
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
        rdl__trace_span_put(s, NULL);
        return;
    }
    atomic_store_explicit(&st->ended, atomic_load_explicit(&st->ended, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (s->holder)
        end_held(st, s);
    else
        rdl__trace_enqueue(st, s);
}

void rdl_span_end(rdl_span_t *s)
{
    rdl_span_end_at(s, 0);
}

