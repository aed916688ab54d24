/*
 * runtime.h: the HTTP/1.1 service runtime: I/O threads on libuv, a strict
 * request parser, a router on path templates, a middleware chain, the admin
 * plane (/healthz, /livez, /readyz, /metrics, /debug/vars) and the lifecycle
 * (start -> warm up -> ready -> drain -> stop).
 *
 *   static void hello(rdl_req_t *req, void *arg) {
 *       rdl_resp_send(req, 200, "text/plain", "hello\n", 6);
 *   }
 *   rdl_server_opts_t o; rdl_server_opts_default(&o);
 *   rdl_server_t *srv; rdl_server_new(&o, &srv);
 *   rdl_server_route(srv, "GET", "/hello/{name}", hello, NULL);
 *   return rdl_server_run(srv, NULL);   // returns after SIGTERM and a clean drain
 *
 * Threading: handlers and middleware run on the I/O thread that owns the
 * connection and must not block; blocking work goes to the pool with
 * rdl_req_offload(). Every rdl_req_* / rdl_resp_* call is made on the
 * request's I/O thread (inside a handler or a done callback), except those
 * marked otherwise. rdl_server_new/route/use/run/free are called from the
 * main thread; rdl_server_shutdown and rdl_server_set_ready/_not_ready from any thread.
 * The return values of every rdl_req_* and rdl_resp_* call are listed with it.
 */
#ifndef REDLINE_RUNTIME_H
#define REDLINE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "redline/common.h"
#include "redline/util.h"
#include "redline/ctx.h"
#include "redline/pool.h"
#include "redline/config.h"
#include "redline/client.h"
#include "redline/log.h"
#include "redline/part.h"

typedef struct rdl_server rdl_server_t;
typedef struct rdl_req rdl_req_t;

/* ---- options --------------------------------------------------------- */

typedef struct rdl_server_opts {
    char *service;              /* service name in log lines ("redline") */
    char *listen;               /* "0.0.0.0:8080"; port 0 = ephemeral (logged) */
    char *admin_listen;         /* "0.0.0.0:9090"; "" = no admin listener */
    int64_t threads;            /* I/O threads; 0 = CPU count */
    int64_t backlog;            /* listen(2) backlog */
    int64_t max_connections;    /* per I/O thread; beyond it new connections are closed */
    /* limits */
    uint64_t max_request_line;  /* bytes; over -> 414 */
    uint64_t max_header_bytes;  /* bytes; over -> 431 */
    int64_t max_headers;        /* count; over -> 431 */
    uint64_t max_body;          /* bytes; over -> 413 */
    uint64_t max_output_buffer; /* unsent response bytes above which reading pauses */
    uint64_t max_output_total;  /* unsent bytes stalled connections may hold, per process */
    /* timeouts, milliseconds */
    uint64_t header_timeout_ms; /* head not complete in time -> 408, close */
    uint64_t body_timeout_ms;   /* no body bytes for this long -> 408, close */
    uint64_t idle_timeout_ms;   /* keep-alive idle -> silent close */
    uint64_t request_timeout_ms;/* handler has not answered -> 503; also the ctx deadline */
    uint64_t send_timeout_ms;   /* output waits on a peer that makes no read progress -> close */
    /* lifecycle, milliseconds */
    uint64_t drain_delay_ms;    /* after SIGTERM: /readyz 503, still serving */
    uint64_t grace_ms;          /* then: stop accepting, finish in-flight within this */
    /* blocking-work pool */
    int64_t pool_threads;
    int64_t pool_queue;
    /* admin plane: changes (PUT /debug/loglevel, ...) need a bearer token (docs/runtime.md) */
    char *admin_token_file;     /* file holding the token, re-read when it changes; "" = none */
    bool admin_allow_unauthenticated; /* no token file: allow changes anyway (local demo only) */
    /* The red lines this server runs (part.h), NULL-terminated, and their options, each
     * part's struct in list order. Set both with rdl_server_opts_parts; read and write a
     * part's options with rdl_server_opts_part. */
    const rdl_part_t *const *parts;
    union {
        max_align_t align;
        unsigned char bytes[RDL_PART_OPTS_BYTES];
    } part_opts;
} rdl_server_opts_t;

/* Production defaults (documented in docs/runtime.md), with the parts rdl_parts_default. */
RDL_EXTERN void rdl_server_opts_default(rdl_server_opts_t *opts);
/*
 * The parts the server runs (NULL-terminated, kept by pointer: it must outlive
 * the server), each with its default options. RDL_EINVAL, opts unchanged, for
 * more than RDL_PARTS_MAX parts or options over RDL_PART_OPTS_BYTES together.
 */
RDL_EXTERN int rdl_server_opts_parts(rdl_server_opts_t *opts, const rdl_part_t *const *parts);
/* part's options struct inside opts (the type its header names), or NULL when not listed. */
RDL_EXTERN void *rdl_server_opts_part(rdl_server_opts_t *opts, const rdl_part_t *part);
/*
 * Declares the runtime's configuration keys (server.*, limits.*, timeouts.*,
 * lifecycle.*, pool.*), then those of each part in opts->parts (log.*,
 * metrics.*, tracing.*, routes.*: each part's config hook), with opts as their
 * destination. Choose the parts (rdl_server_opts_parts) before: choosing
 * again resets their options. opts must outlive cfg; load the configuration
 * before rdl_server_new, which copies opts.
 */
RDL_EXTERN int rdl_server_opts_config(rdl_server_opts_t *opts, rdl_config_t *cfg);
/*
 * Checks, once the configuration is loaded, what the loader could not judge
 * key by key and the server would otherwise refuse only when it starts: the
 * app and admin listeners on one address, then each listed part's check hook
 * (OTEL_* variables, log.file's directory). 0, or
 * RDL_EINVAL with err naming the key or variable: a configuration error.
 */
RDL_EXTERN int rdl_server_opts_check(rdl_server_opts_t *opts, rdl_error_t *err);

/* ---- server ---------------------------------------------------------- */

/*
 * A handler answers (rdl_resp_send, rdl_resp_error, or rdl_resp_begin ...
 * rdl_resp_end) or hands the request to the pool (rdl_req_offload) before it
 * returns; a request left unanswered is answered 503 when its deadline
 * (timeouts.request) passes. After the call that completes the response the
 * request must not be touched, except until the handler or done callback
 * that made it returns.
 */
typedef void (*rdl_handler_fn)(rdl_req_t *req, void *arg);

/*
 * A middleware is a module's hooks around every request, run in the order
 * added (docs/design.md: limits & recover -> trace -> coloring -> RED metrics
 * -> access log -> SLO -> the application's -> fault injection -> handler).
 * The app listener and the admin listener each have their own chain
 * (rdl_server_use, rdl_server_admin_use).
 *   enter:       before the handler; return 0 to go on, or answer the request
 *                (rdl_resp_send) and return 1 to stop the chain. A middleware
 *                may also return 1 without answering and continue the chain
 *                later, from the I/O thread, with rdl_req_resume (a delay).
 *   before_send: just before the response head is written (add headers).
 *   leave:       after the response is complete or the connection was lost
 *                (rdl_req_status / rdl_req_bytes_out then final), in reverse
 *                order, for every middleware whose enter ran.
 * Any hook may be NULL.
 */
typedef struct rdl_middleware {
    const char *name;
    int (*enter)(rdl_req_t *req, void *arg);
    void (*before_send)(rdl_req_t *req, void *arg);
    void (*leave)(rdl_req_t *req, void *arg);
    void *arg;
} rdl_middleware_t;

/*
 * Per-I/O-thread hooks: start runs on each app I/O thread before its loop
 * turns (index 0..threads-1), stop on that thread when the runtime tears the
 * loop down (after its connections were aborted); handles opened by start
 * must be closed by stop so the loop can end.
 */
typedef void (*rdl_thread_fn)(rdl_server_t *srv, int index, uv_loop_t *loop, void *arg);

/* Start-up work (warm-up): called on its own thread; return 0 when done. */
typedef int (*rdl_startup_fn)(rdl_server_t *srv, void *arg);

RDL_EXTERN int rdl_server_new(const rdl_server_opts_t *opts, rdl_server_t **out);
RDL_EXTERN void rdl_server_free(rdl_server_t *srv);

/*
 * Registers a route. template is a path with {name} segments ("/v1/courses/{id}")
 * and an optional final {name...} that takes the rest of the path. method is
 * "GET", "POST", ... (one of rdl_method_t's names, case-sensitive); GET routes
 * also answer HEAD. 0; RDL_EEXIST if taken; RDL_EINVAL for a malformed
 * template or another method (the parser answers those 501); RDL_ENOMEM.
 */
RDL_EXTERN int rdl_server_route(rdl_server_t *srv, const char *method, const char *template,
                                rdl_handler_fn fn, void *arg);
/* Same, on the admin listener. */
RDL_EXTERN int rdl_server_admin_route(rdl_server_t *srv, const char *method, const char *template,
                                      rdl_handler_fn fn, void *arg);
/* Appends a middleware (copied) to the app listener's chain. Before rdl_server_run; RDL_EBUSY beyond 16. */
RDL_EXTERN int rdl_server_use(rdl_server_t *srv, const rdl_middleware_t *mw);
/* Same, on the admin listener's chain (probes, /metrics, /debug/...). */
RDL_EXTERN int rdl_server_admin_use(rdl_server_t *srv, const rdl_middleware_t *mw);
/*
 * A per-request slot for a middleware's (or handler's) state: returns its
 * index (0..RDL_REQ_SLOTS-1), or RDL_EBUSY when all are taken. Each slot is
 * NULL when a request begins. Before rdl_server_run.
 */
RDL_EXTERN int rdl_server_req_slot(rdl_server_t *srv);
/* Start-up work that must finish before /readyz turns 200 (run in order). */
RDL_EXTERN int rdl_server_on_startup(rdl_server_t *srv, const char *name, rdl_startup_fn fn,
                                     void *arg);
/* Adds per-I/O-thread hooks (up to 8; either may be NULL). Before rdl_server_run. */
RDL_EXTERN int rdl_server_on_thread(rdl_server_t *srv, rdl_thread_fn start, rdl_thread_fn stop,
                                    void *arg);

/*
 * Opens the logger and the listeners, starts the I/O threads, runs start-up
 * work, turns ready, then serves until SIGTERM/SIGINT or rdl_server_shutdown,
 * drains, and flushes every log line accepted until then. SIGHUP reopens a
 * file log sink. Returns 0 after a clean drain, 1 when start-up failed, or a
 * negative RDL_E* when the log settings are wrong or the listeners could not
 * open (err, when given, says why). A second signal, or the grace period
 * running out, ends the process at once with exit status 1 after one log line
 * and a log flush bounded to one second. Call once per server.
 */
RDL_EXTERN int rdl_server_run(rdl_server_t *srv, rdl_error_t *err);
/* Begins the graceful stop, as SIGTERM does. Any thread. */
RDL_EXTERN void rdl_server_shutdown(rdl_server_t *srv);
/* Bound addresses once listening ("127.0.0.1:41234"); "" before. Any thread. */
RDL_EXTERN const char *rdl_server_addr(const rdl_server_t *srv);
RDL_EXTERN const char *rdl_server_admin_addr(const rdl_server_t *srv);
/* The blocking-work pool (its stats are the HPA signals). */
RDL_EXTERN rdl_pool_t *rdl_server_pool(rdl_server_t *srv);
/*
 * The server's logger (log.* settings), made by rdl_server_run and installed
 * as the default logger until rdl_server_free; NULL before run. Any thread.
 */
RDL_EXTERN rdl_logger_t *rdl_server_logger(rdl_server_t *srv);
/*
 * Whether /readyz answers 200: start-up work done, no drain begun, and the
 * application not holding readiness off. Any thread.
 */
RDL_EXTERN bool rdl_server_ready(const rdl_server_t *srv);
/*
 * The application's own say in readiness (a dependency it watches is down):
 * false takes the pod out of rotation (/readyz 503 {"status":"not_ready"})
 * until true again; a change is logged at info once the server runs (not
 * before rdl_server_run has opened its listeners). ANDed with the lifecycle:
 * true never makes a starting or draining server ready. Any thread, between
 * rdl_server_new and rdl_server_free; may be called before rdl_server_run.
 */
RDL_EXTERN void rdl_server_set_ready(rdl_server_t *srv, bool ready);
/*
 * rdl_server_set_ready(srv, false) with the reason: /readyz adds
 * "reason":reason to its 503 body and the log line carries it, until
 * rdl_server_set_ready(srv, true). reason is a static string (kept, not
 * copied), a short word such as "storage_full". Any thread, as above.
 */
RDL_EXTERN void rdl_server_set_not_ready(rdl_server_t *srv, const char *reason);

/* ---- request --------------------------------------------------------- */

/*
 * The accessors below cannot fail: they are valid from the handler's call
 * until the request's last leave hook (and on a pool worker while the request
 * is offloaded: read only). Strings point into the request's buffer or arena
 * and live as long; none is freed by the caller.
 */

/* The method as the parser classified it (redline/util.h), and its name ("GET"). */
RDL_EXTERN rdl_method_t rdl_req_method_id(const rdl_req_t *req);
RDL_EXTERN const char *rdl_req_method(const rdl_req_t *req);
/* Path and query as sent (not decoded); the query excludes '?' ("" when none). */
RDL_EXTERN const char *rdl_req_path(const rdl_req_t *req, size_t *len);
RDL_EXTERN const char *rdl_req_query(const rdl_req_t *req, size_t *len);
/* The matched route template ("/v1/courses/{id}"), or NULL when none matched. */
RDL_EXTERN const char *rdl_req_route(const rdl_req_t *req);
/*
 * A path parameter, percent-decoded (a malformed escape is kept as sent),
 * NUL-terminated; NULL if the route has none of that name, or the request's
 * arena is out of memory. Decoded once, on the first call for that name.
 */
RDL_EXTERN const char *rdl_req_param(const rdl_req_t *req, const char *name);
/* First header of that name (case-insensitive); NULL if absent. Not NUL-terminated. */
RDL_EXTERN const char *rdl_req_header(const rdl_req_t *req, const char *name, size_t *len);
/* Iterates headers: returns false past the last. */
RDL_EXTERN bool rdl_req_header_at(const rdl_req_t *req, size_t i, const char **name,
                                  size_t *name_len, const char **value, size_t *value_len);
/* The whole request body (chunked already decoded); len 0 when none. */
RDL_EXTERN const char *rdl_req_body(const rdl_req_t *req, size_t *len);
RDL_EXTERN rdl_ctx_t *rdl_req_ctx(rdl_req_t *req);
/* Peer address "ip:port" ("[ip]:port" for IPv6; ":0" when the socket no longer says). */
RDL_EXTERN const char *rdl_req_peer(const rdl_req_t *req);
/*
 * For middleware: the request's server; its I/O thread (0..threads-1, threads
 * for the admin listener's: per-thread state without a lock) and that
 * thread's loop (timers, e.g. a delay that suspends the chain); the authority
 * (Host, or that of an absolute-form target; "" when none); the protocol
 * version ("1.1" or "1.0").
 */
RDL_EXTERN rdl_server_t *rdl_req_server(const rdl_req_t *req);
RDL_EXTERN int rdl_req_thread(const rdl_req_t *req);
RDL_EXTERN uv_loop_t *rdl_req_loop(rdl_req_t *req);
RDL_EXTERN const char *rdl_req_authority(const rdl_req_t *req, size_t *len);
RDL_EXTERN const char *rdl_req_http_version(const rdl_req_t *req);
/*
 * Edits of the request headers the next middleware and the handler see (in
 * enter hooks): remove every one of that name (ignoring case); add one, kept
 * by pointer (name and value must live until the request ends), RDL_EBUSY past
 * limits.max_headers.
 */
RDL_EXTERN int rdl_req_header_remove(rdl_req_t *req, const char *name);
RDL_EXTERN int rdl_req_header_add(rdl_req_t *req, const char *name, const char *value);
/* A slot's value (slot from rdl_server_req_slot; out of range: ignored, NULL). */
RDL_EXTERN void rdl_req_slot_set(rdl_req_t *req, int slot, void *p);
RDL_EXTERN void *rdl_req_slot(const rdl_req_t *req, int slot);
#define RDL_REQ_SLOTS 8

/* ---- response -------------------------------------------------------- */

/*
 * Return values of the rdl_resp_* calls:
 *   0            done;
 *   RDL_ESTATE   too late or too early (each call says when): nothing is
 *                written, and nothing needs to be (a lost client's request is
 *                finished by the runtime);
 *   RDL_EINVAL   a bad argument (below), nothing written;
 *   RDL_EBUSY    more than 64 added response headers, nothing added;
 *   RDL_ENOMEM   out of memory: the answer is incomplete.
 */

/*
 * Response headers, before the head is sent only (RDL_ESTATE once the head is
 * sent or the request answered): add one (copied; RDL_EINVAL when name is
 * empty or not a token, or value holds CR, LF or another control byte, so no
 * header line can be injected; RDL_EBUSY beyond 64 per response), remove every
 * added one of that name (ignoring case), or both (set). They are written
 * once, with the head, in the order added; removing compares names only, it
 * does not rescan the text.
 */
RDL_EXTERN int rdl_resp_header(rdl_req_t *req, const char *name, const char *value);
RDL_EXTERN int rdl_resp_header_remove(rdl_req_t *req, const char *name);
RDL_EXTERN int rdl_resp_header_set(rdl_req_t *req, const char *name, const char *value);
/*
 * Sends a complete response (body copied) and ends the request. The runtime
 * adds Date, Content-Length, Connection as needed and drops the body for HEAD.
 * content_type may be NULL (no Content-Type). RDL_EINVAL for a status outside
 * 200..999; RDL_ESTATE if already answered or the connection is gone.
 */
RDL_EXTERN int rdl_resp_send(rdl_req_t *req, int status, const char *content_type,
                             const void *body, size_t len);
/* A JSON error body {"code":code,"message":message} with that status; returns as rdl_resp_send,
 * or RDL_ENOMEM when the body could not be built (nothing sent). */
RDL_EXTERN int rdl_resp_error(rdl_req_t *req, int status, const char *code, const char *message);

/*
 * Streaming: a chunked response (HTTP/1.0: close-delimited). begin:
 * RDL_EINVAL for a status below 200 or one without a body (204, 304),
 * RDL_ESTATE as rdl_resp_send. write and end: RDL_ESTATE unless begin
 * succeeded and end has not run; write of 0 bytes (or on HEAD) is 0.
 */
RDL_EXTERN int rdl_resp_begin(rdl_req_t *req, int status, const char *content_type);
RDL_EXTERN int rdl_resp_write(rdl_req_t *req, const void *data, size_t len);
RDL_EXTERN int rdl_resp_end(rdl_req_t *req);

/*
 * After the response: status sent (0 before; 499 when the client went away
 * first), body bytes in and out, whether answered. Cannot fail.
 */
RDL_EXTERN int rdl_req_status(const rdl_req_t *req);
RDL_EXTERN uint64_t rdl_req_bytes_in(const rdl_req_t *req);
RDL_EXTERN uint64_t rdl_req_bytes_out(const rdl_req_t *req);
RDL_EXTERN bool rdl_req_answered(const rdl_req_t *req);

/*
 * Continues the middleware chain after the middleware that returned 1 without
 * answering: the next middleware, then the handler. On the request's I/O
 * thread, outside any hook. 0; RDL_ESTATE if the request was answered
 * meanwhile (its deadline passed), is offloaded, or its connection is gone.
 */
RDL_EXTERN int rdl_req_resume(rdl_req_t *req);

/* ---- routing ----------------------------------------------------------- */

/* Counters of the coloring middleware and of rule reloads (exported as metrics). */
typedef struct rdl_server_route_stats {
    uint64_t decisions;         /* requests that got a route */
    uint64_t unmatched;         /* requests no route matched */
    uint64_t bypassed;          /* requests the bypass header sent to the default route */
    uint64_t delays, aborts;    /* faults injected */
    uint64_t reloads;           /* successful loads, the first included */
    uint64_t reload_failures;   /* refused files: the previous rules stayed */
} rdl_server_route_stats_t;

/* Any thread. All zero when routing is off. */
RDL_EXTERN void rdl_server_route_stats(const rdl_server_t *srv, rdl_server_route_stats_t *out);
/*
 * Loads the routes file again now (as SIGHUP does): read and validated on the
 * calling thread, under no lock the I/O and admin threads take, then swapped
 * in atomically; on error (limits included: routes.max_rules, ...) the rules
 * in use stay and err says why. Waits for a reload already under way. Any
 * thread, after rdl_server_run has started; RDL_ESTATE when routing is off.
 */
RDL_EXTERN int rdl_server_reload_routes(rdl_server_t *srv, rdl_error_t *err);

/* ---- blocking work --------------------------------------------------- */

typedef void (*rdl_req_work_fn)(rdl_req_t *req, void *arg);   /* on a pool worker */
typedef void (*rdl_req_done_fn)(rdl_req_t *req, void *arg);   /* back on the I/O thread */

/*
 * Runs work on the server's pool, then done on this request's I/O thread,
 * where done answers. work may read the request but must not call rdl_resp_*.
 * If the connection is lost meanwhile, done still runs (answering is then a
 * no-op) so it can clean up. Returns:
 *   0             accepted: work and done will run;
 *   RDL_EBUSY     the queue is full: the runtime has ANSWERED 503
 *                 {"code":"overloaded"} with Retry-After; neither function
 *                 runs and the caller must not answer;
 *   RDL_ECANCELED the pool is shutting down: nothing was answered, neither
 *                 function runs; the caller answers (503, say);
 *   RDL_ESTATE    the request was already answered, is offloaded or in an
 *                 outbound call, or its connection is gone: nothing answered;
 *   RDL_EINVAL    work or done is NULL: nothing answered.
 * So rdl_req_answered(req) is true after a non-zero return only for RDL_EBUSY
 * (or when it already was).
 */
RDL_EXTERN int rdl_req_offload(rdl_req_t *req, rdl_req_work_fn work, rdl_req_done_fn done,
                               void *arg);

/* ---- outbound calls (src/runtime/outbound.c) ------------------------- */

/*
 * Attaches the declared upstreams (finished, see client.h; they must outlive
 * srv): one client per app I/O thread, a warm-up start-up step per
 * configured upstream ("upstream:<name>": resolve its host, then open
 * pool.warm connections on every I/O thread; a strong upstream is retried
 * until it answers, so /readyz stays 503 and lists it; a weak one is tried
 * once), the X-Request-Id injector, breaker transitions logged, and the
 * admin endpoint /debug/upstreams. Once, before rdl_server_run. The state
 * of the part rdl_part_upstreams: RDL_ESTATE when srv's parts leave it out,
 * RDL_EINVAL when ups is NULL or upstreams are attached already.
 */
RDL_EXTERN int rdl_server_upstreams(rdl_server_t *srv, rdl_upstreams_t *ups);

/*
 * Adds a header injector for every outbound call (trace context, color, ...;
 * see client.h), whether the upstreams are attached before or after. Before
 * rdl_server_run. RDL_EBUSY beyond 6 (the runtime's request id, trace
 * context and color injectors come on top); RDL_ESTATE when srv's parts
 * leave out rdl_part_upstreams.
 */
RDL_EXTERN int rdl_server_add_injector(rdl_server_t *srv, rdl_inject_fn fn, void *arg);

/* Runs on the request's I/O thread when the call ends (see rdl_req_call). */
typedef void (*rdl_req_call_fn)(rdl_req_t *req, const rdl_call_result_t *res, void *arg);

/*
 * Calls upstream `name` for this request (breaker -> bulkhead -> retry ->
 * HTTP, within the request's deadline, with the injectors' headers); done
 * runs on this I/O thread, possibly before rdl_req_call returns. Before done
 * runs, the runtime applies the upstream's role to a failure (transport
 * error, timeout, open breaker, full bulkhead, 429 or 5xx):
 *   strong: the request is answered 503 {"code":"upstream_unavailable"} with
 *           Retry-After (the breaker's remaining wait, at least 1 s); done
 *           still runs (rdl_req_answered is then true) to clean up;
 *   weak:   the request is marked degraded (rdl_req_degraded); done answers
 *           with its fallback.
 * An upstream declared but not configured (no url) fails with RDL_ENOENT
 * without being marked. One call at a time per request, not together with
 * rdl_req_offload. 0, RDL_ENOENT (no upstream of that name), RDL_ESTATE
 * (already answered or busy, not on an I/O thread, no upstreams attached).
 */
RDL_EXTERN int rdl_req_call(rdl_req_t *req, const char *name, const rdl_call_t *call,
                            rdl_req_call_fn done, void *arg);
/* Whether a call's result is a failure in the sense above. */
RDL_EXTERN bool rdl_call_failed(const rdl_call_result_t *res);
/*
 * Marks the response degraded because upstream failed: adds
 * "X-Redline-Degraded: <upstream>" (before the head is sent) and counts it.
 */
RDL_EXTERN void rdl_req_degraded(rdl_req_t *req, const char *upstream);

#endif
