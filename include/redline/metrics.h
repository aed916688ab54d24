/*
 * metrics.h: a Prometheus / OpenMetrics registry for any C program.
 *
 * Counters, gauges and histograms, with or without labels, exposed in the
 * Prometheus text format 0.0.4 or OpenMetrics 1.0 text. The hot path (inc,
 * add, observe) takes no lock, allocates nothing and makes no syscall: every
 * thread writes its own cell of a series (single-writer relaxed atomics in a
 * per-thread slot), and a scrape sums the cells. Finding the series of a
 * label set is a lock-free hash lookup done once, outside the hot path; a
 * per-vector cardinality limit sends label sets beyond it to one overflow
 * series and counts them, so memory never grows without bound.
 *
 *   rdl_counter_t *req;  rdl_error_t err;
 *   rdl_counter_new(NULL, "jobs_done_total", "Jobs finished.", &req, &err);
 *   rdl_counter_inc(req);                        // ~1-2 ns, any thread
 *   rdl_buf_t b; rdl_buf_init(&b);
 *   rdl_metrics_expose(NULL, RDL_FMT_TEXT, &b);  // "# HELP jobs_done_total ..."
 *
 * Thread-safety: every function is safe from any thread, concurrently.
 * Registration and label lookup take locks (never held while a writer
 * writes); inc/add/set/observe take none. Scraping never blocks writers.
 * Ownership: a registry owns its metrics and every handle it hands out; the
 * handles stay valid until rdl_registry_free(). Names, help and label values
 * are copied. A registry argument of NULL means the default registry.
 */
#ifndef REDLINE_METRICS_H
#define REDLINE_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "redline/common.h"
#include "redline/util.h"

typedef struct rdl_registry rdl_registry_t;
typedef struct rdl_metric rdl_metric_t;         /* a family: name, type, labels, series */
typedef struct rdl_counter rdl_counter_t;       /* one counter series */
typedef struct rdl_gauge rdl_gauge_t;           /* one gauge series */
typedef struct rdl_histogram rdl_histogram_t;   /* one histogram series */

typedef enum rdl_metric_type {
    RDL_METRIC_COUNTER,
    RDL_METRIC_GAUGE,
    RDL_METRIC_HISTOGRAM
} rdl_metric_type_t;

typedef enum rdl_format {
    RDL_FMT_TEXT,               /* Prometheus text 0.0.4 */
    RDL_FMT_OPENMETRICS         /* OpenMetrics 1.0.0 text */
} rdl_format_t;

/* Limits checked at registration. */
#define RDL_METRICS_MAX_LABELS 16
#define RDL_METRICS_MAX_BUCKETS 256
#define RDL_METRICS_DEFAULT_MAX_SERIES 1000
#define RDL_METRICS_MAX_SERIES 1000000
/* The value every label of a vector's overflow series takes. */
#define RDL_METRICS_OVERFLOW "__overflow__"

/* ---- registries -------------------------------------------------------- */

/* The process-wide default registry (created on first use, never freed). */
RDL_EXTERN rdl_registry_t *rdl_registry_default(void);
/* A registry of one's own: 0 or RDL_ENOMEM. */
RDL_EXTERN int rdl_registry_new(rdl_registry_t **out);
/* Frees the registry, its metrics and handles. No other thread may use them. NULL is fine. */
RDL_EXTERN void rdl_registry_free(rdl_registry_t *r);

/* ---- registration ------------------------------------------------------ */

/*
 * What a family is. name: [a-zA-Z_:][a-zA-Z0-9_:]*; counters end in "_total"
 * (the OpenMetrics family name is the name without it). label names:
 * [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", unique, and not "le" for a
 * histogram. help: any text (invalid UTF-8 becomes U+FFFD).
 */
typedef struct rdl_metric_opts {
    const char *name;
    const char *help;
    const char *const *labels;  /* label names; NULL/0: one unlabelled series */
    size_t nlabels;
    const double *buckets;      /* histograms: finite upper bounds, strictly increasing; */
    size_t nbuckets;            /* NULL/0: rdl_metrics_default_buckets */
    size_t max_series;          /* labelled: label sets before the overflow series;
                                   0 = RDL_METRICS_DEFAULT_MAX_SERIES */
} rdl_metric_opts_t;

/*
 * Registers a family. 0; RDL_EINVAL (err says which name, label or bucket is
 * wrong and what was expected); RDL_EEXIST (a family already uses the name or
 * one of its sample names: x_total, x_bucket, x_sum, x_count); RDL_ENOMEM.
 * Never aborts.
 */
RDL_EXTERN int rdl_metric_new(rdl_registry_t *r, rdl_metric_type_t type, const rdl_metric_opts_t *o,
                              rdl_metric_t **out, rdl_error_t *err);

/* The family registered under name (a counter's full "_total" name), or NULL. */
RDL_EXTERN rdl_metric_t *rdl_metric_find(rdl_registry_t *r, const char *name);
RDL_EXTERN rdl_metric_type_t rdl_metric_type(const rdl_metric_t *m);

/* Shorthands for unlabelled families: register and return the one series. */
RDL_EXTERN int rdl_counter_new(rdl_registry_t *r, const char *name, const char *help,
                               rdl_counter_t **out, rdl_error_t *err);
RDL_EXTERN int rdl_gauge_new(rdl_registry_t *r, const char *name, const char *help,
                             rdl_gauge_t **out, rdl_error_t *err);
RDL_EXTERN int rdl_histogram_new(rdl_registry_t *r, const char *name, const char *help,
                                 const double *buckets, size_t nbuckets, rdl_histogram_t **out,
                                 rdl_error_t *err);

/*
 * The series for a label set: values holds one string per label name, in the
 * order of the names (NULL counts as ""). Looked up lock-free; a new label set
 * is created under the family's lock. Past max_series (or out of memory) the
 * family's overflow series (every label RDL_METRICS_OVERFLOW) is returned and
 * the rejected count grows; a label set whose every value is
 * RDL_METRICS_OVERFLOW is that series too. NULL only when the family has
 * another type.
 * Keep the handle: the lookup is the costly part, not the increment.
 */
RDL_EXTERN rdl_counter_t *rdl_metric_counter(rdl_metric_t *m, const char *const *values);
RDL_EXTERN rdl_gauge_t *rdl_metric_gauge(rdl_metric_t *m, const char *const *values);
RDL_EXTERN rdl_histogram_t *rdl_metric_histogram(rdl_metric_t *m, const char *const *values);
/* Label sets refused by the cardinality limit since registration. */
RDL_EXTERN uint64_t rdl_metric_rejected(const rdl_metric_t *m);

/* ---- the hot path: no lock, no allocation, no syscall ----------------- */

RDL_EXTERN void rdl_counter_inc(rdl_counter_t *c);
RDL_EXTERN void rdl_counter_add(rdl_counter_t *c, uint64_t n);
/* Adds a non-negative finite amount; others are ignored (counters never go down). */
RDL_EXTERN void rdl_counter_add_f(rdl_counter_t *c, double v);
/* Current value (a sum over threads; for tests and /debug/vars). */
RDL_EXTERN double rdl_counter_value(const rdl_counter_t *c);

RDL_EXTERN void rdl_gauge_set(rdl_gauge_t *g, double v);
RDL_EXTERN void rdl_gauge_add(rdl_gauge_t *g, double v);
RDL_EXTERN void rdl_gauge_inc(rdl_gauge_t *g);
RDL_EXTERN void rdl_gauge_dec(rdl_gauge_t *g);
RDL_EXTERN double rdl_gauge_value(const rdl_gauge_t *g);

/* Counts v in the first bucket whose bound is >= v (NaN is ignored). */
RDL_EXTERN void rdl_histogram_observe(rdl_histogram_t *h, double v);
/* Snapshot: total count and sum; cumulative[i] for bucket i (nbuckets + 1 slots, last = +Inf). */
RDL_EXTERN void rdl_histogram_read(const rdl_histogram_t *h, uint64_t *count, double *sum,
                                   uint64_t *cumulative, size_t nslots);

/* ---- buckets ----------------------------------------------------------- */

/* client_golang's defaults: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 (seconds). */
RDL_EXTERN extern const double rdl_metrics_default_buckets[11];
/* start, start+width, ...: count bounds into out. RDL_EINVAL unless width > 0 and count >= 1. */
RDL_EXTERN int rdl_buckets_linear(double start, double width, size_t count, double *out);
/* start, start*factor, ...: RDL_EINVAL unless start > 0, factor > 1 and count >= 1. */
RDL_EXTERN int rdl_buckets_exponential(double start, double factor, size_t count, double *out);

/* ---- callbacks and collectors ------------------------------------------ */

/*
 * An unlabelled counter or gauge whose value is read at scrape time by fn
 * (called on the scraping thread, under the registry's collector lock: it
 * must be quick and must not register metrics). Same name rules as above.
 */
typedef double (*rdl_metric_fn)(void *arg);
RDL_EXTERN int rdl_metric_new_callback(rdl_registry_t *r, rdl_metric_type_t type, const char *name,
                                       const char *help, rdl_metric_fn fn, void *arg,
                                       rdl_error_t *err);

/*
 * A collector writes whole families at scrape time (labelled callback values:
 * one gauge per course, one lag per I/O thread). In fn, call rdl_collect_family
 * then rdl_collect_value for each series. Families whose name, type or labels
 * are invalid, or that repeat a name, are left out of the exposition (the
 * rest still goes out). Same calling rules as rdl_metric_fn.
 */
typedef struct rdl_collect rdl_collect_t;
typedef void (*rdl_collector_fn)(rdl_collect_t *c, void *arg);
/* type: RDL_METRIC_COUNTER or RDL_METRIC_GAUGE. */
RDL_EXTERN void rdl_collect_family(rdl_collect_t *c, rdl_metric_type_t type, const char *name,
                                   const char *help);
RDL_EXTERN void rdl_collect_value(rdl_collect_t *c, const char *const *label_names,
                                  const char *const *label_values, size_t nlabels, double v);
/* Returns an id for rdl_collector_remove, or a negative RDL_E*. */
RDL_EXTERN int rdl_collector_add(rdl_registry_t *r, rdl_collector_fn fn, void *arg);
/* After it returns fn is not running and will not run again. */
RDL_EXTERN void rdl_collector_remove(rdl_registry_t *r, int id);

/* Registers the process_* metrics (CPU, RSS, virtual memory, fds, start time,
 * threads; Linux /proc) and the glibc allocator's figures (mallinfo2) as a
 * collector: its id (> 0) for rdl_collector_remove, or a negative RDL_E*. */
RDL_EXTERN int rdl_metrics_register_process(rdl_registry_t *r);

/* ---- exposition -------------------------------------------------------- */

/*
 * Appends the whole registry to out in fmt: families in registration order,
 * series in creation order, then collectors, then the cardinality-guard
 * counter; OpenMetrics ends with "# EOF". 0, or RDL_ENOMEM (out->oom).
 */
RDL_EXTERN int rdl_metrics_expose(rdl_registry_t *r, rdl_format_t fmt, rdl_buf_t *out);
/* The format an Accept header asks for (highest q we serve; text 0.0.4 by default). */
RDL_EXTERN rdl_format_t rdl_metrics_negotiate(const char *accept, size_t len);
/*
 * Whether an Accept-Encoding header takes gzip (RFC 9110 section 12.5.3):
 * "gzip" or "x-gzip" with q > 0, or "*" with q > 0 when gzip is not listed.
 * NULL or an empty header: no.
 */
RDL_EXTERN bool rdl_metrics_accepts_gzip(const char *accept_encoding, size_t len);
/* The exact Content-Type of a format. */
RDL_EXTERN const char *rdl_metrics_content_type(rdl_format_t fmt);

/* ---- /debug/vars ------------------------------------------------------- */

/* Writes one JSON value (object, number, string...) for a published variable. */
typedef void (*rdl_var_fn)(rdl_buf_t *out, void *arg);
/* Publishes a variable in /debug/vars (process-wide). RDL_EEXIST, RDL_EINVAL, RDL_ENOMEM. */
RDL_EXTERN int rdl_vars_publish(const char *name, rdl_var_fn fn, void *arg);
/* Withdraws it; fn will not run after this returns. */
RDL_EXTERN void rdl_vars_unpublish(const char *name);
/*
 * A JSON object like Go's expvar: "cmdline", "memstats" (mallinfo2 and
 * /proc figures), "threads", "uptime_seconds", "metrics" (every series of
 * registry r, "name{labels}": value) and each published variable.
 */
RDL_EXTERN int rdl_vars_write(rdl_registry_t *r, rdl_buf_t *out);

#endif
