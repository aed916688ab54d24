/*
 * client.h: outbound HTTP calls to declared upstreams, on libcurl's multi
 * interface driven by the caller's libuv loop (no thread of its own), with
 * every call going through breaker -> bulkhead -> retry -> client and taking
 * its timeout from the request's deadline.
 *
 * An upstream is declared in configuration (upstreams.<name>.url, .role,
 * timeouts, pool, breaker, bulkhead and retry settings, optional subsets) and
 * has a role: STRONG (its failure fails the request: the runtime answers 503
 * with Retry-After) or WEAK (its failure or open breaker makes the caller use
 * its fallback; the request still succeeds, marked degraded).
 *
 *   rdl_upstreams_t *ups; rdl_upstreams_new(&ups);
 *   rdl_upstreams_declare(ups, cfg, "payment");      // before loading the config
 *   ... load config ...;  rdl_upstreams_finish(ups, &err);
 *   rdl_client_t *cl; rdl_client_new(loop, ups, &cl);   // one per loop thread
 *   rdl_call_t r = { .method = "POST", .path = "/authorize", .body = b, .body_len = n };
 *   rdl_client_call(cl, rdl_upstreams_get(ups, "payment"), ctx, &r, on_done, arg);
 *
 * Thread-safety: an rdl_upstreams_t is built on one thread at start-up and is
 * read-only afterwards except for its breakers, bulkheads and budgets, which
 * are thread-safe. An rdl_client_t belongs to the thread running its loop:
 * every rdl_client_* call and every done callback happens on that thread.
 * Injectors are registered before any client exists and called on client threads.
 */
#ifndef REDLINE_CLIENT_H
#define REDLINE_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <uv.h>
#include "redline/common.h"
#include "redline/util.h"
#include "redline/ctx.h"
#include "redline/config.h"
#include "redline/breaker.h"

#define RDL_UPSTREAMS_MAX 16
/* Room for an upstream's name, its NUL included (names are 1..47 bytes). */
#define RDL_UPSTREAM_NAME_MAX 48
#define RDL_SUBSETS_MAX 8

typedef enum rdl_upstream_role {
    RDL_UPSTREAM_STRONG = 0,
    RDL_UPSTREAM_WEAK
} rdl_upstream_role_t;

/*
 * One upstream's settings; the configuration keys (upstreams.<name>.*) write
 * here, words (role, breaker window and state) parsed once into their enums.
 */
typedef struct rdl_upstream_opts {
    char *url;                  /* base URL "http://host:port[/prefix]"; "" = not configured */
    rdl_upstream_role_t role;   /* key words strong | weak */
    char *subsets;              /* "blue=http://h1:80,green=http://h2:80" ("" = none) */
    uint64_t connect_timeout_ms;    /* 1000 */
    uint64_t timeout_ms;            /* per attempt, within the request's deadline; 2000 */
    int64_t pool_size;              /* keep-alive connections per loop thread; 16 */
    int64_t warm_connections;       /* connections opened per loop thread at start-up; 2 */
    char *warm_path;                /* what the warm-up requests GET; "/" */
    rdl_window_type_t breaker_window;   /* key words count | time */
    int64_t breaker_window_size;    /* calls or seconds; 20 */
    int64_t breaker_minimum_calls;  /* 10 */
    double breaker_failure_rate;    /* percent; 50 */
    double breaker_slow_rate;       /* percent; 100 */
    uint64_t breaker_slow_call_ms;  /* 1000 */
    int64_t breaker_half_open_calls;/* 3 */
    uint64_t breaker_wait_open_ms;  /* 5000 */
    double breaker_wait_multiplier; /* 1 (fixed) */
    uint64_t breaker_wait_open_max_ms;  /* 0 = no cap */
    int breaker_state;              /* the state the breaker starts in, as the index of the
                                       key's words: 0 closed, 1 disabled, 2 metrics_only,
                                       3 forced_open (rdl_upstreams_finish maps it) */
    int64_t max_concurrent;         /* bulkhead; 64 */
    int64_t retry_attempts;         /* calls in all; 2 */
    uint64_t retry_base_ms;         /* 25 */
    uint64_t retry_cap_ms;          /* 250 */
    double retry_budget;            /* ratio of first attempts; 0.2 */
    double retry_min_per_sec;       /* 5 */
} rdl_upstream_opts_t;

typedef struct rdl_upstream {
    char name[RDL_UPSTREAM_NAME_MAX];
    rdl_upstream_role_t role;
    rdl_upstream_opts_t opts;
    bool configured;            /* url is set */
    rdl_breaker_t *breaker;
    rdl_bulkhead_t *bulkhead;
    rdl_retry_policy_t retry;
    rdl_retry_budget_t budget;
    int nsubsets;
    char subset_names[RDL_SUBSETS_MAX][32];
    char *subset_urls[RDL_SUBSETS_MAX];
    char host[256];             /* of url, for the DNS warm-up */
    int port;
} rdl_upstream_t;

typedef struct rdl_upstreams rdl_upstreams_t;

/*
 * An injector adds headers to every outbound request (trace context, request
 * id, color): it calls add(h, name, value) for each. Called on the client's
 * thread with the call's ctx (may be NULL for warm-up calls).
 */
typedef void (*rdl_header_add_fn)(void *h, const char *name, const char *value);
typedef void (*rdl_inject_fn)(const rdl_ctx_t *ctx, rdl_header_add_fn add, void *h, void *arg);

RDL_EXTERN int rdl_upstreams_new(rdl_upstreams_t **out);
RDL_EXTERN void rdl_upstreams_free(rdl_upstreams_t *ups);
/*
 * Declares upstream `name` ([a-z0-9_-], 1..47 bytes) with the defaults above
 * and its configuration keys upstreams.<name>.{url, role, subsets,
 * timeouts.connect, timeouts.request, pool.size, pool.warm, pool.warm_path,
 * breaker.window, breaker.window_size, breaker.minimum_calls,
 * breaker.failure_rate, breaker.slow_rate, breaker.slow_call,
 * breaker.half_open_calls, breaker.wait_open, breaker.wait_multiplier,
 * breaker.wait_open_max, breaker.state, bulkhead.max_concurrent,
 * retry.attempts, retry.base, retry.cap, retry.budget, retry.min_per_sec}.
 * role is the default role. RDL_EINVAL, RDL_EEXIST, RDL_EBUSY (too many).
 */
RDL_EXTERN int rdl_upstreams_declare(rdl_upstreams_t *ups, rdl_config_t *cfg, const char *name,
                                     rdl_upstream_role_t role);
/*
 * Applies "--upstream NAME=URL": sets upstreams.NAME.url. err names the
 * problem (no '=', unknown upstream).
 */
RDL_EXTERN int rdl_upstreams_set_flag(rdl_upstreams_t *ups, rdl_config_t *cfg, const char *arg,
                                      rdl_error_t *err);
/*
 * The names under the `upstreams:` mapping of a YAML file (for tools that
 * declare whatever the file names). Returns the count (0..max) or a negative
 * RDL_E*, err filled.
 */
RDL_EXTERN int rdl_upstreams_names_in_file(const char *path, char names[][RDL_UPSTREAM_NAME_MAX], int max,
                                           rdl_error_t *err);
/*
 * Loads only the `upstreams:` mapping of a YAML file into cfg (for tools that
 * read a service's file without knowing its other sections; those are skipped
 * unread), checked as rdl_config_load_file checks every key: errors name the
 * file, line, column and key and what was expected; all or nothing.
 */
RDL_EXTERN int rdl_upstreams_load_file(rdl_config_t *cfg, const char *path, rdl_error_t *err);
/*
 * Checks the loaded settings (URL scheme and host, role, subsets, breaker
 * bounds) and builds each configured upstream's breaker, bulkhead and budget.
 */
RDL_EXTERN int rdl_upstreams_finish(rdl_upstreams_t *ups, rdl_error_t *err);
/* Every breaker's state changes go to fn (the runtime logs them). Before calls start. */
RDL_EXTERN void rdl_upstreams_on_change(rdl_upstreams_t *ups, rdl_breaker_change_fn fn, void *arg);
/* Registers an injector (up to 12). Before any client exists. */
RDL_EXTERN int rdl_upstreams_add_injector(rdl_upstreams_t *ups, rdl_inject_fn fn, void *arg);
/* By name; NULL when not declared. */
RDL_EXTERN rdl_upstream_t *rdl_upstreams_get(rdl_upstreams_t *ups, const char *name);
RDL_EXTERN int rdl_upstreams_count(const rdl_upstreams_t *ups);
RDL_EXTERN rdl_upstream_t *rdl_upstreams_at(rdl_upstreams_t *ups, int i);
/* The base URL a call uses: the subset's when the upstream has that subset, else url. */
RDL_EXTERN const char *rdl_upstream_base_url(const rdl_upstream_t *up, const char *subset);

/*
 * Istio / Envoy retryOn conditions a call can honour, with Envoy's meaning:
 * 5XX = any 5xx answer or no answer at all (the connection failed, was reset,
 * or the attempt timed out); GATEWAY_ERROR = 502, 503, 504 or no answer;
 * RESET = no answer; CONNECT_FAILURE = the connection could not be made;
 * RETRIABLE_4XX = 409. Literal status codes in the list ("503", Istio's
 * retriable status codes) retry an answer with that status. A canceled call
 * is never retried.
 */
#define RDL_RETRY_ON_5XX            (1u << 0)
#define RDL_RETRY_ON_GATEWAY_ERROR  (1u << 1)
#define RDL_RETRY_ON_CONNECT_FAILURE (1u << 2)
#define RDL_RETRY_ON_RETRIABLE_4XX  (1u << 3)
#define RDL_RETRY_ON_RESET          (1u << 4)
#define RDL_RETRY_ON_MAX_CODES      8

typedef struct rdl_retry_on {
    uint32_t bits;                              /* RDL_RETRY_ON_* */
    uint16_t codes[RDL_RETRY_ON_MAX_CODES];     /* literal status codes, 100-599 */
    uint8_t ncodes;
} rdl_retry_on_t;

/*
 * Parses an Istio retryOn list ("5xx,connect-failure,503"; spaces allowed)
 * into out (zeroed first). Conditions redline cannot honour (refused-stream,
 * retriable-headers, envoy-ratelimited, the gRPC ones: cancelled,
 * deadline-exceeded, internal, resource-exhausted, unavailable; codes past
 * RDL_RETRY_ON_MAX_CODES; retriable-status-codes without a literal code) are
 * skipped: out holds the rest, and the return is RDL_EINVAL with err (may be
 * NULL) keyed "retryOn" and its msg exactly the skipped conditions,
 * comma-separated as written (cut to fit), for a caller to quote in a warning.
 * 0 when every condition is honoured; NULL or "" gives 0 and nothing set.
 * Pure; any thread.
 */
RDL_EXTERN int rdl_retry_on_parse(const char *conditions, rdl_retry_on_t *out, rdl_error_t *err);
/* Whether r names any condition (an all-zero r leaves the upstream's policy). */
RDL_EXTERN bool rdl_retry_on_is_set(const rdl_retry_on_t *r);
/* Whether an attempt that ended with outcome kind and HTTP status (0 = none) is retried under r. */
RDL_EXTERN bool rdl_retry_on_matches(const rdl_retry_on_t *r, int kind, int status);

/* ---- calls ------------------------------------------------------------- */

typedef struct rdl_call {
    const char *method;         /* "GET" */
    const char *path;           /* appended to the base URL: "/recommend?course=3" */
    const char *body;           /* may be NULL */
    size_t body_len;
    const char *content_type;   /* with a body; NULL = application/json */
    int idempotent;             /* -1 (default) = by method: GET/HEAD/PUT/DELETE/OPTIONS */
    uint64_t timeout_ms;        /* per attempt; 0 = the upstream's; capped by the ctx
                                   deadline and by what is left of total_timeout_ms */
    uint64_t total_timeout_ms;  /* every attempt and backoff within it (Istio's route
                                   `timeout`), on top of the ctx deadline; 0 = none */
    uint32_t max_attempts;      /* attempts in all, the first included; 0 = the upstream's
                                   retry.attempts; may exceed it (the budget still holds) */
    rdl_retry_on_t retry_on;    /* which failures are retried; nothing set (all zero) =
                                   the upstream's policy (connect, timeout, 429, 5xx) */
} rdl_call_t;


typedef struct rdl_call_result {
    int err;                    /* 0 (an HTTP answer came), RDL_EBUSY (breaker open or
                                   bulkhead full: not sent), RDL_ETIMEDOUT, RDL_EIO,
                                   RDL_ECANCELED, RDL_ENOENT (upstream not configured) */
    int status;                 /* HTTP status of the last attempt; 0 when none */
    int kind;                   /* rdl_outcome_t of the last attempt */
    bool breaker_open;          /* refused by the breaker (err RDL_EBUSY) */
    uint32_t attempts;          /* attempts actually sent */
    uint64_t duration_ns;       /* from the call to the result */
    uint64_t retry_after_ns;    /* breaker open: time until trial calls; else 0 */
    const char *body;           /* response body (valid during the callback); "" when none */
    size_t body_len;
    const char *upstream;       /* name */
} rdl_call_result_t;

/* Called once per call, on the client's thread. */
typedef void (*rdl_call_done_fn)(const rdl_call_result_t *res, void *arg);

typedef struct rdl_client rdl_client_t;

typedef struct rdl_client_stats {
    uint64_t calls, attempts, retries, rejected, errors, connections_warmed;
} rdl_client_stats_t;

/* A client on loop (the calling thread's). 0, RDL_ENOMEM, RDL_EIO (libcurl). */
RDL_EXTERN int rdl_client_new(uv_loop_t *loop, rdl_upstreams_t *ups, rdl_client_t **out);
/*
 * Ends every call in flight (done runs with RDL_ECANCELED) and closes the
 * client; its libuv handles close on the loop's next run, so the loop must
 * run once more. On the loop's thread. NULL is fine.
 */
RDL_EXTERN void rdl_client_free(rdl_client_t *c);
/*
 * Starts a call to up (breaker -> bulkhead -> retry -> HTTP). ctx (may be
 * NULL) gives the deadline, and is passed to the injectors. done runs
 * exactly once, possibly before this returns (refused by the breaker or the
 * bulkhead, deadline already passed, upstream not configured). Returns 0, or
 * RDL_EINVAL (bad arguments: done is not called).
 */
RDL_EXTERN int rdl_client_call(rdl_client_t *c, rdl_upstream_t *up, rdl_ctx_t *ctx,
                               const rdl_call_t *req, rdl_call_done_fn done, void *arg);
/*
 * Warm-up: opens up to n keep-alive connections to up by sending n
 * concurrent GETs of its warm_path (bypassing breaker and retries); done gets
 * err 0 when every request got an HTTP answer (any status), else the first
 * error. Connections stay in the pool.
 */
RDL_EXTERN int rdl_client_warm(rdl_client_t *c, rdl_upstream_t *up, int n, uint64_t timeout_ms,
                               rdl_call_done_fn done, void *arg);
RDL_EXTERN void rdl_client_stats(const rdl_client_t *c, rdl_client_stats_t *out);

/*
 * The warm-up checks, once, on a private loop (for init containers:
 * `redline warmup`, `coursed warmup`): for each configured upstream, resolve
 * its host and open pool.warm connections (at least one). Writes one JSON line
 * per upstream to report ({"check":"upstream:NAME","ok":true,...}); returns
 * the number of upstreams that failed. Blocks; any thread without a loop.
 */
RDL_EXTERN int rdl_upstreams_warmup(rdl_upstreams_t *ups, FILE *report);

/* Resolves up's host now (getaddrinfo): 0 or RDL_ENOENT with err filled. Blocks. */
RDL_EXTERN int rdl_upstream_resolve(const rdl_upstream_t *up, rdl_error_t *err);

#endif
