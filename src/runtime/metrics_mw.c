/*
 * metrics_mw.c: the runtime's metrics red line: the RED middleware, the
 * runtime's own collectors (event-loop lag per I/O thread, the blocking-work
 * pool), and the admin endpoints /metrics and /debug/vars.
 *
 * It exists so every service on the runtime gets rate, errors and duration per
 * route without writing a line: the middleware labels each request with its
 * method, its route *template* (never the raw path, which would make one
 * series per id), its status code and its traffic color, all bounded by the
 * metrics module's cardinality guard. Everything goes to the default
 * registry, so an application's own metrics come out on the same /metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "redline/metrics.h"
#include "runtime/internal.h"

#define LAG_INTERVAL_MS 100
#define LAG_WINDOW_NS (10ull * 1000000000ull)     /* lag reported: the worst of the last 10-20 s */

/* Event-loop lag of one I/O thread: a 100 ms timer and how late it fires. */
typedef struct rt_lag {
    uv_timer_t timer;
    bool on;
    bool admin;
    uint64_t due_ns;
    uint64_t window_ns;         /* start of the current window */
    _Atomic uint64_t max_ns;    /* worst lag in this window / the one before */
    _Atomic uint64_t prev_max_ns;
} rt_lag_t;

/* The metrics part's state. */
typedef struct rt_metrics {
    rdl_server_t *srv;
    const rdl_metrics_part_opts_t *opts;    /* inside the server's options */
    rt_lag_t *lag;              /* one per I/O thread (app and admin), from run on */
    int nlag;
    rdl_metric_t *duration;     /* http_server_request_duration_seconds{method,route,code,color} */
    rdl_metric_t *req_size;     /* http_server_request_body_size_bytes{method,route} */
    rdl_metric_t *resp_size;    /* http_server_response_body_size_bytes{method,route} */
    rdl_gauge_t *active;        /* http_server_active_requests */
    rdl_counter_t *scrapes[2];  /* redline_metrics_scrapes_total{format}, by rdl_format_t */
    int runtime_collector;      /* id in the default registry; 0 = none */
} rt_metrics_t;

/* ---- configuration ----------------------------------------------------- */

static void metrics_defaults(void *opts)
{
    rdl_metrics_part_opts_t *o = opts;
    o->enabled = true;
    o->max_series = 1000;
    o->debug_vars = true;
}

static int metrics_config(void *opts, rdl_config_t *cfg)
{
    rdl_metrics_part_opts_t *o = opts;
    rdl_cfg_key_t keys[] = {
        { "metrics.enabled", RDL_CFG_BOOL, &o->enabled, 0, 0, NULL,
          "RED metrics per request, runtime and process collectors", NULL },
        { "metrics.max_series", RDL_CFG_INT, &o->max_series, 1, 100000, NULL,
          "label sets per RED metric before the overflow series", NULL },
        { "metrics.debug_vars", RDL_CFG_BOOL, &o->debug_vars, 0, 0, NULL,
          "serve /debug/vars on the admin listener", NULL },
    };
    return rdl_config_add(cfg, keys, sizeof(keys) / sizeof(keys[0]));
}

/* ---- families ---------------------------------------------------------- */

/* The family of that name in the default registry, registered on first use. */
static rdl_metric_t *family(rdl_metric_type_t type, const rdl_metric_opts_t *o)
{
    rdl_metric_t *m = rdl_metric_find(NULL, o->name);
    if (!m && rdl_metric_new(NULL, type, o, &m, NULL) != 0)
        m = rdl_metric_find(NULL, o->name);     /* another server registered it meanwhile */
    return m;
}

static int families(struct rt_metrics *mx, size_t max_series)
{
    static const char *const red[] = { "method", "route", "code", "color" };
    static const double secs[] = { .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10 };
    static const double bytes[] = { 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576 };
    rdl_metric_opts_t d = { .name = "http_server_request_duration_seconds",
                            .help = "Time from a request's head parsed to its response written, by route template.",
                            .labels = red, .nlabels = 4, .buckets = secs,
                            .nbuckets = sizeof(secs) / sizeof(secs[0]), .max_series = max_series };
    rdl_metric_opts_t rq = { .name = "http_server_request_body_size_bytes",
                             .help = "Request body sizes, by route template.",
                             .labels = red, .nlabels = 2, .buckets = bytes,
                             .nbuckets = sizeof(bytes) / sizeof(bytes[0]), .max_series = max_series };
    rdl_metric_opts_t rs = rq;
    rs.name = "http_server_response_body_size_bytes";
    rs.help = "Response body sizes, by route template.";
    rdl_metric_opts_t a = { .name = "http_server_active_requests",
                            .help = "Requests being handled now." };
    mx->duration = family(RDL_METRIC_HISTOGRAM, &d);
    mx->req_size = family(RDL_METRIC_HISTOGRAM, &rq);
    mx->resp_size = family(RDL_METRIC_HISTOGRAM, &rs);
    mx->active = rdl_metric_gauge(family(RDL_METRIC_GAUGE, &a), NULL);
    static const char *const fl[] = { "format" };
    rdl_metric_opts_t sc = { .name = "redline_metrics_scrapes_total",
                             .help = "Scrapes of /metrics, by the format served.",
                             .labels = fl, .nlabels = 1, .max_series = 2 };
    rdl_metric_t *scm = family(RDL_METRIC_COUNTER, &sc);
    mx->scrapes[RDL_FMT_TEXT] = rdl_metric_counter(scm, (const char *const[]){ "text" });
    mx->scrapes[RDL_FMT_OPENMETRICS] = rdl_metric_counter(scm, (const char *const[]){ "openmetrics" });
    /* the application may have taken a name with another type */
    bool ok = mx->active && mx->scrapes[0] && mx->duration && rdl_metric_type(mx->duration) == RDL_METRIC_HISTOGRAM &&
              mx->req_size && rdl_metric_type(mx->req_size) == RDL_METRIC_HISTOGRAM &&
              mx->resp_size && rdl_metric_type(mx->resp_size) == RDL_METRIC_HISTOGRAM;
    return ok ? 0 : RDL_EEXIST;
}

/* ---- RED middleware ---------------------------------------------------- */

/* The method as a bounded label: the standard ones, else "_OTHER". */
static const char *method_label(const rdl_req_t *req)
{
    rdl_method_t m = rdl_req_method_id(req);
    return m != RDL_METHOD_UNKNOWN ? rdl_method_name(m) : "_OTHER";
}

/* On the app chain only: scrapes and probes are not the service's traffic. */
static int red_enter(rdl_req_t *req, void *arg)
{
    struct rt_metrics *mx = arg;
    (void)req;
    rdl_gauge_inc(mx->active);
    return 0;
}

/*
 * The three series of one (method, route, code, color), remembered per I/O thread: a hit
 * costs a hash and two short compares instead of three label-set lookups (~150 ns).
 * The handles live in the default registry for the life of the process.
 */
#define RED_CACHE 64
#define RED_COLOR_MAX 32

typedef struct red_entry {
    const char *method;         /* one of method_label's constants */
    int status;
    char route[128];            /* "" = empty slot */
    char color[RED_COLOR_MAX];
    rdl_histogram_t *dur, *req, *resp;
} red_entry_t;

static __thread red_entry_t red_cache[RED_CACHE];

static red_entry_t *red_series(struct rt_metrics *mx, const char *method, const char *route,
                               int status, const char *color)
{
    size_t rl = strlen(route), cl = strlen(color);
    uint64_t h = (uint64_t)(uintptr_t)method * 31 + (uint64_t)status * 131 + rl * 7 + cl;
    for (size_t i = 0; i < rl; i += 4)
        h = h * 33 + (unsigned char)route[i];
    red_entry_t *e = &red_cache[h % RED_CACHE];
    if (e->method == method && e->status == status && strcmp(e->route, route) == 0 &&
        strcmp(e->color, color) == 0)
        return e;
    char code[8];
    snprintf(code, sizeof(code), "%d", status >= 100 && status <= 999 ? status : 0);
    const char *labels[4] = { method, route, code, color };
    red_entry_t fresh = { .method = method, .status = status,
                          .dur = rdl_metric_histogram(mx->duration, labels),
                          .req = rdl_metric_histogram(mx->req_size, labels),
                          .resp = rdl_metric_histogram(mx->resp_size, labels) };
    if (rl >= sizeof(e->route) || cl >= sizeof(e->color)) {
        static __thread red_entry_t uncached;   /* too long to remember: looked up each time */
        uncached = fresh;
        return &uncached;
    }
    memcpy(fresh.route, route, rl + 1);
    memcpy(fresh.color, color, cl + 1);
    *e = fresh;
    return e;
}

static void red_leave(rdl_req_t *req, void *arg)
{
    struct rt_metrics *mx = arg;
    rdl_ctx_t *ctx = rdl_req_ctx(req);
    double secs = (double)(ctx->end_ns - ctx->start_ns) / 1e9;
    const char *route = rdl_req_route(req);
    red_entry_t *e = red_series(mx, method_label(req), route ? route : "unmatched",
                                rdl_req_status(req), ctx->color ? ctx->color : "");
    rdl_histogram_observe(e->dur, secs);
    rdl_histogram_observe(e->req, (double)rdl_req_bytes_in(req));
    rdl_histogram_observe(e->resp, (double)rdl_req_bytes_out(req));
    rdl_gauge_dec(mx->active);
}

/* ---- event-loop lag ------------------------------------------------------ */

/* How late the timer fired is how long the loop was busy with something else. */
static void on_lag_timer(uv_timer_t *timer)
{
    rt_lag_t *t = timer->data;
    uint64_t now = uv_hrtime();
    uint64_t lag = now > t->due_ns ? now - t->due_ns : 0;
    if (now - t->window_ns >= LAG_WINDOW_NS) {
        atomic_store_explicit(&t->prev_max_ns, atomic_load(&t->max_ns), memory_order_relaxed);
        atomic_store_explicit(&t->max_ns, 0, memory_order_relaxed);
        t->window_ns = now;
    }
    if (lag > atomic_load_explicit(&t->max_ns, memory_order_relaxed))
        atomic_store_explicit(&t->max_ns, lag, memory_order_relaxed);
    t->due_ns = now + LAG_INTERVAL_MS * 1000000ull;
    uv_timer_start(&t->timer, on_lag_timer, LAG_INTERVAL_MS, 0);
}

/* On the thread, before its loop turns. */
static void metrics_thread_start(rdl_server_t *srv, void *state, const rdl_part_thread_t *pt)
{
    rt_metrics_t *mx = state;
    (void)srv;
    if (!mx->lag || pt->index >= mx->nlag)
        return;
    rt_lag_t *t = &mx->lag[pt->index];
    t->admin = pt->admin;
    if (uv_timer_init(pt->loop, &t->timer) != 0)
        return;
    t->timer.data = t;
    t->on = true;
    t->window_ns = uv_hrtime();
    t->due_ns = t->window_ns + LAG_INTERVAL_MS * 1000000ull;
    uv_timer_start(&t->timer, on_lag_timer, LAG_INTERVAL_MS, 0);
}

static void metrics_thread_stop(rdl_server_t *srv, void *state, const rdl_part_thread_t *pt)
{
    rt_metrics_t *mx = state;
    (void)srv;
    if (!mx->lag || pt->index >= mx->nlag || !mx->lag[pt->index].on)
        return;
    mx->lag[pt->index].on = false;
    uv_close((uv_handle_t *)&mx->lag[pt->index].timer, NULL);
}

/* ---- runtime collector --------------------------------------------------- */

static void gauge(rdl_collect_t *c, const char *name, const char *help, double v)
{
    rdl_collect_family(c, RDL_METRIC_GAUGE, name, help);
    rdl_collect_value(c, NULL, NULL, 0, v);
}

/* The server's connection counts (conn.c, server.c), read with relaxed loads. */
static void collect_connections(rdl_collect_t *c, rdl_server_t *srv)
{
    const char *pn[] = { "plane" }, *rn[] = { "reason" };
    rdl_collect_family(c, RDL_METRIC_GAUGE, "http_server_connections",
                       "Open connections, by listener (server.max_connections bounds each).");
    rdl_collect_value(c, pn, (const char *[]){ "app" }, 1,
                      atomic_load_explicit(&srv->app_conns, memory_order_relaxed));
    rdl_collect_value(c, pn, (const char *[]){ "admin" }, 1,
                      atomic_load_explicit(&srv->admin_conns, memory_order_relaxed));
    rdl_collect_family(c, RDL_METRIC_COUNTER, "http_server_connections_rejected_total",
                       "Connections refused at accept: over server.max_connections (limit, "
                       "answered 503) or out of file descriptors (fd).");
    rdl_collect_value(c, rn, (const char *[]){ "limit" }, 1,
                      (double)atomic_load_explicit(&srv->refused[RT_REFUSED_LIMIT], memory_order_relaxed));
    rdl_collect_value(c, rn, (const char *[]){ "fd" }, 1,
                      (double)atomic_load_explicit(&srv->refused[RT_REFUSED_FD], memory_order_relaxed));
}

static void collect_runtime(rdl_collect_t *c, void *arg)
{
    rt_metrics_t *mx = arg;
    rdl_server_t *srv = mx->srv;
    rdl_collect_family(c, RDL_METRIC_GAUGE, "redline_event_loop_lag_seconds",
                       "Worst delay of a 100 ms timer on each I/O thread over the last 10-20 s.");
    for (int i = 0; i < mx->nlag; i++) {
        rt_lag_t *t = &mx->lag[i];
        char name[16];
        if (i >= srv->nthreads)
            snprintf(name, sizeof(name), "admin");
        else
            snprintf(name, sizeof(name), "%d", i);
        uint64_t a = atomic_load_explicit(&t->max_ns, memory_order_relaxed);
        uint64_t b = atomic_load_explicit(&t->prev_max_ns, memory_order_relaxed);
        const char *ln[] = { "thread" }, *lv[] = { name };
        rdl_collect_value(c, ln, lv, 1, (double)(a > b ? a : b) / 1e9);
    }
    rdl_collect_family(c, RDL_METRIC_COUNTER, "http_server_send_timeouts_total",
                       "Connections closed because no output left for timeouts.send (slow read).");
    rdl_collect_value(c, NULL, NULL, 0, (double)atomic_load(&srv->send_timeouts));
    collect_connections(c, srv);
    if (!srv->pool)
        return;
    rdl_pool_stats_t st;
    rdl_pool_stats(srv->pool, &st);
    gauge(c, "redline_pool_queue_depth", "Blocking-work tasks queued, not yet running.", (double)st.depth);
    gauge(c, "redline_pool_in_flight", "Blocking-work tasks running now.", (double)st.in_flight);
    gauge(c, "redline_pool_oldest_task_age_seconds",
          "Age of the oldest queued or running blocking-work task (0 when none).",
          (double)st.oldest_age_ns / 1e9);
    gauge(c, "redline_pool_threads", "Blocking-work worker threads.", st.threads);
    gauge(c, "redline_pool_queue_capacity", "Blocking-work queue bound (503 beyond).", st.queue_max);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_pool_completed_tasks_total",
                       "Blocking-work tasks whose work ran.");
    rdl_collect_value(c, NULL, NULL, 0, (double)st.completed);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_pool_rejected_tasks_total",
                       "Blocking-work tasks refused because the queue was full.");
    rdl_collect_value(c, NULL, NULL, 0, (double)st.rejected);
}

/* The threads' structures and the pool exist, no I/O thread runs yet: collectors on. */
static void metrics_run(rdl_server_t *srv, void *state, uv_loop_t *ctl)
{
    rt_metrics_t *mx = state;
    (void)ctl;
    if (!mx->opts->enabled || mx->lag)
        return;
    mx->lag = calloc((size_t)srv->nall, sizeof(*mx->lag));
    if (!mx->lag)
        return;                 /* no lag figures, the rest stands */
    mx->nlag = srv->nall;
    int id = rdl_collector_add(NULL, collect_runtime, mx);
    mx->runtime_collector = id > 0 ? id : 0;
}

/* The drain is over: no scrape may read the threads or the pool from now on. */
static void metrics_drained(rdl_server_t *srv, void *state)
{
    rt_metrics_t *mx = state;
    (void)srv;
    if (mx->runtime_collector) {
        rdl_collector_remove(NULL, mx->runtime_collector);
        mx->runtime_collector = 0;
    }
}

/* ---- admin endpoints ----------------------------------------------------- */

/* gzip of in into out (zlib's gzip wrapper): 0, or RDL_ENOMEM. */
static int gzip(const rdl_buf_t *in, rdl_buf_t *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return RDL_ENOMEM;
    uLong bound = deflateBound(&zs, (uLong)in->len);
    if (rdl_buf_reserve(out, bound) != 0) {
        deflateEnd(&zs);
        return RDL_ENOMEM;
    }
    zs.next_in = (Bytef *)in->data;
    zs.avail_in = (uInt)in->len;
    zs.next_out = (Bytef *)out->data;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    out->len = zs.total_out;
    deflateEnd(&zs);
    return rc == Z_STREAM_END ? 0 : RDL_ENOMEM;
}

/*
 * A "format" query parameter ("text" or "openmetrics") overrides Accept: a
 * scraper that cannot choose its Accept header (Prometheus 2.x has no
 * per-job protocol setting) asks with its scrape config's params instead.
 */
static bool format_param(const rdl_req_t *req, rdl_format_t *fmt)
{
    size_t n;
    const char *q = rdl_req_query(req, &n);
    for (const char *p = q, *end = q + n; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        size_t len = (size_t)(e - p);
        if (len == 11 && memcmp(p, "format=text", 11) == 0) {
            *fmt = RDL_FMT_TEXT;
            return true;
        }
        if (len == 18 && memcmp(p, "format=openmetrics", 18) == 0) {
            *fmt = RDL_FMT_OPENMETRICS;
            return true;
        }
        p = amp ? amp + 1 : end;
    }
    return false;
}

static void metrics_handler(rdl_req_t *req, void *arg)
{
    rt_metrics_t *mx = arg;
    size_t alen = 0, elen = 0;
    const char *accept = rdl_req_header(req, "Accept", &alen);
    const char *enc = rdl_req_header(req, "Accept-Encoding", &elen);
    rdl_format_t fmt;
    if (!format_param(req, &fmt))
        fmt = rdl_metrics_negotiate(accept, alen);
    if (mx->scrapes[fmt])
        rdl_counter_inc(mx->scrapes[fmt]);
    rdl_buf_t body, z;
    rdl_buf_init(&body);
    rdl_buf_init(&z);
    if (rdl_metrics_expose(NULL, fmt, &body) != 0) {
        rdl_buf_close(&body);
        rdl_resp_error(req, 500, "internal", "out of memory writing the exposition");
        return;
    }
    rdl_resp_header(req, "Vary", "Accept, Accept-Encoding");
    if (rdl_metrics_accepts_gzip(enc, elen) && gzip(&body, &z) == 0) {
        rdl_resp_header(req, "Content-Encoding", "gzip");
        rdl_resp_send(req, 200, rdl_metrics_content_type(fmt), z.data, z.len);
    } else {
        rdl_resp_send(req, 200, rdl_metrics_content_type(fmt), body.data, body.len);
    }
    rdl_buf_close(&z);
    rdl_buf_close(&body);
}

static void vars_handler(rdl_req_t *req, void *arg)
{
    (void)arg;
    rdl_buf_t b;
    rdl_buf_init(&b);
    if (rdl_vars_write(NULL, &b) != 0)
        rdl_resp_error(req, 500, "internal", "out of memory writing the variables");
    else
        rdl_resp_send(req, 200, "application/json", b.data, b.len);
    rdl_buf_close(&b);
}

/* ---- install --------------------------------------------------------------- */

static int metrics_install(rdl_server_t *srv, void *opts, void **state)
{
    struct rt_metrics *mx = calloc(1, sizeof(*mx));
    if (!(*state = mx))
        return RDL_ENOMEM;
    mx->srv = srv;
    mx->opts = opts;
    int rc = rdl_server_admin_route(srv, "GET", "/metrics", metrics_handler, mx);
    if (rc == 0 && mx->opts->debug_vars)
        rc = rdl_server_admin_route(srv, "GET", "/debug/vars", vars_handler, srv);
    if (rc || !mx->opts->enabled)
        return rc;
    if ((rc = families(mx, (size_t)mx->opts->max_series)) != 0)
        return rc;
    /* process_* once per process: the first server registers them */
    static atomic_bool process_done;
    if (!atomic_exchange(&process_done, true))
        rdl_metrics_register_process(NULL);
    rdl_middleware_t mw = { .name = "metrics", .enter = red_enter, .leave = red_leave, .arg = mx };
    return rdl_server_use(srv, &mw);
}

static void metrics_free(rdl_server_t *srv, void *state)
{
    rt_metrics_t *mx = state;
    if (!mx)
        return;
    metrics_drained(srv, mx);
    free(mx->lag);
    free(mx);
}

const rdl_part_t rdl_part_metrics = {
    .name = "metrics",
    .opts_size = sizeof(rdl_metrics_part_opts_t),
    .defaults = metrics_defaults,
    .config = metrics_config,
    .install = metrics_install,
    .run = metrics_run,
    .thread_start = metrics_thread_start,
    .thread_stop = metrics_thread_stop,
    .drained = metrics_drained,
    .free = metrics_free,
};
