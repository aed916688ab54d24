/*
 * route_mw.c: traffic coloring in the runtime: the route module's decision
 * applied to every request, the rules kept fresh, and the admin endpoints
 * that show them.
 *
 * Per request (on its I/O thread): decide with the active table, put route
 * name, subset and color into the request's ctx (copied into its arena, so
 * every other middleware can read them until the very end), apply the
 * route's request header operations to the parsed headers the handler will
 * see. Faults are injected by a second middleware, the last before the
 * handler: a delay through a libuv timer that suspends the chain
 * (rdl_req_resume continues it), an abort answered at once. Response header
 * operations run just before the head is written.
 *
 * Reloads (file change seen by a stat poll, SIGHUP, rdl_server_reload_routes)
 * build and validate a whole new table away from the request path, then swap
 * one pointer. Readers take a reference inside a tiny per-thread window
 * (in_read); the reloader, after the swap, waits until no thread is inside a
 * window that could still have seen the old pointer, and only then drops its
 * own reference, so the old table is freed by whoever lets go last. The
 * request path takes no lock and never waits. A refused file keeps the rules
 * in use; the error (file:line:column: field: why) is logged and counted.
 *
 * A reload may be slow (a large file) or refused late (a FIFO, a device, a
 * file or rule set over its limits), and the planes must not notice: the file
 * is read and parsed under load_mu, which only reloaders take; the admin
 * thread (GET /debug/routes) takes a reference to the table and copies
 * last_error under error_mu, held for that copy only. SIGHUP and the file
 * watch hand the reload to the libuv thread pool, so the control loop keeps
 * turning and SIGTERM drains as usual while a file is parsed (the loop ends
 * once that parse is done).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/internal.h"
#include "redline/route.h"
#include "redline/metrics.h"
#include "redline/trace.h"

/* One reader window per thread, each on its own cache line. */
typedef struct rt_route_slot {
    atomic_int in_read;
    char pad[64 - sizeof(atomic_int)];
} rt_route_slot_t;

/* The route part's state; NULL when no routes file is configured. */
typedef struct rt_routing {
    rdl_server_t *srv;
    const rdl_route_part_opts_t *opts;  /* inside the server's options */
    int slot;                   /* the request slot holding its struct rt_route_req */
    _Atomic(rdl_route_table_t *) current;
    rt_route_slot_t *slots;     /* one per thread of the server (app and admin) */
    int nslots;
    uv_mutex_t load_mu;         /* one load at a time; reloaders only, never a plane's thread */
    uv_mutex_t error_mu;        /* last_error; held to write or copy it, nothing else */
    char last_error[1024];
    atomic_uint_least64_t loaded_at_ms;   /* wall clock of the last successful load */
    bool watching;
    int collector;              /* id in the default metrics registry; 0 = none */
    uv_signal_t sighup;
    uv_fs_poll_t poll;
    uv_loop_t *ctl;             /* the control loop; the fields below are its thread's */
    uv_work_t work;             /* the reload in the thread pool */
    bool working;               /* work is queued or running */
    bool again;                 /* asked again while working: one more reload after it */
    /* counters (relaxed: statistics only) */
    atomic_uint_least64_t decisions, unmatched, bypassed, delays, aborts, reloads, failures;
} rt_routing_t;

/* What a request carries from enter to leave. */
struct rt_route_req {
    rdl_route_table_t *table;   /* referenced until leave: the decision points into it */
    rdl_route_decision_t d;
    uv_timer_t *delay;          /* pending fault delay, or NULL */
};

static void count(atomic_uint_least64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ---- reading the active table --------------------------------------------- */

/* A reference to the active table (NULL when none); the caller unrefs it. */
static rdl_route_table_t *acquire(rt_routing_t *r, int slot)
{
    rt_route_slot_t *s = &r->slots[slot];
    atomic_store(&s->in_read, 1);
    rdl_route_table_t *t = rdl_route_table_ref(atomic_load(&r->current));
    atomic_store_explicit(&s->in_read, 0, memory_order_release);
    return t;
}

/* Swaps in t and drops the previous table once no reader can still be taking it. */
static void publish(rt_routing_t *r, rdl_route_table_t *t)
{
    rdl_route_table_t *old = atomic_exchange(&r->current, t);
    for (int i = 0; r->slots && i < r->nslots; i++)
        while (atomic_load(&r->slots[i].in_read))
            sched_yield();
    rdl_route_table_unref(old);
}

/* ---- loading ------------------------------------------------------------------ */

/* Once per loaded table: a route's retryOn conditions that outbound calls cannot honour. */
static void warn_retry_on(void *log, const char *route, const char *conditions)
{
    rdl_log_field_t f[] = { rdl_lf_str("route", route), rdl_lf_str("conditions", conditions) };
    rdl_log(log, RDL_LOG_WARN,
            "route retryOn conditions not applied to outbound calls (logged per loaded table)", f, 2);
}

static void set_last_error(rt_routing_t *r, const char *text)
{
    uv_mutex_lock(&r->error_mu);
    snprintf(r->last_error, sizeof(r->last_error), "%s", text);
    uv_mutex_unlock(&r->error_mu);
}

int rdl_route_part_load(const rdl_route_part_opts_t *o, struct rdl_route_table **out,
                        rdl_error_t *err)
{
    rdl_route_opts_t ro = { .bypass_header = o->bypass_header,
                            .sticky_header = o->sticky_header,
                            .max_file_bytes = (size_t)o->max_file_bytes,
                            .max_rules = (size_t)o->max_rules,
                            .max_regex_bytes = (size_t)o->max_regex_bytes };
    return rdl_route_load_file(&ro, o->file, out, err);
}

/* Reads, parses and swaps in the file; on whatever thread reloads, never under a plane's lock. */
static int load(rt_routing_t *r, rdl_error_t *err)
{
    rdl_route_table_t *t = NULL;
    char text[1024];
    size_t size = 0;
    uv_mutex_lock(&r->load_mu);
    int rc = rdl_route_part_load(r->opts, &t, err);
    if (rc == 0) {
        size = rdl_route_table_size(t);
        rdl_route_table_retry_warnings(t, warn_retry_on, r->srv->log);
        publish(r, t);                 /* once load_mu is released, a newer load may free t */
        set_last_error(r, "");
        atomic_store(&r->loaded_at_ms, rdl_wall_ns() / 1000000u);
        count(&r->reloads);
    } else {
        rdl_error_format(err, text, sizeof(text));
        set_last_error(r, text);
        count(&r->failures);
    }
    uv_mutex_unlock(&r->load_mu);
    if (rc == 0) {
        rdl_log_field_t f[] = { rdl_lf_str("file", r->opts->file),
                                rdl_lf_int("http_routes", (int64_t)size) };
        rdl_log(r->srv->log, RDL_LOG_INFO, "routes loaded", f, 2);
    } else {
        rdl_log_field_t f[] = { rdl_lf_str("file", err->file), rdl_lf_int("line", err->line),
                                rdl_lf_int("column", err->column), rdl_lf_str("field", err->key),
                                rdl_lf_str("error", text) };
        rdl_log(r->srv->log, RDL_LOG_ERROR, "routes file refused: the previous rules stay", f, 5);
    }
    return rc;
}

/* ---- reloading off the control loop --------------------------------------------- */

static void reload_work(uv_work_t *w)
{
    rdl_error_t err;
    load(w->data, &err);
}

static void reload_async(rt_routing_t *r);

static void reload_done(uv_work_t *w, int status)
{
    rt_routing_t *r = w->data;
    (void)status;
    r->working = false;
    if (r->again && r->watching) {
        r->again = false;
        reload_async(r);
    }
}

/* On the control loop: one reload at a time; asks during one coalesce into one more. */
static void reload_async(rt_routing_t *r)
{
    if (r->working) {
        r->again = true;
        return;
    }
    r->work.data = r;
    if (uv_queue_work(r->ctl, &r->work, reload_work, reload_done) == 0)
        r->working = true;
}

int rdl_server_reload_routes(rdl_server_t *srv, rdl_error_t *err)
{
    rdl_error_t local;
    rt_routing_t *r = srv ? rdl_server_part_state(srv, &rdl_part_route) : NULL;
    if (!r)
        return RDL_ESTATE;
    return load(r, err ? err : &local);
}

void rdl_server_route_stats(const rdl_server_t *srv, rdl_server_route_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    rt_routing_t *r = srv ? rdl_server_part_state(srv, &rdl_part_route) : NULL;
    if (!r)
        return;
    out->decisions = atomic_load_explicit(&r->decisions, memory_order_relaxed);
    out->unmatched = atomic_load_explicit(&r->unmatched, memory_order_relaxed);
    out->bypassed = atomic_load_explicit(&r->bypassed, memory_order_relaxed);
    out->delays = atomic_load_explicit(&r->delays, memory_order_relaxed);
    out->aborts = atomic_load_explicit(&r->aborts, memory_order_relaxed);
    out->reloads = atomic_load_explicit(&r->reloads, memory_order_relaxed);
    out->reload_failures = atomic_load_explicit(&r->failures, memory_order_relaxed);
}

/* The counters as metrics in the default registry, read at scrape time. */
static void collect(rdl_collect_t *c, void *arg)
{
    rdl_server_route_stats_t s;
    rdl_server_route_stats(((rt_routing_t *)arg)->srv, &s);
    static const char *const kind[] = { "kind" };
    const char *delay[] = { "delay" }, *abort_[] = { "abort" };
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_route_decisions_total",
                       "Requests the routing rules gave a route.");
    rdl_collect_value(c, NULL, NULL, 0, (double)s.decisions);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_route_unmatched_total",
                       "Requests no routing rule matched.");
    rdl_collect_value(c, NULL, NULL, 0, (double)s.unmatched);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_route_bypassed_total",
                       "Requests the bypass header sent to the default route.");
    rdl_collect_value(c, NULL, NULL, 0, (double)s.bypassed);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_route_faults_total",
                       "Faults injected by the routing rules.");
    rdl_collect_value(c, kind, delay, 1, (double)s.delays);
    rdl_collect_value(c, kind, abort_, 1, (double)s.aborts);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_route_reloads_total",
                       "Routing rule files loaded, the first included.");
    rdl_collect_value(c, NULL, NULL, 0, (double)s.reloads);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_route_reload_failures_total",
                       "Routing rule files refused; the previous rules stayed.");
    rdl_collect_value(c, NULL, NULL, 0, (double)s.reload_failures);
}

/* ---- the request as the matcher sees it --------------------------------------- */

static const char *req_header(void *arg, const char *lname, size_t *len)
{
    return rdl_req_header(arg, lname, len);
}

static rdl_route_request_t view_of(rdl_req_t *req)
{
    rdl_route_request_t v;
    memset(&v, 0, sizeof(v));
    v.method = rdl_req_method(req);
    v.method_len = strlen(v.method);
    v.path = rdl_req_path(req, &v.path_len);
    v.query = rdl_req_query(req, &v.query_len);
    v.authority = rdl_req_authority(req, &v.authority_len);
    v.scheme = "http";                      /* the listener is plain HTTP */
    v.scheme_len = 4;
    v.header = req_header;
    v.header_arg = req;
    return v;
}

/* ---- header operations -------------------------------------------------------- */

/* Istio's order: remove, then set (overwrite), then add (append). */
static void apply_request_ops(rdl_req_t *req, const rdl_route_header_ops_t *ops)
{
    for (size_t i = 0; i < ops->nremove; i++)
        rdl_req_header_remove(req, ops->remove[i]);
    for (size_t i = 0; i < ops->nset; i++) {
        rdl_req_header_remove(req, ops->set[i].name);
        rdl_req_header_add(req, ops->set[i].name, ops->set[i].value);  /* no room: dropped */
    }
    for (size_t i = 0; i < ops->nadd; i++)
        rdl_req_header_add(req, ops->add[i].name, ops->add[i].value);
}

static void apply_response_ops(rdl_req_t *req, const rdl_route_header_ops_t *ops)
{
    for (size_t i = 0; i < ops->nremove; i++)
        rdl_resp_header_remove(req, ops->remove[i]);
    for (size_t i = 0; i < ops->nset; i++)
        rdl_resp_header_set(req, ops->set[i].name, ops->set[i].value);
    for (size_t i = 0; i < ops->nadd; i++)
        rdl_resp_header(req, ops->add[i].name, ops->add[i].value);
}

/* ---- faults ------------------------------------------------------------------- */

static void abort_request(rdl_req_t *req, int status)
{
    static const char body[] = "fault filter abort";      /* Envoy's body for the same fault */
    rdl_resp_send(req, status, "text/plain", body, sizeof(body) - 1);
}

static void on_delay_closed(uv_handle_t *h)
{
    free(h);
}

static void on_delay(uv_timer_t *timer)
{
    rdl_req_t *req = timer->data;
    rt_routing_t *r = rdl_server_part_state(rdl_req_server(req), &rdl_part_route);
    struct rt_route_req *st = rdl_req_slot(req, r->slot);
    st->delay = NULL;
    uv_close((uv_handle_t *)timer, on_delay_closed);
    if (rdl_req_answered(req))
        return;
    if (st->d.abort_status)
        abort_request(req, st->d.abort_status);    /* Envoy delays first, then aborts */
    else
        rdl_req_resume(req);
}

/* ---- the middleware ----------------------------------------------------------- */

/* On the app chain only: the admin plane is not routed. */
static int route_enter(rdl_req_t *req, void *arg)
{
    rt_routing_t *r = arg;
    rdl_route_table_t *t = acquire(r, rdl_req_thread(req));
    if (!t)
        return 0;
    rdl_ctx_t *ctx = rdl_req_ctx(req);
    struct rt_route_req *st = rdl_arena_alloc(&ctx->arena, sizeof(*st));
    rdl_route_request_t v = view_of(req);
    if (!st || !rdl_route_decide(t, &v, NULL, &st->d)) {
        count(&r->unmatched);
        rdl_route_table_unref(t);
        return 0;
    }
    st->table = t;
    st->delay = NULL;
    rdl_req_slot_set(req, r->slot, st);
    count(&r->decisions);
    if (st->d.bypassed)
        count(&r->bypassed);
    /* Subset and color travel on in the ctx (outbound calls, metrics, the span), copied:
     * the table may go before the last leave hook reads them. */
    if (st->d.subset)
        ctx->subset = rdl_arena_strndup(&ctx->arena, st->d.subset, strlen(st->d.subset));
    if (st->d.color)
        ctx->color = rdl_arena_strndup(&ctx->arena, st->d.color, strlen(st->d.color));
    if (ctx->span && rdl_span_recording(ctx->span)) {
        rdl_attr_t a[2];
        size_t n = 0;
        if (st->d.route_name)
            a[n++] = (rdl_attr_t){ .key = "redline.route.name", .type = RDL_ATTR_STRING,
                                   .v.str = { st->d.route_name, strlen(st->d.route_name) } };
        if (st->d.subset)
            a[n++] = (rdl_attr_t){ .key = "redline.route.subset", .type = RDL_ATTR_STRING,
                                   .v.str = { st->d.subset, strlen(st->d.subset) } };
        rdl_span_set_attrs(ctx->span, a, n, RDL_ATTRS_STATIC_KEYS);
    }
    for (int i = 0; i < 2; i++)
        if (st->d.request_ops[i])
            apply_request_ops(req, st->d.request_ops[i]);
    return 0;
}

/*
 * Faults are injected by a second middleware, the last before the handler,
 * so that a delayed or aborted request is still measured, logged and traced
 * by the middleware between, as Envoy's fault filter sits last before routing.
 */
static int fault_enter(rdl_req_t *req, void *arg)
{
    rt_routing_t *r = arg;
    struct rt_route_req *st = rdl_req_slot(req, r->slot);
    if (!st || (!st->d.delay_ms && !st->d.abort_status))
        return 0;
    if (st->d.abort_status)
        count(&r->aborts);
    if (st->d.delay_ms) {
        count(&r->delays);
        st->delay = malloc(sizeof(uv_timer_t));
        if (st->delay && uv_timer_init(rdl_req_loop(req), st->delay) == 0) {
            st->delay->data = req;
            uv_timer_start(st->delay, on_delay, st->d.delay_ms, 0);
            return 1;                      /* suspended: on_delay resumes or aborts */
        }
        free(st->delay);
        st->delay = NULL;
    }
    if (st->d.abort_status) {
        abort_request(req, st->d.abort_status);
        return 1;
    }
    return 0;
}

static void fault_leave(rdl_req_t *req, void *arg)
{
    struct rt_route_req *st = rdl_req_slot(req, ((rt_routing_t *)arg)->slot);
    if (st && st->delay) {                 /* answered (deadline) or gone while delayed */
        uv_timer_stop(st->delay);
        uv_close((uv_handle_t *)st->delay, on_delay_closed);
        st->delay = NULL;
    }
}

static void route_before_send(rdl_req_t *req, void *arg)
{
    struct rt_route_req *st = rdl_req_slot(req, ((rt_routing_t *)arg)->slot);
    if (!st)
        return;
    for (int i = 0; i < 2; i++)
        if (st->d.response_ops[i])
            apply_response_ops(req, st->d.response_ops[i]);
}

static void route_leave(rdl_req_t *req, void *arg)
{
    int slot = ((rt_routing_t *)arg)->slot;
    struct rt_route_req *st = rdl_req_slot(req, slot);
    if (!st)
        return;
    rdl_route_table_unref(st->table);
    rdl_req_slot_set(req, slot, NULL);
}

/* For outbound calls (outbound.c): the route's timeout and retries apply to them. */
const rdl_route_decision_t *rdl__rt_route_decision(const rdl_req_t *req)
{
    rt_routing_t *r = rdl_server_part_state(rdl_req_server(req), &rdl_part_route);
    const struct rt_route_req *st = r ? rdl_req_slot(req, r->slot) : NULL;
    return st ? &st->d : NULL;
}

/* ---- admin endpoints ------------------------------------------------------------ */

static void get_routes(rdl_req_t *req, void *arg)
{
    rt_routing_t *r = arg;
    rdl_buf_t b;
    rdl_buf_init(&b);
    if (!r) {
        rdl_buf_puts(&b, "{\"enabled\":false}");
        rdl__rt_send_json(req, 200, &b);
        return;
    }
    const rdl_route_part_opts_t *o = r->opts;
    rdl_server_route_stats_t s;
    rdl_server_route_stats(r->srv, &s);
    rdl_buf_puts(&b, "{\"enabled\":true,\"file\":");
    rdl_json_str(&b, o->file, strlen(o->file));
    rdl_buf_printf(&b, ",\"loaded_at_unix_ms\":%llu,\"reloads\":%llu,\"reload_failures\":%llu,"
                   "\"decisions\":%llu,\"unmatched\":%llu,\"last_error\":",
                   (unsigned long long)atomic_load(&r->loaded_at_ms), (unsigned long long)s.reloads,
                   (unsigned long long)s.reload_failures, (unsigned long long)s.decisions,
                   (unsigned long long)s.unmatched);
    char last_error[sizeof(r->last_error)];
    uv_mutex_lock(&r->error_mu);
    memcpy(last_error, r->last_error, sizeof(last_error));
    uv_mutex_unlock(&r->error_mu);
    if (last_error[0])
        rdl_json_str(&b, last_error, strlen(last_error));
    else
        rdl_buf_puts(&b, "null");
    rdl_buf_puts(&b, ",\"rules\":");
    rdl_route_table_t *t = acquire(r, rdl_req_thread(req));
    rdl_route_dump(t, &b);
    rdl_route_table_unref(t);
    rdl_buf_putc(&b, '}');
    rdl__rt_send_json(req, 200, &b);
}

static void explain(rdl_req_t *req, void *arg)
{
    rt_routing_t *r = arg;
    size_t blen;
    const char *body = rdl_req_body(req, &blen);
    rdl_route_table_t *t = r ? acquire(r, rdl_req_thread(req)) : NULL;
    rdl_buf_t b;
    rdl_error_t err;
    rdl_buf_init(&b);
    int rc = rdl_route_explain_json(t, body, blen, &b, &err);
    rdl_route_table_unref(t);
    if (rc) {
        char msg[sizeof(err.msg) + sizeof(err.key) + 64];
        rdl_buf_close(&b);
        rdl_resp_error(req, 400, "bad_request", rdl_error_format(&err, msg, sizeof(msg)));
        return;
    }
    rdl__rt_send_json(req, 200, &b);
}

/* ---- lifecycle ------------------------------------------------------------------ */

static void route_defaults(void *opts)
{
    rdl_route_part_opts_t *o = opts;
    o->file = "";
    o->bypass_header = "x-redline-bypass";
    o->sticky_header = "";
    o->watch_ms = 1000;
    o->max_file_bytes = RDL_ROUTE_MAX_FILE_BYTES;
    o->max_rules = RDL_ROUTE_MAX_RULES;
    o->max_regex_bytes = RDL_ROUTE_MAX_REGEX_BYTES;
}

static int route_config(void *opts, rdl_config_t *cfg)
{
    rdl_route_part_opts_t *o = opts;
    rdl_cfg_key_t keys[] = {
        { "routes.file", RDL_CFG_STRING, &o->file, 0, 0, NULL,
          "VirtualService/DestinationRule YAML for traffic coloring (empty: off)", NULL },
        { "routes.bypass_header", RDL_CFG_STRING, &o->bypass_header, 0, 0, NULL,
          "a request with this header takes the default route (empty: none)", NULL },
        { "routes.sticky_header", RDL_CFG_STRING, &o->sticky_header, 0, 0, NULL,
          "weighted choice sticky on this header's value (empty: random)", NULL },
        { "routes.watch_interval", RDL_CFG_DURATION, &o->watch_ms, 0, 3600000, NULL,
          "how often the routes file is checked for changes (0: SIGHUP only)", NULL },
        { "routes.max_file_bytes", RDL_CFG_SIZE, &o->max_file_bytes, 1, 1u << 30, NULL,
          "a larger routes file is refused (the rules in use stay)", NULL },
        { "routes.max_rules", RDL_CFG_INT, &o->max_rules, 1, 10000000, NULL,
          "http routes, match blocks and destinations a routes file may hold", NULL },
        { "routes.max_regex_bytes", RDL_CFG_SIZE, &o->max_regex_bytes, 1, 1u << 30, NULL,
          "memory the compiled regexes of a routes file may take (PCRE2 code + JIT)", NULL },
    };
    return rdl_config_add(cfg, keys, sizeof(keys) / sizeof(keys[0]));
}

static int route_install(rdl_server_t *srv, void *opts, void **state)
{
    const rdl_route_part_opts_t *o = opts;
    rt_routing_t *r = NULL;
    if (o->file && o->file[0]) {
        r = calloc(1, sizeof(*r));
        if (!r || uv_mutex_init(&r->load_mu) != 0) {
            free(r);
            return RDL_ENOMEM;
        }
        if (uv_mutex_init(&r->error_mu) != 0) {
            uv_mutex_destroy(&r->load_mu);
            free(r);
            return RDL_ENOMEM;
        }
        r->srv = srv;
        r->opts = o;
        *state = r;
        if ((r->slot = rdl_server_req_slot(srv)) < 0)
            return r->slot;
        rdl_middleware_t mw = { .name = "coloring", .enter = route_enter,
                                .before_send = route_before_send, .leave = route_leave, .arg = r };
        int rc = rdl_server_use(srv, &mw);
        if (rc)
            return rc;
        r->collector = rdl_collector_add(NULL, collect, r);
        if (r->collector < 0)
            return r->collector;
    }
    int rc = rdl_server_admin_route(srv, "GET", "/debug/routes", get_routes, r);
    return rc ? rc : rdl_server_admin_route(srv, "POST", "/debug/routes/explain", explain, r);
}

/* The fault middleware (last before the handler), then the first load. */
static int route_start(rdl_server_t *srv, void *state, rdl_error_t *err)
{
    rt_routing_t *r = state;
    if (!r || r->slots)
        return 0;
    rdl_middleware_t mw = { .name = "fault_injection", .enter = fault_enter, .leave = fault_leave,
                            .arg = r };
    int rc = rdl_server_use(srv, &mw);        /* appended now: the last before the handler */
    if (rc)
        return rdl_error_set(err, rc, 0, 0, "routes.file", "cannot add the fault middleware: %s",
                             rdl_strerror(rc));
    r->nslots = srv->nall;
    r->slots = calloc((size_t)r->nslots, sizeof(*r->slots));
    if (!r->slots) {
        r->nslots = 0;
        return rdl_error_set(err, RDL_ENOMEM, 0, 0, "routes.file", "out of memory");
    }
    return load(r, err);
}

static void on_sighup(uv_signal_t *sig, int signum)
{
    (void)signum;
    rdl_log(((rt_routing_t *)sig->data)->srv->log, RDL_LOG_INFO, "SIGHUP received: reloading routes",
            NULL, 0);
    reload_async(sig->data);
}

static void on_file_change(uv_fs_poll_t *p, int status, const uv_stat_t *prev, const uv_stat_t *curr)
{
    if (status == 0)
        reload_async(p->data);
    else if (status != UV_ENOENT || prev->st_ino != 0) {
        rdl_log_field_t f = rdl_lf_str("error", uv_strerror(status));
        rdl_log(((rt_routing_t *)p->data)->srv->log, RDL_LOG_ERROR,
                "routes file not readable: the rules stay", &f, 1);
    }
}

/* The control loop is up: SIGHUP and file changes reload. */
static void route_run(rdl_server_t *srv, void *state, uv_loop_t *ctl)
{
    rt_routing_t *r = state;
    if (!r)
        return;
    r->ctl = ctl;
    uv_signal_init(ctl, &r->sighup);
    r->sighup.data = r;
    uv_signal_start(&r->sighup, on_sighup, SIGHUP);
    uv_fs_poll_init(ctl, &r->poll);
    r->poll.data = r;
    if (r->opts->watch_ms)
        uv_fs_poll_start(&r->poll, on_file_change, r->opts->file, (unsigned)r->opts->watch_ms);
    r->watching = true;
}

/* The control loop closes. */
static void route_drained(rdl_server_t *srv, void *state)
{
    rt_routing_t *r = state;
    (void)srv;
    if (!r || !r->watching)
        return;
    uv_close((uv_handle_t *)&r->sighup, NULL);
    uv_close((uv_handle_t *)&r->poll, NULL);
    r->watching = false;
}

static void route_free(rdl_server_t *srv, void *state)
{
    rt_routing_t *r = state;
    (void)srv;
    if (!r)
        return;
    if (r->collector > 0)
        rdl_collector_remove(NULL, r->collector);
    rdl_route_table_unref(atomic_load(&r->current));
    uv_mutex_destroy(&r->load_mu);
    uv_mutex_destroy(&r->error_mu);
    free(r->slots);
    free(r);
}

const rdl_part_t rdl_part_route = {
    .name = "route",
    .opts_size = sizeof(rdl_route_part_opts_t),
    .defaults = route_defaults,
    .config = route_config,
    .install = route_install,
    .start = route_start,
    .run = route_run,
    .drained = route_drained,
    .free = route_free,
};
