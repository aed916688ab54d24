/*
 * internal.h: the runtime's private structures, shared by server.c (threads,
 * listeners, lifecycle), conn.c (one connection's state machine), request.c
 * (the request accessors and the offload), response.c (writing responses),
 * router.c, admin.c and admin_auth.c, and the red lines' glue (the parts:
 * access_log.c, trace_mw.c, route_mw.c, metrics_mw.c, outbound.c), reached by
 * the server only through their part tables (redline/part.h). Nothing here is
 * public API.
 */
#ifndef REDLINE_RUNTIME_INTERNAL_H
#define REDLINE_RUNTIME_INTERNAL_H

#include <stdatomic.h>
#include <uv.h>
#include "redline/runtime.h"
#include "redline/trace.h"
#include "runtime/http1.h"

#define RT_MAX_MIDDLEWARE 16
#define RT_MAX_PARAMS 8
#define RT_MAX_STARTUP 16
#define RT_MAX_THREAD_HOOKS 8
#define RT_MAX_RESP_HEADERS 64   /* headers a handler and its middleware add to one response */

/* ---- router ---------------------------------------------------------- */

typedef struct rt_route rt_route_t;
typedef struct rt_router {
    rt_route_t *routes;         /* singly linked, in registration order */
} rt_router_t;

typedef struct rt_match {
    const rt_route_t *route;
    int nparams;
    const char *names[RT_MAX_PARAMS];
    const char *values[RT_MAX_PARAMS];   /* raw (still percent-encoded), into the request */
    uint32_t lens[RT_MAX_PARAMS];
} rt_match_t;

enum rt_match_result { RT_MATCH_OK, RT_MATCH_NO_PATH, RT_MATCH_NO_METHOD };

int rdl__rt_router_add(rt_router_t *r, const char *method, const char *tmpl,
                  rdl_handler_fn fn, void *arg);
void rdl__rt_router_free(rt_router_t *r);
/*
 * Finds the route for method + path. On RT_MATCH_NO_METHOD, allow receives the
 * methods that do match the path ("GET, HEAD, POST").
 */
int rdl__rt_router_match(const rt_router_t *r, rdl_method_t method, const char *path, size_t path_len,
                    rt_match_t *m, char *allow, size_t allow_len);
const char *rdl__rt_route_template(const rt_route_t *route);
void rdl__rt_route_call(const rt_route_t *route, rdl_req_t *req);

/* ---- server and threads ---------------------------------------------- */

typedef struct rt_conn rt_conn_t;
typedef struct rt_thread rt_thread_t;

/* A listener's middleware chain (rdl_server_use, rdl_server_admin_use). */
typedef struct rt_chain {
    rdl_middleware_t mw[RT_MAX_MIDDLEWARE];
    int n;
} rt_chain_t;

struct rt_thread {
    rdl_server_t *srv;
    bool admin;                 /* serves the admin router; not drained */
    const rt_router_t *router;
    const rt_chain_t *chain;    /* the middleware of its listener */
    uv_loop_t loop;
    uv_thread_t tid;
    uv_poll_t listener;         /* readable: connections wait on listen_fd (server.c accepts) */
    int listen_fd;
    bool listening;
    uv_timer_t backoff;         /* out of descriptors: accepting resumes when it fires */
    uint64_t backoff_ms;        /* the pause after the last failure (0: none since an accept) */
    bool backoff_closed;
    uv_async_t wake;            /* control messages from the main thread */
    atomic_int cmd;             /* RT_CMD_* bits, read in the wake callback */
    rdl_pool_sink_t *sink;
    rt_conn_t *conns;           /* doubly linked list of live connections */
    int nconns;
    uint64_t stalled_bytes;     /* sum of its connections' stall_bytes (conn.c) */
    bool draining;              /* stopped accepting: answer with Connection: close */
    bool stopping;              /* tearing down the loop */
    bool reported_idle;
    /* Date header, regenerated when the second changes (checked once per loop tick) */
    char date[48];
    size_t date_len;
    uint64_t date_tick;
    time_t date_sec;
};

enum { RT_CMD_DRAIN = 1, RT_CMD_STOP = 2 };

/* Why a connection was refused at accept: http_server_connections_rejected_total{reason}. */
enum { RT_REFUSED_LIMIT, RT_REFUSED_FD, RT_REFUSED_N };

/* Per-I/O-thread set-up and tear-down (rdl_server_on_thread). */
typedef struct rt_thread_hook {
    rdl_thread_fn start, stop;
    void *arg;
} rt_thread_hook_t;

typedef struct rt_startup {
    const char *name;
    rdl_startup_fn fn;
    void *arg;
    atomic_bool done;
} rt_startup_t;

struct rdl_server {
    rdl_server_opts_t opts;
    rt_router_t app_router;
    rt_router_t admin_router;
    rt_chain_t app_chain;
    rt_chain_t admin_chain;
    int nslots;                 /* request slots handed out (rdl_server_req_slot) */
    const rdl_part_t *parts[RDL_PARTS_MAX];     /* opts.parts, in order */
    void *part_state[RDL_PARTS_MAX];            /* each one's install *state */
    int nparts;
    int nstarted;               /* parts whose start hook succeeded */
    rt_startup_t startup[RT_MAX_STARTUP];
    int nstartup;
    rt_thread_hook_t hooks[RT_MAX_THREAD_HOOKS];
    int nhooks;
    rdl_pool_t *pool;
    rt_thread_t *threads;       /* nthreads app threads, then the admin thread if any */
    int nthreads;
    int nall;
    /* control loop on the thread that called rdl_server_run */
    uv_loop_t ctl;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain_timer, grace_timer;
    uv_async_t ctl_wake;        /* an app thread became idle while draining, or shutdown requested */
    uv_thread_t startup_tid;
    atomic_int startup_state;   /* 0 running, 1 ok, -1 failed */
    atomic_bool ready;          /* start-up done and not draining (admin.c ANDs held_unready) */
    atomic_bool held_unready;   /* rdl_server_set_ready(srv, false) */
    _Atomic(const char *) unready_reason;   /* rdl_server_set_not_ready's, NULL when none */
    atomic_bool draining;
    atomic_bool shutdown_requested;
    atomic_bool ctl_up;          /* the control loop can take wake-ups (under ctl_mu) */
    uv_mutex_t ctl_mu;           /* orders rdl_server_shutdown against closing ctl_wake */
    atomic_bool addrs_set;       /* addr and admin_addr are written */
    atomic_int idle_threads;    /* app threads drained and without connections */
    atomic_uint_fast64_t send_timeouts; /* connections closed by timeouts.send (conn.c) */
    atomic_uint_fast64_t output_sheds;  /* closed by limits.max_output_total (conn.c) */
    /* Open connections per plane; server.max_connections bounds each (conn.c). */
    atomic_int app_conns, admin_conns;
    atomic_uint_fast64_t refused[RT_REFUSED_N];         /* connections refused, by reason */
    atomic_uint_fast64_t refused_logged[RT_REFUSED_N];  /* the count the last log line gave */
    atomic_uint_fast64_t refused_log_ns[RT_REFUSED_N];  /* when that line was written */
    int reserve_fd;             /* /dev/null, given up to take an admin connection when
                                   descriptors run out; the admin thread's alone once it runs */
    int signals;
    int exit_code;
    char addr[96];
    char admin_addr[96];
    rdl_logger_t *log;          /* the log part's; NULL: lines go to the default logger */
    struct rt_admin_token *admin_token; /* admin_auth.c; NULL until the first admin change */
};

/* One request/response exchange; one at a time per connection. */
struct rdl_req {
    rt_conn_t *conn;
    rdl_h1_request_t *h1;
    const char *body;
    size_t body_len;
    rt_match_t match;
    char *params[RT_MAX_PARAMS]; /* decoded lazily into the ctx arena */
    rdl_ctx_t ctx;
    int status;
    bool answered;              /* the response is complete */
    bool head_sent;             /* the head went out (streaming) */
    bool streaming;
    bool is_head;
    bool keep_alive;            /* decided when the head is written */
    int mw_entered;
    uint64_t bytes_in;
    uint64_t bytes_out;
    rdl_buf_t resp_headers;     /* "Name: value\r\n" lines added by the handler */
    void *slots[RDL_REQ_SLOTS];  /* rdl_server_req_slot */
    /* offload */
    rdl_pool_task_t task;
    rdl_req_work_fn work;
    rdl_req_done_fn done;
    void *work_arg;
    bool offloaded;
};

/*
 * The headers added to the current response: their "Name: value\r\n" lines
 * are in req->resp_headers, each found through this index, so that removing
 * or replacing one compares names only and never rescans the text. The lines
 * are copied out once, when the head is written (at once when none was removed).
 */
typedef struct rt_resp_header {
    uint32_t off;               /* of the line in req->resp_headers */
    uint32_t len;               /* the whole line, CRLF included */
    uint32_t name_len;
    bool removed;
} rt_resp_header_t;

typedef struct rt_resp_index {
    rt_resp_header_t at[RT_MAX_RESP_HEADERS];
    int n;
    bool removed;               /* some line is removed: copy line by line */
} rt_resp_index_t;

enum rt_conn_state {
    RT_IDLE,                    /* between requests, nothing buffered */
    RT_HEAD,                    /* reading a request head */
    RT_BODY,                    /* reading a request body */
    RT_HANDLER,                 /* the request is with its handler */
    RT_CLOSING                  /* answer written or being written; then close */
};

struct rt_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uint64_t deadline;          /* loop ms when the current timeout (timer.data's kind) expires; 0: none */
    uv_shutdown_t shutdown_req;
    uv_write_t write_req;
    rt_thread_t *t;
    rt_conn_t *prev, *next;
    int state;
    int refs;                   /* pool tasks in flight + open handles; freed at 0 */
    int handles_open;
    bool first_request;
    bool in_process;            /* inside conn_process: do not recurse */
    bool reading;
    bool writing;
    bool eof;                   /* the peer half-closed */
    bool closed;                /* uv_close called */
    bool shut;                  /* uv_shutdown sent */
    /* input: buf[0..len); the current request starts at buf[0] */
    char *buf;
    size_t len;
    size_t cap;
    size_t consumed;            /* bytes of buf the current exchange used */
    size_t send_mark;           /* T_SEND: bytes queued in libuv when the period began */
    size_t stall_bytes;         /* unsent bytes when its output stalled (0: not stalled) */
    uint64_t stall_ns;          /* when it stalled */
    size_t body_src, body_dst;  /* chunked decoding positions */
    rdl_h1_chunked_t chunked;
    bool continue_sent;
    rdl_h1_request_t h1;
    const char *head_buf;       /* c->buf when the head was parsed */
    rdl_h1_header_t *headers;   /* opts.max_headers slots */
    /* output: out accumulates; wbuf is being written */
    rdl_buf_t out;
    rdl_buf_t wbuf;
    rdl_req_t req;
    rt_resp_index_t resp_index; /* of req.resp_headers; kept out of req so it is not zeroed per request */
    char peer[64];
};

/* conn.c */
/* Adopts fd, just accepted; over server.max_connections, answers 503 and closes it. */
void rdl__rt_conn_accept(rt_thread_t *t, int fd);
/* Counts a refused connection and logs it, at most one line a second per reason. */
void rdl__rt_conn_refused(rdl_server_t *srv, int reason);
void rdl__rt_conn_drain(rt_conn_t *c);               /* the thread stopped accepting */
void rdl__rt_conn_abort(rt_conn_t *c);               /* close now (thread stopping) */
void rdl__rt_conn_request_done(rt_conn_t *c);        /* the exchange finished: continue */
void rdl__rt_conn_flush(rt_conn_t *c);
const char *rdl__rt_conn_peer(rt_conn_t *c);         /* "ip:port", "[ip]:port"; looked up once */

/* server.c */
/* CPUs a cgroup quota allows: ceil(quota / period); 0 when unlimited ("max", -1) or unreadable. */
int rdl__rt_cpu_quota(const char *quota, const char *period);
void rdl__rt_thread_conn_closed(rt_thread_t *t);     /* bookkeeping after a connection is freed */
const char *rdl__rt_thread_date(rt_thread_t *t, size_t *len);

/* response.c */
const char *rdl__rt_reason(int status);
/* Answers an error the parser or a limit found, then closes the connection. */
void rdl__rt_send_error_and_close(rt_conn_t *c, int status, const char *code, const char *message);
/* Admin answers: ends b with a newline, sends it as application/json (500 if b ran out of
 * memory), frees b. */
void rdl__rt_send_json(rdl_req_t *req, int status, rdl_buf_t *b);

/* parts: each red line's glue, reached through its part table */
/* route_mw.c: the route decision of req (valid until the request ends), or NULL: not routed.
 * Its thread. */
const struct rdl_route_decision *rdl__rt_route_decision(const rdl_req_t *req);
/* trace_mw.c: injects span's context and bag (outbound calls); nothing without a tracer or span. */
void rdl__rt_trace_inject(rdl_server_t *srv, const struct rdl_span *span,
                     const struct rdl_baggage *bag, rdl_carrier_set_fn set, void *carrier);
/* access_log.c: PUT /debug/loglevel's body: a level name, or {"level":"..."}; false for anything else. */
bool rdl__rt_log_level_from_body(const char *body, size_t n, rdl_log_level_t *out);

/* server.c: app and admin listeners on one address (a configuration error naming both keys);
 * also checked at load by rdl_server_opts_check. */
int rdl__rt_check_planes(const rdl_server_opts_t *o, rdl_error_t *err);

/* admin.c */
int rdl__rt_admin_register(rdl_server_t *srv);

/*
 * admin_auth.c: the admin plane's changes need the bearer token of
 * admin.token_file. Call first in every handler that changes state: true when the request may go
 * on; false when it has been answered (401 with WWW-Authenticate: no or wrong
 * token; 403: no token file and admin.allow_unauthenticated off, or not on the
 * admin listener). Admin I/O thread.
 */
bool rdl__admin_authorized(rdl_req_t *req);
void rdl__rt_admin_auth_free(rdl_server_t *srv);     /* rdl_server_free */

#endif
