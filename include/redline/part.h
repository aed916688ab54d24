/*
 * part.h: one interface for a red line. A part is a small constant table: its
 * name, the configuration keys it declares, and hooks the runtime calls at
 * fixed points of a server's life. The runtime (server.c) names no red line:
 * it runs the hooks of the parts in the server's list, in list order (stop and
 * thread_stop in reverse). Adding a red line is a folder, a header, a part
 * table and one line in the list of parts the application passes.
 *
 *   static const rdl_part_t *const parts[] = { &rdl_part_log, &rdl_part_metrics, NULL };
 *   rdl_server_opts_t o; rdl_server_opts_default(&o);
 *   o.parts = parts;                           // default: rdl_parts_default
 *
 * Hooks (any may be NULL), each given the server and the part's own state
 * (what install stored in *state; NULL until then):
 *   defaults      sets the part's options in rdl_server_opts_default.
 *   config        declares the part's keys (rdl_server_opts_config), list order.
 *   install       rdl_server_new, main thread: its middleware (app and admin
 *                 chains), admin routes, request slots, its state. An error
 *                 fails rdl_server_new (free still runs for every part).
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
#include <uv.h>
#include "redline/util.h"
#include "redline/config.h"

typedef struct rdl_server rdl_server_t;
typedef struct rdl_server_opts rdl_server_opts_t;

/* The I/O thread a thread hook runs on. */
typedef struct rdl_part_thread {
    int index;                  /* 0..threads-1 for the app threads; threads for the admin one */
    bool admin;                 /* the admin listener's thread */
    uv_loop_t *loop;
} rdl_part_thread_t;

typedef struct rdl_part {
    const char *name;
    void (*defaults)(rdl_server_opts_t *opts);
    int (*config)(rdl_server_opts_t *opts, rdl_config_t *cfg);
    int (*install)(rdl_server_t *srv, void **state);
    int (*start)(rdl_server_t *srv, void *state, rdl_error_t *err);
    void (*run)(rdl_server_t *srv, void *state, uv_loop_t *ctl);
    void (*thread_start)(rdl_server_t *srv, void *state, const rdl_part_thread_t *t);
    void (*thread_stop)(rdl_server_t *srv, void *state, const rdl_part_thread_t *t);
    void (*drained)(rdl_server_t *srv, void *state);
    void (*stop)(rdl_server_t *srv, void *state);
    void (*free)(rdl_server_t *srv, void *state);
} rdl_part_t;

/* Parts in one server's list. */
#define RDL_PARTS_MAX 16

/*
 * The runtime's red lines. Their order in a list is their order of install,
 * so of their middleware: log (logger, /debug/loglevel, /debug/log), trace
 * (server span), route (coloring; its fault middleware is added at start, the
 * last before the handler), metrics (RED, /metrics, /debug/vars), access_log
 * (request ids, one line per request), upstreams (outbound calls,
 * rdl_server_upstreams).
 */
extern const rdl_part_t rdl_part_log;
extern const rdl_part_t rdl_part_trace;
extern const rdl_part_t rdl_part_route;
extern const rdl_part_t rdl_part_metrics;
extern const rdl_part_t rdl_part_access_log;
extern const rdl_part_t rdl_part_upstreams;
/* All of the above in that order, NULL-terminated: what coursed runs. */
extern const rdl_part_t *const rdl_parts_default[];

/*
 * The state the part installed on srv (its install hook's *state), or NULL
 * when srv does not run that part. Any thread once rdl_server_new returned.
 */
void *rdl_server_part_state(const rdl_server_t *srv, const rdl_part_t *part);

#endif
