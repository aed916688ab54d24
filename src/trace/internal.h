/*
 * internal.h: the tracer's private structures, shared by tracer.c (the
 * tracer object), threads.c (per-thread state), span.c (the span API),
 * otlp.c (encoding), export.c (batch processor and HTTP exporter) and env.c.
 * Layers, each calling only those below it: internal.h's types and env.c;
 * threads.c (per-thread state, its interface in threads.h); span.c and
 * export.c (the exporter, its interface in export.h), each on threads.h;
 * tracer.c on all of them. Nothing here is public API.
 */
#ifndef REDLINE_TRACE_INTERNAL_H
#define REDLINE_TRACE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include "redline/trace.h"

#define TR_INLINE_STORE 1024            /* bytes of copied strings most spans need */
#define TR_INLINE_ATTRS 16
#define TR_MAX_RESOURCE 32

/*
 * An attribute as a span stores it: 24 bytes where the public rdl_attr_t
 * takes 40. Spans are written on the request's core and read on the
 * exporter's, so every line a span spans is a transfer each way: with a
 * dozen attributes per server span this saves four of them.
 */
typedef struct tr_attr {
    const char *key;
    union {
        const char *s;
        int64_t i;
        double d;
        bool b;
    } v;
    uint32_t len;                       /* string value bytes */
    uint16_t key_len;
    uint8_t type;                       /* rdl_attr_type_t */
} tr_attr_t;

#define TR_MAX_KEY 65535                /* longer keys are dropped (counted) */
#define TR_MAX_VALUE 0xffffffffu        /* longer string values are dropped (counted) */

typedef struct tr_chunk {
    struct tr_chunk *next;
    size_t size;
    char data[];
} tr_chunk_t;

typedef struct tr_event {
    struct tr_event *next;
    const char *name;
    uint64_t time_ns;
    tr_attr_t *attrs;
    uint32_t nattrs, dropped;
} tr_event_t;

typedef struct tr_link {
    struct tr_link *next;
    uint8_t trace_id[16], span_id[8];
    uint8_t flags;
    const char *tracestate;
    tr_attr_t *attrs;
    uint32_t nattrs, dropped;
} tr_link_t;

/*
 * The keep-errors holder of one unsampled local trace: its spans wait here
 * until the local root decides (keep when it ended in error).
 */
typedef struct tr_holder {
    atomic_int refs;                    /* spans of the trace not yet ended, + 1 for the root */
    atomic_int decision;                /* 0 pending, 1 keep, 2 drop */
    _Atomic(rdl_span_t *) parked;
} tr_holder_t;

typedef struct tr_thread tr_thread_t;

/*
 * What a span start writes and the encoder reads comes first and together
 * (a few lines), then the context (its ids lead; the tracestate's 512
 * bytes are touched only when one was received), the inline attributes and
 * the inline string storage.
 */
struct rdl_span {
    rdl_span_t *next;                   /* queue, free list, parked list */
    tr_thread_t *home;                  /* whose free list it returns to */
    rdl_tracer_t *tracer;
    uint8_t parent_span_id[8];
    bool has_parent, parent_remote;
    bool recording;
    atomic_bool ended;
    uint8_t kind, status;
    bool is_local_root;
    int slot;                           /* open-span slot in home, -1 when untracked */
    tr_holder_t *holder;                /* keep-errors, NULL otherwise */
    const char *name;
    size_t name_len;
    const char *status_msg;
    uint64_t start_wall, start_mono, end_wall;
    tr_attr_t *attrs;
    uint64_t key_bits;                  /* one bit per key set (a hash): most misses skip the scan */
    uint32_t nattrs, cap_attrs, dropped_attrs;
    uint32_t nevents, dropped_events;
    uint32_t nlinks, dropped_links;
    tr_event_t *events, *events_tail;
    tr_link_t *links, *links_tail;
    /* bump storage: inline first, then heap chunks freed at recycling */
    char *bump;
    size_t bump_left;
    tr_chunk_t *chunks;
    rdl_span_context_t sc;
    tr_attr_t attrs_inline[TR_INLINE_ATTRS];
    char store[TR_INLINE_STORE];
};

/* One open recording span, watched for the "unfinished span" failure. */
typedef struct tr_slot {
    _Atomic(rdl_span_t *) span;
    _Atomic uint64_t start_mono;
    atomic_bool reported;
} tr_slot_t;

#define TR_SLOTS 1024

/*
 * What the owner writes on every span and what the exporter writes (tail,
 * back) live on separate cache lines: sharing one, each span start and end
 * waited for the line the exporter had just taken (false sharing).
 */
struct tr_thread {
    rdl_tracer_t *tracer;
    tr_thread_t *next;                  /* tracer->threads, under tracer->mu */
    rdl_span_t *free;                   /* owner only */
    /* ended spans, single producer (owner) single consumer (exporter) */
    rdl_span_t **ring;
    uint32_t mask;
    _Atomic uint32_t head;              /* written by the owner */
    uint32_t slot_hint;
    uint64_t wall_minus_mono;           /* wall clock = monotonic + this (resynced each second) */
    uint64_t synced_mono;
    /* counters written by the owner, summed by readers */
    _Atomic uint64_t started, ended, dropped;
    _Alignas(64) _Atomic uint32_t tail; /* written by the exporter */
    _Alignas(64) _Atomic(rdl_span_t *) back;    /* spans returned by other threads (push-only stack) */
    _Alignas(64) tr_slot_t slots[TR_SLOTS];
};

typedef struct tr_kv {
    char *key, *value;
} tr_kv_t;

struct rdl_tracer {
    rdl_tracer_opts_t o;
    uint64_t id;                        /* distinguishes tracers reusing an address */
    tr_kv_t resource[TR_MAX_RESOURCE];
    int nresource;
    pthread_mutex_t mu;
    pthread_cond_t cv;                  /* wakes the exporter */
    pthread_cond_t flushed;             /* wakes flush waiters */
    tr_thread_t *threads;
    pthread_t exporter;
    bool running;
    bool stop;                          /* under mu: drain and exit */
    bool wake;                          /* under mu: a queue reached a batch */
    atomic_bool wake_sent;              /* a producer signalled; cleared by the exporter when it looks */
    uint64_t flush_req, flush_done;     /* under mu */
    _Atomic uint64_t deadline_ns;       /* cut retries and requests after this (shutdown); 0 = none */
    _Atomic uint64_t exported, dropped, requests, failures, unfinished;
    atomic_bool unfinished_logged;
    void *http;                         /* export.c's client state */
};

/* propagate.c: the header grammar env.c's lists share (W3C Baggage's form) */
/* Drops spaces and tabs (OWS) at both ends of s[0..*n). */
void rdl__trace_trim(const char **s, size_t *n);
/* Whether c is an RFC 9110 tchar: a letter, a digit or one of !#$%&'*+-.^_`|~. */
bool rdl__trace_tchar(unsigned char c);

/* env.c */
int rdl__trace_parse_resource(rdl_tracer_t *t);
/*
 * OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS: "key=value" members
 * separated by commas, blanks around keys and values ignored, empty members
 * skipped, values percent-encoded (W3C Baggage's form, as the OpenTelemetry
 * specification says). fn gets each member with its value decoded (not
 * NUL-terminated). headers also asks for a token key and a value without
 * control characters. Returns 0, fn's first error, or RDL_EINVAL with err
 * naming name and the 1-based column of the fault.
 */
typedef int (*tr_kv_fn)(void *arg, const char *key, size_t key_len, const char *value, size_t value_len);
int rdl__trace_kv_list(const char *name, const char *list, bool headers, tr_kv_fn fn, void *arg,
               rdl_error_t *err);

#endif
