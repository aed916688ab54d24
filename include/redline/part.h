/*
 * part.h: one interface for a red line. A part is a small constant table: its
 * name, the configuration keys it declares, and hooks the runtime calls at
 * fixed points of a server's life. The runtime (server.c) names no red line:
 * it runs the hooks of the parts in the server's list, in list order
 * (drained, thread_stop, stop and free in reverse). Adding a red line is a folder, a header, a part
 * table and one line in the list of parts the application passes.
 *
 *   static const rdl_part_t *const parts[] = { &rdl_part_log, &rdl_part_metrics, NULL };
 *   rdl_server_opts_t o; rdl_server_opts_default(&o);   // rdl_parts_default
 *   rdl_server_opts_parts(&o, parts);
 *   rdl_log_part_opts_t *lo = rdl_server_opts_part(&o, &rdl_part_log);
 *   lo->level = RDL_LOG_WARN;
 *
 * Each part owns an options struct (opts_size bytes, kept inside
 * rdl_server_opts_t so that it is copied with it): its defaults and the
 * configuration keys that write it are the part's.
 *
 * Hooks (any may be NULL), each given the server and the part's own state
 * (what install stored in *state; NULL until then):
 *   defaults      sets the part's options (rdl_server_opts_parts, and so
 *                 rdl_server_opts_default).
 *   config        declares the part's keys with its options as their
 *                 destination (rdl_server_opts_config), list order.
 *   check         rdl_server_opts_check, after the configuration is loaded:
 *                 the values only the part can judge (the tracer's OTEL_*
 *                 variables, the log file's directory), with the same parser
 *                 start uses, so that a bad one stops the program at load
 *                 (err names the key or variable). Reads opts only.
 *   install       rdl_server_new, main thread, given the part's options (they
 *                 live as long as the server): its middleware (app and admin
 *                 chains), admin routes, request slots, its state. An error
 *                 fails rdl_server_new (free still runs for the parts installed).
 *   start         rdl_server_run, main thread, before the listeners open: the
 *                 logger, the tracer, the first load of rules. An error fails
 *                 the run (err says why); the parts started before it stop.
 *   run           main thread: the I/O threads' structures and the pool exist,
 *                 the control loop (ctl) is up, no I/O thread runs yet:
 *                 collectors, signal and file watches on ctl.
 *   thread_start  on each I/O thread (app and admin), before its loop turns.
 *   thread_stop   on that thread when the runtime tears its loop down (after
 *                 its connections were aborted); closes what thread_start opened.
 *   drained       main thread, the drain is over and the control loop closes:
 *                 close what run opened on ctl; collectors off.
 *   stop          main thread, end of rdl_server_run, after the pool is gone
 *                 and before the final log flush (the tracer exports here).
 *   free          rdl_server_free: release the state (reverse list order; the
 *                 first part, the log, frees last).
 *
 * Threading: every hook but thread_start/thread_stop runs on the thread that
 * calls rdl_server_new/run/free. A part's middleware runs on the I/O threads.
 */
#ifndef REDLINE_PART_H
#define REDLINE_PART_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "redline/common.h"
#include "redline/util.h"
#include "redline/config.h"

typedef struct rdl_server rdl_server_t;

/* The I/O thread a thread hook runs on. */
typedef struct rdl_part_thread {
    int index;                  /* 0..threads-1 for the app threads; threads for the admin one */
    bool admin;                 /* the admin listener's thread */
    uv_loop_t *loop;
} rdl_part_thread_t;

typedef struct rdl_part {
    const char *name;
    size_t opts_size;           /* its options struct; 0: none */
    void (*defaults)(void *opts);
    int (*config)(void *opts, rdl_config_t *cfg);
    int (*check)(const void *opts, rdl_error_t *err);
    int (*install)(rdl_server_t *srv, void *opts, void **state);
    int (*start)(rdl_server_t *srv, void *state, rdl_error_t *err);
    void (*run)(rdl_server_t *srv, void *state, uv_loop_t *ctl);
    void (*thread_start)(rdl_server_t *srv, void *state, const rdl_part_thread_t *t);
    void (*thread_stop)(rdl_server_t *srv, void *state, const rdl_part_thread_t *t);
    void (*drained)(rdl_server_t *srv, void *state);
    void (*stop)(rdl_server_t *srv, void *state);
    void (*free)(rdl_server_t *srv, void *state);
} rdl_part_t;

/* Parts in one server's list, and the bytes their options may take together. */
#define RDL_PARTS_MAX 16
#define RDL_PART_OPTS_BYTES 1024

/* ---- the runtime's parts and their options ---------------------------- */

/* log.* (docs/logs.md): the server's logger, the default one while the server lives. */
typedef struct rdl_log_part_opts {
    int level;                  /* an rdl_log_level_t (log.level; "warning" reads as warn) */
    int format;                 /* 0: json, the only format */
    int sink;                   /* an rdl_log_sink_t */
    char *file;                 /* path for the file sink; reopened on SIGHUP */
    uint64_t max_line;          /* bytes per line; longer lines are truncated */
    uint64_t buffer;            /* per-thread ring bytes (threads other than the I/O threads) */
    uint64_t io_buffer;         /* each I/O thread's ring bytes (it writes the access lines) */
    uint64_t pipe_buffer;       /* a pipe sink's kernel buffer, raised to this (0: left alone) */
    int policy;                 /* an rdl_log_policy_t: when the writer falls behind */
    int64_t sample_first;       /* per message per second; 0 = no sampling */
    int64_t sample_every;       /* then 1 in this many */
} rdl_log_part_opts_t;

/* log.access: one access-log line per request (the request id is given either way). */
typedef struct rdl_access_log_part_opts {
    bool enabled;
} rdl_access_log_part_opts_t;

/* metrics.* (docs/metrics.md) */
typedef struct rdl_metrics_part_opts {
    bool enabled;               /* RED middleware, runtime and process collectors */
    int64_t max_series;         /* label sets per RED metric before the overflow series */
    bool debug_vars;            /* serve /debug/vars */
} rdl_metrics_part_opts_t;

/* tracing.* (docs/tracing.md); the OTEL_* variables configure the tracer itself */
typedef struct rdl_trace_part_opts {
    bool enabled;               /* server span per request, trace ids in the ctx */
    char *endpoint;             /* OTLP/HTTP traces URL; "" = from OTEL_*, no export without one */
    char *propagators;          /* "" = OTEL_PROPAGATORS, else "tracecontext,baggage" */
    bool response_header;       /* answer with the server span's traceparent */
    bool keep_errors;           /* export unsampled traces whose server span ends in error */
} rdl_trace_part_opts_t;

/* routes.* (docs/routing.md): traffic coloring and routing */
typedef struct rdl_route_part_opts {
    char *file;                 /* VirtualService/DestinationRule YAML; "" = no routing */
    char *bypass_header;        /* present on a request => the default route; "" = none */
    char *sticky_header;        /* weighted choice sticky on this header; "" = random */
    uint64_t watch_ms;          /* how often the file is checked for changes; 0 = only SIGHUP */
    uint64_t max_file_bytes;    /* a larger file is refused (RDL_ROUTE_MAX_FILE_BYTES) */
    int64_t max_rules;          /* routes, match blocks, destinations (RDL_ROUTE_MAX_RULES) */
    uint64_t max_regex_bytes;   /* PCRE2 compiled + JIT size (RDL_ROUTE_MAX_REGEX_BYTES) */
} rdl_route_part_opts_t;

/*
 * Loads the route part's file with its options and limits, as the part does
 * at start and on every reload (a check of a configuration uses it too):
 * 0 and *out (rdl_route_table_unref), or an error with the file's line and
 * column. Any thread.
 */
struct rdl_route_table;
RDL_EXTERN int rdl_route_part_load(const rdl_route_part_opts_t *o, struct rdl_route_table **out,
                                   rdl_error_t *err);

/*
 * The runtime's red lines. Their order in a list is their order of install,
 * so of their middleware: log (logger, /debug/loglevel, /debug/log), trace
 * (server span), route (coloring; its fault middleware is added at start, the
 * last before the handler), metrics (RED, /metrics, /debug/vars), access_log
 * (request ids, one line per request), upstreams (outbound calls,
 * rdl_server_upstreams).
 */
RDL_EXTERN extern const rdl_part_t rdl_part_log;           /* rdl_log_part_opts_t */
RDL_EXTERN extern const rdl_part_t rdl_part_trace;         /* rdl_trace_part_opts_t */
RDL_EXTERN extern const rdl_part_t rdl_part_route;         /* rdl_route_part_opts_t */
RDL_EXTERN extern const rdl_part_t rdl_part_metrics;       /* rdl_metrics_part_opts_t */
RDL_EXTERN extern const rdl_part_t rdl_part_access_log;    /* rdl_access_log_part_opts_t */
RDL_EXTERN extern const rdl_part_t rdl_part_upstreams;     /* no options (client.h declares upstreams) */
/* All of the above in that order, NULL-terminated: what coursed runs. */
RDL_EXTERN extern const rdl_part_t *const rdl_parts_default[];

/*
 * The state the part installed on srv (its install hook's *state), or NULL
 * when srv does not run that part. Any thread once rdl_server_new returned.
 */
RDL_EXTERN void *rdl_server_part_state(const rdl_server_t *srv, const rdl_part_t *part);

#endif
