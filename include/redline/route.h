/*
 * route.h: traffic coloring and routing with Istio VirtualService semantics,
 * in-process.
 *
 * A route table is loaded from YAML holding networking.istio.io
 * VirtualService documents (v1, v1beta1, v1alpha3) and the DestinationRules
 * whose subsets they name, or redline's short form (a top-level `routes:`
 * list, for services without Istio). A decision for one request follows
 * Istio exactly: http[] in order, first match wins; OR across match blocks,
 * AND inside one; StringMatch exact/prefix/regex where regex is an RE2 full
 * match (PCRE2 with JIT; what RE2 would refuse is refused at load); weighted
 * destinations with relative weights, chosen at random or sticky on a header.
 *
 *   rdl_route_opts_t o = { .bypass_header = "x-redline-bypass", .sticky_header = "x-user-id" };
 *   rdl_route_table_t *t; rdl_error_t err;
 *   if (rdl_route_load_file(&o, "routes.yaml", &t, &err)) ... err names file:line:column ...
 *   rdl_route_decision_t d;
 *   if (rdl_route_decide(t, &request, NULL, &d)) use(d.route_name, d.subset, d.color);
 *   rdl_route_table_unref(t);
 *
 * Thread-safety: a loaded table is immutable; decide, explain and dump may run
 * on any number of threads at once. References (ref/unref) are atomic. The
 * strings and header operations a decision points to live as long as the
 * table reference the caller holds.
 */
#ifndef REDLINE_ROUTE_H
#define REDLINE_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "redline/common.h"
#include "redline/util.h"
#include "redline/ctx.h"
#include "redline/client.h"

/* What outbound calls carry so the next hop routes the same way. */
#define RDL_ROUTE_COLOR_HEADER "x-redline-color"
#define RDL_ROUTE_BAGGAGE_KEY "redline.color"

typedef struct rdl_route_table rdl_route_table_t;

/*
 * What one file may hold (0 in rdl_route_opts_t = these). A rule is an http
 * route (an entry of http[] or of the short form's routes:), a match block
 * and a destination (a weights entry in the short form): what the matcher
 * walks or chooses from. Regex memory is PCRE2's compiled size plus its JIT
 * code, summed over the file's regexes.
 */
#define RDL_ROUTE_MAX_FILE_BYTES (8u << 20)
#define RDL_ROUTE_MAX_RULES 10000u
#define RDL_ROUTE_MAX_REGEX_BYTES (16u << 20)

typedef struct rdl_route_opts {
    const char *bypass_header;  /* present on a request => the default route; NULL/"" = none */
    const char *sticky_header;  /* weighted choice hashes this header's value; NULL/"" = random */
    size_t max_file_bytes;      /* rdl_route_load_file refuses a larger file; 0 = the default */
    size_t max_rules;           /* a file with more rules is refused; 0 = the default */
    size_t max_regex_bytes;     /* compiled regexes past this are refused; 0 = the default */
} rdl_route_opts_t;

/*
 * The request as the matcher sees it. header() returns the first value of a
 * header by its lowercase name (NULL when absent); it is called only for
 * headers some rule names.
 */
typedef const char *(*rdl_route_header_fn)(void *arg, const char *lname, size_t *len);

typedef struct rdl_route_request {
    const char *method;     size_t method_len;
    const char *path;       size_t path_len;       /* without the query */
    const char *query;      size_t query_len;      /* raw, after '?' ("" when none) */
    const char *authority;  size_t authority_len;  /* Host / :authority */
    const char *scheme;     size_t scheme_len;     /* "http" / "https" */
    rdl_route_header_fn header;
    void *header_arg;
} rdl_route_request_t;

/* Header operations of a route or a destination (Istio `headers.request|response`). */
typedef struct rdl_route_kv {
    const char *name;       /* lowercase */
    const char *value;
} rdl_route_kv_t;

typedef struct rdl_route_header_ops {
    const rdl_route_kv_t *set;  size_t nset;       /* overwrite */
    const rdl_route_kv_t *add;  size_t nadd;       /* append */
    const char *const *remove;  size_t nremove;
} rdl_route_header_ops_t;

typedef struct rdl_route_decision {
    const char *virtual_service;    /* metadata.name ("routes" for the short form) */
    const char *route_name;         /* http[].name, or "<vs>.<index>" when unnamed */
    const char *match_name;         /* name of the match block that matched, or NULL */
    const char *host;               /* destination host, NULL for the short form */
    const char *subset;             /* destination subset, or NULL */
    const char *color;              /* the subset, else "default": a bounded label */
    uint32_t port;                  /* destination port, 0 when not given */
    int route_index;                /* position in http[] */
    bool bypassed;                  /* the bypass header forced the default route */
    /* fault injection, already rolled against its percentage */
    int abort_status;               /* 0 = no abort */
    uint64_t delay_ms;              /* 0 = no delay */
    /* handed to outbound calls */
    uint64_t timeout_ms;            /* 0 = none (Istio's default) */
    int retry_attempts;             /* -1 = not set (the mesh default applies) */
    uint64_t per_try_timeout_ms;    /* 0 = not set */
    const char *retry_on;           /* as written; NULL = not set */
    rdl_retry_on_t retry_conditions;    /* retry_on, parsed when the rules loaded */
    /* header operations: route level, then the chosen destination's; NULL = none */
    const rdl_route_header_ops_t *request_ops[2];
    const rdl_route_header_ops_t *response_ops[2];
} rdl_route_decision_t;

/*
 * Loads every document of yaml (name is used in errors). Each VirtualService
 * and DestinationRule is validated as Istio would, plus: regexes RE2 would
 * refuse, subsets no DestinationRule in the text defines, fields redline does
 * not know, more rules or regex memory than opts allows (the error names
 * the limit). On error nothing is returned and err names line, column, the
 * field path (err->key) and what was expected. rdl_route_load_file reads
 * with rdl_read_file: a directory, device, FIFO or a file over
 * max_file_bytes is refused without blocking. Any thread.
 */
RDL_EXTERN int rdl_route_load_string(const rdl_route_opts_t *opts, const char *name,
                                     const char *yaml, size_t len, rdl_route_table_t **out,
                                     rdl_error_t *err);
RDL_EXTERN int rdl_route_load_file(const rdl_route_opts_t *opts, const char *path,
                                   rdl_route_table_t **out, rdl_error_t *err);

/* A new table starts with one reference. unref frees at zero; both accept NULL. */
RDL_EXTERN rdl_route_table_t *rdl_route_table_ref(rdl_route_table_t *t);
RDL_EXTERN void rdl_route_table_unref(rdl_route_table_t *t);
/* Number of http routes over all VirtualServices (for logs). */
RDL_EXTERN size_t rdl_route_table_size(const rdl_route_table_t *t);

/*
 * Calls fn(arg, route, conditions) for each http route whose retries.retryOn
 * names conditions redline cannot honour (rdl_retry_on_parse's list, parsed
 * when the table loaded), so whoever loads a table warns once per loaded
 * table: a reload warns again. t may be NULL. Any thread.
 */
typedef void (*rdl_route_warn_fn)(void *arg, const char *route, const char *conditions);
RDL_EXTERN void rdl_route_table_retry_warnings(const rdl_route_table_t *t, rdl_route_warn_fn fn,
                                               void *arg);

/*
 * Decides the route of req. The VirtualService is the first whose hosts match
 * the authority (port ignored; "*.suffix" and short names as Istio resolves
 * them), else the first of the file: the file describes this service.
 * Returns false when no route matches (no decision). seed, when not NULL,
 * seeds the random choices (weights, fault percentages) of this decision and
 * is then advanced, so a run of calls from one seed repeats exactly (tests);
 * NULL draws from the calling thread's generator (rdl_rand64). Any thread.
 */
RDL_EXTERN bool rdl_route_decide(const rdl_route_table_t *t, const rdl_route_request_t *req,
                                 uint64_t *seed, rdl_route_decision_t *out);

/*
 * Appends to json one object saying how req is routed and why: every route
 * tried, each match block and the first condition that failed, the route
 * chosen, and the destinations with their weights. Any thread.
 */
RDL_EXTERN void rdl_route_explain(const rdl_route_table_t *t, const rdl_route_request_t *req,
                                  rdl_buf_t *json);
/*
 * rdl_route_explain for a request described in JSON (POST /debug/routes/explain):
 * {"method","path" (or "uri"; a "?query" is split off),"query","headers":{name:value},
 * "authority","scheme"}, every member optional (GET, "/", http). On a body that
 * is not that shape nothing is appended and err names the member (err->key),
 * or the line and column of a JSON syntax error, and what was expected. t may
 * be NULL (no rules: nothing matches). Any thread.
 */
RDL_EXTERN int rdl_route_explain_json(const rdl_route_table_t *t, const char *body, size_t len,
                                      rdl_buf_t *json, rdl_error_t *err);
/* Appends the active rules as one JSON object (for GET /debug/routes). Any thread. */
RDL_EXTERN void rdl_route_dump(const rdl_route_table_t *t, rdl_buf_t *json);

/*
 * The baggage member that carries ctx's color ("redline.color=canary") into
 * out, NUL-terminated; returns its length, or 0 when ctx has no color or out
 * is too small. The color itself goes in RDL_ROUTE_COLOR_HEADER. Any thread.
 */
RDL_EXTERN size_t rdl_route_baggage_member(const rdl_ctx_t *ctx, char *out, size_t n);

#endif
