/*
 * trace.h: distributed tracing that joins an OpenTelemetry pipeline (collector,
 * Jaeger, Tempo) with no C++ in the process: W3C traceparent/tracestate,
 * baggage and B3 propagation, samplers, spans, a batch processor and an
 * OTLP/HTTP exporter (protobuf or JSON, our own small encoder, libcurl).
 *
 *   rdl_tracer_opts_t o; rdl_tracer_opts_default(&o);
 *   rdl_tracer_opts_from_env(&o, &err);              // OTEL_* variables
 *   rdl_tracer_t *t; rdl_tracer_new(&o, &t);
 *   rdl_span_t *s = rdl_span_start(t, "GET /v1/courses/{id}", RDL_SPAN_SERVER, NULL);
 *   rdl_span_set_int(s, "http.response.status_code", 200); rdl_span_end(s);
 *   rdl_tracer_free(t);                              // flushes within the deadline
 *
 * Threading: spans are started and ended on any thread without a global lock:
 * each thread keeps its own span free list and its own bounded queue of ended
 * spans, drained by the tracer's exporter thread. One span is used by one
 * thread at a time (hand it over with the request, as the runtime does).
 * Parsers and formatters work on caller-owned memory and are safe anywhere.
 */
#ifndef REDLINE_TRACE_H
#define REDLINE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "redline/common.h"
#include "redline/util.h"

/* ---- span context and propagation ------------------------------------ */

#define RDL_TRACESTATE_MAX 512          /* combined length we propagate (W3C minimum) */
#define RDL_TRACESTATE_MEMBERS 32
#define RDL_TRACEPARENT_LEN 55
#define RDL_TRACE_FLAG_SAMPLED 0x01
#define RDL_TRACE_FLAG_RANDOM 0x02

typedef struct rdl_span_context {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;                      /* W3C trace flags: test bits, never equality */
    bool remote;                        /* extracted from a carrier */
    uint16_t tracestate_len;
    char tracestate[RDL_TRACESTATE_MAX + 1];   /* normalised list, "" when none */
} rdl_span_context_t;

/* Non-zero trace id and non-zero span id. */
RDL_EXTERN bool rdl_span_context_valid(const rdl_span_context_t *sc);

/*
 * Parses a traceparent value (surrounding spaces and tabs tolerated) into
 * trace id, parent id and flags; tracestate is cleared. Version 00 must be
 * exactly 55 characters; a higher version may carry more after a '-'; version
 * ff, uppercase or non-hex, and all-zero ids are refused. Returns 0 or
 * RDL_EINVAL with err (may be NULL) naming the column and what was expected.
 */
RDL_EXTERN int rdl_traceparent_parse(const char *s, size_t n, rdl_span_context_t *out,
                                     rdl_error_t *err);
/* Writes "00-<trace>-<span>-<flags>" and a NUL into out; returns 55. */
RDL_EXTERN size_t rdl_traceparent_format(const rdl_span_context_t *sc,
                                         char out[RDL_TRACEPARENT_LEN + 1]);

/*
 * Validates a tracestate value (several headers joined with ',') and stores it
 * normalised in sc->tracestate: empty members dropped, at most 32 members, at
 * most 512 bytes (longest members over 128 bytes removed first, then from the
 * right). A malformed value or a duplicate key clears tracestate and returns
 * RDL_EINVAL; the traceparent stays valid either way.
 */
RDL_EXTERN int rdl_tracestate_parse(const char *s, size_t n, rdl_span_context_t *sc,
                                    rdl_error_t *err);
/* Puts key=value at the front, removing an older member with that key. RDL_EINVAL for a bad key or value. */
RDL_EXTERN int rdl_tracestate_set(rdl_span_context_t *sc, const char *key, const char *value);
/* The value of key in sc's tracestate, not NUL-terminated; NULL when absent. */
RDL_EXTERN const char *rdl_tracestate_get(const rdl_span_context_t *sc, const char *key,
                                          size_t *len);

/*
 * Baggage: name/value pairs carried with a request (W3C baggage). Values are
 * stored decoded; properties are kept verbatim for re-injection.
 */
#define RDL_BAGGAGE_MAX_MEMBERS 64
#define RDL_BAGGAGE_MAX_BYTES 8192

typedef struct rdl_baggage_member {
    uint16_t key, key_len;              /* offsets into data */
    uint16_t value, value_len;          /* decoded */
    uint16_t props, props_len;          /* ";p1;p2=v" as received, trimmed */
} rdl_baggage_member_t;

typedef struct rdl_baggage {
    int n;
    rdl_baggage_member_t m[RDL_BAGGAGE_MAX_MEMBERS];
    uint16_t used;
    char data[RDL_BAGGAGE_MAX_BYTES];
} rdl_baggage_t;

RDL_EXTERN void rdl_baggage_init(rdl_baggage_t *b);
/*
 * Adds the members of one baggage header to b (call once per header). A
 * malformed member (bad key, bad percent-encoding, stray characters) makes
 * the whole header invalid: nothing of it is added and RDL_EINVAL says where.
 * Members past 64, or past 8192 bytes in all, are dropped whole (RDL_EBUSY
 * after adding what fits). Invalid UTF-8 after decoding becomes U+FFFD.
 */
RDL_EXTERN int rdl_baggage_parse(rdl_baggage_t *b, const char *s, size_t n, rdl_error_t *err);
/* Decoded value of key, NUL-terminated; NULL when absent. */
RDL_EXTERN const char *rdl_baggage_get(const rdl_baggage_t *b, const char *key);
/* Sets key (a token) to value (any bytes, percent-encoded on output). RDL_EINVAL, RDL_EBUSY when full. */
RDL_EXTERN int rdl_baggage_set(rdl_baggage_t *b, const char *key, const char *value);
/* Appends the header value ("k=v,k2=v2;p") to out, percent-encoding values. */
RDL_EXTERN void rdl_baggage_format(const rdl_baggage_t *b, rdl_buf_t *out);

/*
 * B3 (Zipkin). Single header "b3: {trace}-{span}[-{sampling}[-{parent}]]" or
 * "b3: 0"; multi headers X-B3-TraceId (16 or 32 hex, 64-bit ids left-padded),
 * X-B3-SpanId, X-B3-Sampled (1/0, true/false), X-B3-Flags (1 = debug). Pass
 * NULL for absent multi headers. A deny-only "0" returns RDL_ENOENT with
 * *sampled_out = 0 so a caller can honour it; garbage returns RDL_EINVAL.
 */
RDL_EXTERN int rdl_b3_parse_single(const char *s, size_t n, rdl_span_context_t *out,
                                   rdl_error_t *err);
RDL_EXTERN int rdl_b3_parse_multi(const char *trace_id, size_t trace_len, const char *span_id,
                                  size_t span_len, const char *sampled, size_t sampled_len,
                                  const char *flags, size_t flags_len, rdl_span_context_t *out,
                                  rdl_error_t *err);
/* The length of the single b3 header rdl_b3_format_single writes: "{trace32}-{span16}-{1|0}". */
#define RDL_B3_SINGLE_LEN 51
/* "{trace32}-{span16}-{1|0}" and a NUL into out; returns the length (RDL_B3_SINGLE_LEN). */
RDL_EXTERN size_t rdl_b3_format_single(const rdl_span_context_t *sc,
                                       char out[RDL_B3_SINGLE_LEN + 1]);

/* Which formats extract and inject, in order (OTEL_PROPAGATORS). */
typedef enum rdl_propagator {
    RDL_PROP_TRACECONTEXT = 1,
    RDL_PROP_BAGGAGE,
    RDL_PROP_B3,                        /* single header "b3" */
    RDL_PROP_B3MULTI                    /* X-B3-* headers */
} rdl_propagator_t;

typedef struct rdl_propagators {
    int n;
    rdl_propagator_t p[4];
} rdl_propagators_t;

/* Parses "tracecontext,baggage,b3,b3multi" or "none" (empty = tracecontext,baggage). */
RDL_EXTERN int rdl_propagators_parse(const char *list, rdl_propagators_t *out, rdl_error_t *err);

/*
 * Carrier access. get returns header `name` occurrence `index` (0-based,
 * case-insensitive name) or false past the last; set adds one header.
 */
typedef bool (*rdl_carrier_get_fn)(void *carrier, const char *name, size_t index,
                                   const char **value, size_t *len);
typedef void (*rdl_carrier_set_fn)(void *carrier, const char *name, const char *value);

/*
 * Extracts with each configured propagator in order; the first that finds a
 * valid context wins (two traceparent headers are invalid). Baggage, when
 * configured and bag is not NULL, is added to bag. Returns true when parent
 * holds a valid remote context.
 */
RDL_EXTERN bool rdl_propagation_extract(const rdl_propagators_t *p, rdl_carrier_get_fn get,
                                        void *carrier, rdl_span_context_t *parent,
                                        rdl_baggage_t *bag);
/* Injects sc (if valid) and bag (if not NULL and not empty) with each configured propagator. */
RDL_EXTERN void rdl_propagation_inject(const rdl_propagators_t *p, const rdl_span_context_t *sc,
                                       const rdl_baggage_t *bag, rdl_carrier_set_fn set,
                                       void *carrier);

/* ---- samplers -------------------------------------------------------- */

typedef enum rdl_sampler_kind {
    RDL_SAMPLER_ALWAYS_ON,
    RDL_SAMPLER_ALWAYS_OFF,
    RDL_SAMPLER_TRACEIDRATIO,
    RDL_SAMPLER_PARENTBASED_ALWAYS_ON,
    RDL_SAMPLER_PARENTBASED_ALWAYS_OFF,
    RDL_SAMPLER_PARENTBASED_TRACEIDRATIO
} rdl_sampler_kind_t;

typedef struct rdl_sampler {
    rdl_sampler_kind_t kind;
    double ratio;
    uint64_t bound;                     /* ratio * 2^63: the trace id test */
} rdl_sampler_t;

/*
 * name as OTEL_TRACES_SAMPLER ("parentbased_traceidratio"), arg as
 * OTEL_TRACES_SAMPLER_ARG (a ratio in [0, 1]; NULL or "" = 1.0).
 */
RDL_EXTERN int rdl_sampler_init(rdl_sampler_t *s, const char *name, const char *arg,
                                rdl_error_t *err);
/*
 * The head decision for a new span of trace_id whose parent is parent (NULL
 * or invalid: a root). traceidratio takes bytes 8..15 of the trace id as a
 * big-endian integer, shifted right by one, and samples when it is below
 * ratio * 2^63 (deterministic, and a higher ratio samples a superset).
 * parentbased_* follow the parent's sampled flag. Pure; any thread.
 */
RDL_EXTERN bool rdl_sampler_should_sample(const rdl_sampler_t *s, const rdl_span_context_t *parent,
                                          const uint8_t trace_id[16]);
/* "TraceIdRatioBased{0.250000}", "ParentBased{root:AlwaysOnSampler}", ... into out. */
RDL_EXTERN const char *rdl_sampler_describe(const rdl_sampler_t *s, char *out, size_t n);

/* ---- tracer ---------------------------------------------------------- */

typedef enum rdl_otlp_protocol { RDL_OTLP_PROTOBUF, RDL_OTLP_JSON } rdl_otlp_protocol_t;

typedef struct rdl_tracer_opts {
    char service_name[128];             /* OTEL_SERVICE_NAME; "" = unknown_service */
    char resource_attrs[1024];          /* OTEL_RESOURCE_ATTRIBUTES "k=v,k2=v2" (percent-decoded) */
    rdl_sampler_t sampler;              /* OTEL_TRACES_SAMPLER(_ARG); default parentbased_always_on */
    bool keep_errors;                   /* export unsampled traces whose local root ends in error */
    bool export;                        /* false: spans are never recorded (ids still flow) */
    /* per-span limits (OTEL_SPAN_*_COUNT_LIMIT) */
    int max_attributes;                 /* 128 */
    int max_events;                     /* 128 */
    int max_links;                      /* 128 */
    uint64_t unfinished_ms;             /* open longer than this: counted, logged once (60 s) */
    /* batch processor (OTEL_BSP_*) */
    int max_queue;                      /* ended spans waiting per producing thread (2048) */
    int max_batch;                      /* spans per export request (512) */
    uint64_t schedule_delay_ms;         /* longest wait before an export (5000) */
    uint64_t export_timeout_ms;         /* one export, retries included (30000) */
    /* exporter (OTEL_EXPORTER_OTLP_*) */
    char endpoint[512];                 /* full URL of the traces endpoint */
    rdl_otlp_protocol_t protocol;       /* http/protobuf (default) or http/json */
    char headers[1024];                 /* "k=v,k2=v2" */
    bool gzip;                          /* OTEL_EXPORTER_OTLP_COMPRESSION=gzip */
    uint64_t timeout_ms;                /* one HTTP request (10000) */
    uint64_t retry_initial_ms;          /* first backoff (1000), doubled up to retry_max_ms */
    uint64_t retry_max_ms;              /* 30000 */
    uint64_t shutdown_ms;               /* rdl_tracer_free flush deadline (5000) */
    /* Where the tracer reports trouble (unfinished spans, failed exports); NULL = a JSON line on stderr. */
    void (*log)(void *arg, const char *level, const char *msg, const char *key, const char *value);
    void *log_arg;
} rdl_tracer_opts_t;

RDL_EXTERN void rdl_tracer_opts_default(rdl_tracer_opts_t *o);
/*
 * Applies the OTEL_* variables that are set (service name, resource,
 * sampler, span limits, BSP, exporter endpoint/protocol/headers/compression/
 * timeout; OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true turn export
 * off). A malformed value returns RDL_EINVAL with err->key naming the variable.
 */
RDL_EXTERN int rdl_tracer_opts_from_env(rdl_tracer_opts_t *o, rdl_error_t *err);

typedef struct rdl_tracer rdl_tracer_t;

/* Starts the exporter thread when o->export. Main thread. */
RDL_EXTERN int rdl_tracer_new(const rdl_tracer_opts_t *o, rdl_tracer_t **out);
/*
 * Exports what is queued within o->shutdown_ms, reports (counts and logs) the
 * spans still open, stops the exporter thread and frees everything. Every
 * span must have ended or be abandoned: its memory goes too. NULL is fine.
 */
RDL_EXTERN void rdl_tracer_free(rdl_tracer_t *t);
/* Exports everything ended so far; waits up to timeout_ms. 0 or RDL_ETIMEDOUT. Any thread. */
RDL_EXTERN int rdl_tracer_flush(rdl_tracer_t *t, uint64_t timeout_ms);

typedef struct rdl_tracer_stats {
    uint64_t spans_started;             /* recording spans */
    uint64_t spans_ended;
    uint64_t spans_exported;            /* accepted by the receiver */
    uint64_t spans_dropped;             /* queue full, export failed, or rejected */
    uint64_t spans_unfinished;          /* seen open past unfinished_ms */
    uint64_t spans_open;                /* recording spans not ended */
    uint64_t export_requests;           /* HTTP requests sent (retries included) */
    uint64_t export_failures;           /* batches given up */
} rdl_tracer_stats_t;

/* Sums the per-thread counters (relaxed). Any thread. */
RDL_EXTERN void rdl_tracer_stats(const rdl_tracer_t *t, rdl_tracer_stats_t *out);
RDL_EXTERN const rdl_sampler_t *rdl_tracer_sampler(const rdl_tracer_t *t);

/* The process's default tracer (NULL until set). Set from the main thread. */
RDL_EXTERN rdl_tracer_t *rdl_tracer_default(void);
RDL_EXTERN void rdl_tracer_set_default(rdl_tracer_t *t);

/* ---- spans ----------------------------------------------------------- */

typedef enum rdl_span_kind {
    RDL_SPAN_INTERNAL = 1,
    RDL_SPAN_SERVER = 2,
    RDL_SPAN_CLIENT = 3,
    RDL_SPAN_PRODUCER = 4,
    RDL_SPAN_CONSUMER = 5
} rdl_span_kind_t;

typedef enum rdl_span_status { RDL_STATUS_UNSET = 0, RDL_STATUS_OK = 1, RDL_STATUS_ERROR = 2 } rdl_span_status_t;

typedef enum rdl_attr_type { RDL_ATTR_STRING, RDL_ATTR_INT, RDL_ATTR_DOUBLE, RDL_ATTR_BOOL } rdl_attr_type_t;

/* A typed attribute (for events and links; spans have setters). */
typedef struct rdl_attr {
    const char *key;
    size_t key_len;                     /* 0: strlen(key) (spans fill it in their copies) */
    rdl_attr_type_t type;
    union {
        struct { const char *s; size_t len; } str;
        int64_t i;
        double d;
        bool b;
    } v;
} rdl_attr_t;

typedef struct rdl_span rdl_span_t;

/*
 * Starts a span, child of parent (a local span) or a root when parent is
 * NULL; t may be NULL to use the parent's tracer (or the default one). The
 * sampler decides at the start; a span not sampled is still returned (it
 * carries ids for propagation) but records nothing, unless keep_errors holds
 * it until its local root ends. Returns NULL only when there is no tracer or
 * no memory; every span function accepts NULL.
 */
RDL_EXTERN rdl_span_t *rdl_span_start(rdl_tracer_t *t, const char *name, rdl_span_kind_t kind,
                                      const rdl_span_t *parent);
/* Same with a remote parent from rdl_propagation_extract (NULL or invalid: root). */
RDL_EXTERN rdl_span_t *rdl_span_start_remote(rdl_tracer_t *t, const char *name,
                                             rdl_span_kind_t kind,
                                             const rdl_span_context_t *parent);
/*
 * Same, started at mono_ns: a reading of rdl_now_ns() the caller took
 * already (the runtime passes its request's start, one clock read less per
 * request on a path where each read costs ~25 ns). 0 means now.
 */
RDL_EXTERN rdl_span_t *rdl_span_start_remote_at(rdl_tracer_t *t, const char *name,
                                                rdl_span_kind_t kind,
                                                const rdl_span_context_t *parent, uint64_t mono_ns);
/* Its ids, flags and tracestate (for injection and log lines). */
RDL_EXTERN const rdl_span_context_t *rdl_span_context(const rdl_span_t *s);
RDL_EXTERN bool rdl_span_recording(const rdl_span_t *s);

/*
 * Attributes: the value is copied; setting a key again replaces it; past
 * max_attributes the new key is dropped and counted. Copied strings (names,
 * keys, values, event names, status messages) that are not valid UTF-8 have
 * each invalid sequence replaced by U+FFFD, as OTLP requires. Events and links are
 * capped the same way. All are no-ops on a span that is not recording or has
 * ended. Thread-safety: the thread using the span.
 */
RDL_EXTERN void rdl_span_set_str(rdl_span_t *s, const char *key, const char *value, size_t len);
RDL_EXTERN void rdl_span_set_int(rdl_span_t *s, const char *key, int64_t value);
RDL_EXTERN void rdl_span_set_double(rdl_span_t *s, const char *key, double value);
RDL_EXTERN void rdl_span_set_bool(rdl_span_t *s, const char *key, bool value);
/*
 * Sets n attributes at once, the cheap way for instrumentation that knows its
 * keys (the runtime's server span). Flags:
 *   RDL_ATTRS_STATIC_KEYS  every key outlives the span (string literals): kept
 *                          by pointer, not copied; key_len 0 is measured;
 *   RDL_ATTRS_NEW_KEYS     no key of attrs is set on the span yet and none
 *                          repeats in attrs: appended without looking for a
 *                          key to replace (breaking this duplicates a key).
 * Without RDL_ATTRS_NEW_KEYS a key set before is replaced, as by the setters.
 * String values are copied; limits and no-ops as above. The thread using the span.
 */
enum { RDL_ATTRS_STATIC_KEYS = 1, RDL_ATTRS_NEW_KEYS = 2 };
RDL_EXTERN void rdl_span_set_attrs(rdl_span_t *s, const rdl_attr_t *attrs, size_t n,
                                   unsigned flags);
RDL_EXTERN void rdl_span_add_event(rdl_span_t *s, const char *name, const rdl_attr_t *attrs,
                                   size_t n);
RDL_EXTERN void rdl_span_add_link(rdl_span_t *s, const rdl_span_context_t *sc,
                                  const rdl_attr_t *attrs, size_t n);
RDL_EXTERN void rdl_span_set_status(rdl_span_t *s, rdl_span_status_t code, const char *message);
RDL_EXTERN void rdl_span_set_name(rdl_span_t *s, const char *name);
/*
 * Ends the span: its end time is its start wall-clock time plus the monotonic
 * duration. It is queued for export (or dropped and counted when the thread's
 * queue is full). Ending twice is a no-op. After the end, the span may be
 * recycled once it is exported: do not keep the pointer.
 */
RDL_EXTERN void rdl_span_end(rdl_span_t *s);
/* Same, ended at mono_ns (rdl_now_ns()'s clock; before the start counts as the start; 0: now). */
RDL_EXTERN void rdl_span_end_at(rdl_span_t *s, uint64_t mono_ns);

/* ---- encoding (exposed for tests, benchmarks and other exporters) ---- */

/*
 * Encodes ended spans as one ExportTraceServiceRequest: protobuf binary or
 * OTLP/JSON (hex ids, decimal-string 64-bit integers, integer enums) into out.
 */
RDL_EXTERN void rdl_otlp_encode(const rdl_tracer_t *t, rdl_span_t *const *spans, size_t n,
                                rdl_otlp_protocol_t proto, rdl_buf_t *out);
/*
 * Reads an ExportTraceServiceResponse body (an empty body is one): *rejected
 * receives partialSuccess.rejectedSpans (0 when absent) and message (may be
 * NULL; reset first) its errorMessage, as sent. RDL_EINVAL, with err (may be
 * NULL) naming the place (the byte as column for protobuf, line and column for
 * JSON) and what was expected, when the body is not one; *rejected is then 0
 * and message empty. Any thread.
 */
RDL_EXTERN int rdl_otlp_parse_response(const char *body, size_t n, rdl_otlp_protocol_t proto,
                                       int64_t *rejected, rdl_buf_t *message, rdl_error_t *err);

#endif
