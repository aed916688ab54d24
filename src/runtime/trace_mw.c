/*
 * trace_mw.c: tracing applied to every request. It exists so that a service
 * on the runtime joins distributed traces with no code of its own: the
 * middleware extracts the caller's context (traceparent/tracestate, baggage,
 * B3 as configured), starts the request's SERVER span named after the route
 * template with the stable HTTP semantic-convention attributes, puts the ids
 * and the span into the request's ctx (for log lines, child spans and
 * outbound calls), optionally answers with a traceparent header, and ends the
 * span with the status; outbound calls carry the context on (an injector).
 * The admin plane is not traced (probes would flood the traces) but serves
 * the tracer's counters at GET /debug/tracing.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "redline/metrics.h"
#include "redline/trace.h"
#include "runtime/internal.h"

/* The trace part's state: the tracer exists from start to stop. */
typedef struct rt_trace {
    rdl_server_t *srv;
    const rdl_trace_part_opts_t *opts;  /* inside the server's options */
    rdl_tracer_t *tracer;      /* NULL when tracing is off or stopped */
    rdl_propagators_t props;
    bool response_header;
    int collector;              /* id in the default metrics registry, or negative */
} rt_trace_t;

static void trace_defaults(void *opts)
{
    rdl_trace_part_opts_t *o = opts;
    o->enabled = true;
    o->endpoint = "";
    o->propagators = "";
}

static int trace_config(void *opts, rdl_config_t *cfg)
{
    rdl_trace_part_opts_t *o = opts;
    rdl_cfg_key_t keys[] = {
        { "tracing.enabled", RDL_CFG_BOOL, &o->enabled, 0, 0, NULL,
          "server span per request and trace ids in the request context", NULL },
        { "tracing.endpoint", RDL_CFG_STRING, &o->endpoint, 0, 0, NULL,
          "OTLP/HTTP traces URL (empty: OTEL_EXPORTER_OTLP_*; no export without one)", NULL },
        { "tracing.propagators", RDL_CFG_STRING, &o->propagators, 0, 0, NULL,
          "tracecontext,baggage,b3,b3multi or none (empty: OTEL_PROPAGATORS)", NULL },
        { "tracing.response_header", RDL_CFG_BOOL, &o->response_header, 0, 0, NULL,
          "answer with the server span's traceparent", NULL },
        { "tracing.keep_errors", RDL_CFG_BOOL, &o->keep_errors, 0, 0, NULL,
          "export unsampled traces whose server span ends in error", NULL },
    };
    return rdl_config_add(cfg, keys, sizeof(keys) / sizeof(keys[0]));
}

/* ---- carrier: the request's headers ---------------------------------- */

static bool req_get(void *carrier, const char *name, size_t index, const char **value, size_t *len)
{
    const rdl_req_t *req = carrier;
    size_t nl = strlen(name);
    const char *hn;
    size_t hl;
    for (size_t i = 0; rdl_req_header_at(req, i, &hn, &hl, value, len); i++)
        if (rdl_ascii_ieq(hn, hl, name, nl) && index-- == 0)
            return true;
    return false;
}

/* ---- the middleware -------------------------------------------------- */

/* The attributes of the server span: keys are literals, each set once. */
typedef struct attr_list {
    size_t n;
    rdl_attr_t a[16];
} attr_list_t;

static void add_str(attr_list_t *l, const char *key, size_t key_len, const char *v, size_t len)
{
    l->a[l->n++] = (rdl_attr_t){ .key = key, .key_len = key_len, .type = RDL_ATTR_STRING,
                                 .v.str = { v, len } };
}

static void add_int(attr_list_t *l, const char *key, size_t key_len, int64_t v)
{
    l->a[l->n++] = (rdl_attr_t){ .key = key, .key_len = key_len, .type = RDL_ATTR_INT, .v.i = v };
}

#define KEY(lit) lit, sizeof(lit) - 1

/* The decimal number at p (before end), stopping at the first non-digit or past 65535. */
static long port_of(const char *p, const char *end)
{
    long port = 0;
    for (; p < end && *p >= '0' && *p <= '9' && port < 65536; p++)
        port = port * 10 + (*p - '0');
    return port;
}

/* server.address and server.port from Host ("name", "name:port", "[v6]:port"). */
static void add_host(attr_list_t *l, const char *h, size_t n)
{
    const char *colon = NULL;
    if (n && h[0] == '[') {
        const char *close = memchr(h, ']', n);
        if (close && (size_t)(close - h) + 1 < n && close[1] == ':')
            colon = close + 1;
    } else {
        colon = memchr(h, ':', n);
    }
    size_t name_len = colon ? (size_t)(colon - h) : n;
    add_str(l, KEY("server.address"), h, name_len);
    if (colon) {
        long port = port_of(colon + 1, h + n);
        if (port > 0 && port < 65536)
            add_int(l, KEY("server.port"), port);
    }
}

/*
 * The request's attributes in one call: the keys are literals kept by
 * pointer, and the span has just started, so none needs looking for (the
 * copies, strlen and duplicate scans of one setter call per key were most of
 * the span's cost on the request thread).
 */
static void set_request_attrs(rdl_span_t *s, rdl_req_t *req, const char *method, size_t method_len,
                              bool known, const char *route, size_t route_len)
{
    attr_list_t l;                  /* not zeroed: only the first n are read */
    l.n = 0;
    size_t len;
    const char *v;
    if (known) {
        add_str(&l, KEY("http.request.method"), method, method_len);
    } else {
        add_str(&l, KEY("http.request.method"), "_OTHER", 6);
        add_str(&l, KEY("http.request.method_original"), method, method_len);
    }
    v = rdl_req_path(req, &len);
    add_str(&l, KEY("url.path"), v, len);
    v = rdl_req_query(req, &len);
    if (len)
        add_str(&l, KEY("url.query"), v, len);
    add_str(&l, KEY("url.scheme"), "http", 4);
    if (route)
        add_str(&l, KEY("http.route"), route, route_len);
    add_str(&l, KEY("network.protocol.version"), rdl_req_http_version(req), 3);
    if ((v = rdl_req_header(req, "host", &len)) != NULL)
        add_host(&l, v, len);
    if ((v = rdl_req_header(req, "user-agent", &len)) != NULL)
        add_str(&l, KEY("user_agent.original"), v, len);
    const char *peer = rdl_req_peer(req);
    const char *colon = strrchr(peer, ':');
    if (colon) {
        const char *ip = peer[0] == '[' ? peer + 1 : peer;
        size_t ip_len = (size_t)(colon - ip) - (peer[0] == '[' ? 1 : 0);
        add_str(&l, KEY("client.address"), ip, ip_len);
        add_str(&l, KEY("network.peer.address"), ip, ip_len);
        add_int(&l, KEY("network.peer.port"), port_of(colon + 1, colon + 1 + strlen(colon + 1)));
    }
    rdl_span_set_attrs(s, l.a, l.n, RDL_ATTRS_STATIC_KEYS | RDL_ATTRS_NEW_KEYS);
}

static int trace_enter(rdl_req_t *req, void *arg)
{
    rt_trace_t *tr = arg;
    if (!tr->tracer)
        return 0;
    rdl_ctx_t *ctx = rdl_req_ctx(req);
    rdl_span_context_t parent;
    rdl_baggage_t *bag = NULL;
    if (rdl_req_header(req, "baggage", NULL)) {
        bag = rdl_arena_alloc(&ctx->arena, sizeof(*bag));
        if (bag)
            rdl_baggage_init(bag);
    }
    bool remote = rdl_propagation_extract(&tr->props, req_get, req, &parent, bag);
    rdl_span_t *s = rdl_span_start_remote_at(tr->tracer, NULL, RDL_SPAN_SERVER, remote ? &parent : NULL,
                                             ctx->start_ns);
    if (!s)
        return 0;
    if (rdl_span_recording(s)) {
        /* Named only when recorded: most spans are not, at low sampling ratios. */
        const char *method = rdl_req_method(req);
        const char *route = rdl_req_route(req);
        bool known = rdl_req_method_id(req) != RDL_METHOD_UNKNOWN;
        const char *mname = known ? method : "HTTP";
        char name[256];
        size_t method_len = strlen(method), route_len = route ? strlen(route) : 0;
        size_t ml = known ? method_len : 4, rl = route_len;
        if (rl > sizeof(name) - ml - 2)
            rl = sizeof(name) - ml - 2;         /* methods are short: the template is cut */
        memcpy(name, mname, ml);
        if (route) {
            name[ml] = ' ';
            memcpy(name + ml + 1, route, rl);
            ml += 1 + rl;
        }
        name[ml] = '\0';
        rdl_span_set_name(s, name);
        set_request_attrs(s, req, method, method_len, known, route, route_len);
    }
    const rdl_span_context_t *sc = rdl_span_context(s);
    memcpy(ctx->trace_id, sc->trace_id, 16);
    memcpy(ctx->span_id, sc->span_id, 8);
    ctx->trace_flags = sc->flags;
    ctx->span = s;
    ctx->baggage = bag && bag->n ? bag : NULL;
    return 0;
}

static void trace_before_send(rdl_req_t *req, void *arg)
{
    rt_trace_t *tr = arg;
    rdl_ctx_t *ctx = rdl_req_ctx(req);
    if (!tr->response_header || !ctx->span)
        return;
    char tp[RDL_TRACEPARENT_LEN + 1];
    rdl_traceparent_format(rdl_span_context(ctx->span), tp);
    rdl_resp_header(req, "traceparent", tp);
}

static void trace_leave(rdl_req_t *req, void *arg)
{
    (void)arg;
    rdl_ctx_t *ctx = rdl_req_ctx(req);
    rdl_span_t *s = ctx->span;
    if (!s)
        return;
    if (rdl_span_recording(s)) {
        /* The handler may have set these keys already: replaced, not added (no RDL_ATTRS_NEW_KEYS). */
        attr_list_t l;                  /* not zeroed: only the first n are read */
    l.n = 0;
        char code[16];
        int status = rdl_req_status(req);
        if (rdl_req_answered(req)) {
            add_int(&l, KEY("http.response.status_code"), status);
            if (status >= 500) {
                int n = snprintf(code, sizeof(code), "%d", status);
                add_str(&l, KEY("error.type"), code, (size_t)n);
                rdl_span_set_status(s, RDL_STATUS_ERROR, NULL);
            }
        } else {
            add_str(&l, KEY("error.type"), "connection_closed", 17);
        }
        if (ctx->color)
            add_str(&l, KEY("redline.color"), ctx->color, strlen(ctx->color));
        rdl_span_set_attrs(s, l.a, l.n, RDL_ATTRS_STATIC_KEYS);
    }
    ctx->span = NULL;
    rdl_span_end_at(s, ctx->end_ns);
}

/* Outbound calls (outbound.c): span's context and bag with the configured propagators. */
void rdl__rt_trace_inject(rdl_server_t *srv, const rdl_span_t *span, const rdl_baggage_t *bag,
                     rdl_carrier_set_fn set, void *carrier)
{
    rt_trace_t *tr = rdl_server_part_state(srv, &rdl_part_trace);
    if (tr && tr->tracer && span)
        rdl_propagation_inject(&tr->props, rdl_span_context(span), bag, set, carrier);
}

/* ---- admin: GET /debug/tracing --------------------------------------- */

static void debug_tracing(rdl_req_t *req, void *arg)
{
    rt_trace_t *tr = arg;
    rdl_buf_t b;
    rdl_buf_init(&b);
    if (!tr->tracer) {
        rdl_buf_puts(&b, "{\"enabled\":false}\n");
    } else {
        rdl_tracer_stats_t st;
        char sampler[96];
        rdl_tracer_stats(tr->tracer, &st);
        rdl_buf_puts(&b, "{\"enabled\":true,\"sampler\":");
        rdl_sampler_describe(rdl_tracer_sampler(tr->tracer), sampler, sizeof(sampler));
        rdl_json_str(&b, sampler, strlen(sampler));
        rdl_buf_printf(&b, ",\"spans_started\":%llu,\"spans_ended\":%llu,\"spans_exported\":%llu,"
                           "\"spans_dropped_total\":%llu,\"spans_unfinished\":%llu,\"spans_open\":%llu,"
                           "\"export_requests\":%llu,\"export_failures\":%llu}\n",
                       (unsigned long long)st.spans_started, (unsigned long long)st.spans_ended,
                       (unsigned long long)st.spans_exported, (unsigned long long)st.spans_dropped,
                       (unsigned long long)st.spans_unfinished, (unsigned long long)st.spans_open,
                       (unsigned long long)st.export_requests, (unsigned long long)st.export_failures);
    }
    rdl_resp_send(req, 200, "application/json", b.data, b.len);
    rdl_buf_close(&b);
}

/* The app chain only: the admin plane is not traced. */
static int trace_install(rdl_server_t *srv, void *opts, void **state)
{
    rt_trace_t *tr = calloc(1, sizeof(*tr));
    if (!(*state = tr))
        return RDL_ENOMEM;
    tr->srv = srv;
    tr->opts = opts;
    tr->collector = -1;
    rdl_middleware_t mw = { "trace", trace_enter, trace_before_send, trace_leave, tr };
    int rc = rdl_server_use(srv, &mw);
    return rc ? rc : rdl_server_admin_route(srv, "GET", "/debug/tracing", debug_tracing, tr);
}

/* ---- metrics: the tracer's counters at scrape time -------------------- */

static void collect(rdl_collect_t *c, void *arg)
{
    rt_trace_t *tr = arg;
    rdl_tracer_stats_t st;
    rdl_tracer_stats(tr->tracer, &st);
    static const struct { const char *name, *help; size_t off; bool gauge; } m[] = {
        { "redline_trace_spans_started_total", "Recording spans started.",
          offsetof(rdl_tracer_stats_t, spans_started), false },
        { "redline_trace_spans_exported_total", "Spans the OTLP receiver accepted.",
          offsetof(rdl_tracer_stats_t, spans_exported), false },
        { "redline_trace_spans_dropped_total",
          "Spans dropped: queue full, export given up or refused, rejected by the receiver.",
          offsetof(rdl_tracer_stats_t, spans_dropped), false },
        { "redline_trace_spans_unfinished_total", "Spans seen open past the unfinished-span age.",
          offsetof(rdl_tracer_stats_t, spans_unfinished), false },
        { "redline_trace_spans_open", "Recording spans started and not ended.",
          offsetof(rdl_tracer_stats_t, spans_open), true },
        { "redline_trace_export_requests_total", "OTLP/HTTP requests sent, retries included.",
          offsetof(rdl_tracer_stats_t, export_requests), false },
        { "redline_trace_export_failures_total", "Export batches given up.",
          offsetof(rdl_tracer_stats_t, export_failures), false },
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        uint64_t v;
        memcpy(&v, (const char *)&st + m[i].off, sizeof(v));
        rdl_collect_family(c, m[i].gauge ? RDL_METRIC_GAUGE : RDL_METRIC_COUNTER, m[i].name, m[i].help);
        rdl_collect_value(c, NULL, NULL, 0, (double)v);
    }
}

/* ---- lifecycle ------------------------------------------------------- */

/* The tracer's own trouble (failed exports, unfinished spans) goes to the server's logger. */
static void tracer_log(void *arg, const char *level, const char *msg, const char *key, const char *value)
{
    rdl_server_t *srv = arg;
    rdl_log_level_t lv = strcmp(level, "error") == 0 ? RDL_LOG_ERROR
                         : strcmp(level, "warn") == 0 ? RDL_LOG_WARN : RDL_LOG_INFO;
    rdl_log_field_t f = rdl_lf_str(key ? key : "detail", value ? value : "");
    rdl_log(srv->log, lv, msg, &f, key ? 1 : 0);
}

/* Exports only when an endpoint is named (tracing.endpoint, OTEL_EXPORTER_OTLP_*) or OTEL_TRACES_EXPORTER=otlp. */
static bool endpoint_configured(const rdl_trace_part_opts_t *o)
{
    const char *vars[] = { "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT",
                           "OTEL_TRACES_EXPORTER" };
    if (o->endpoint && o->endpoint[0])
        return true;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return true;
    }
    return false;
}

/*
 * The tracer's options and propagators from tracing.* and the OTEL_*
 * variables: the one reading of them, for the check at load and for start.
 * A malformed value is an error naming its key or variable.
 */
static int trace_opts_of(const rdl_trace_part_opts_t *o, rdl_tracer_opts_t *to,
                         rdl_propagators_t *props, rdl_error_t *err)
{
    rdl_tracer_opts_default(to);
    int rc = rdl_tracer_opts_from_env(to, err);
    bool own = o->propagators && o->propagators[0];
    if (rc == 0 && (rc = rdl_propagators_parse(own ? o->propagators : getenv("OTEL_PROPAGATORS"),
                                               props, err)) != 0 && own)
        snprintf(err->key, sizeof(err->key), "tracing.propagators");   /* where it came from */
    if (rc == 0 && o->endpoint && o->endpoint[0]) {
        if (strncmp(o->endpoint, "http://", 7) != 0 && strncmp(o->endpoint, "https://", 8) != 0) {
            rdl_buf_t shown;    /* a URL's user:password is not for the terminal either */
            rdl_buf_init(&shown);
            rdl_redact_put(&shown, o->endpoint, strlen(o->endpoint));
            rc = rdl_error_set(err, RDL_EINVAL, 0, 0, "tracing.endpoint",
                               "expected an http:// or https:// URL, got '%.*s'", (int)shown.len,
                               shown.data ? shown.data : "");
            rdl_buf_close(&shown);
        }
        snprintf(to->endpoint, sizeof(to->endpoint), "%s", o->endpoint);
    }
    return rc;
}

/* At load (rdl_server_opts_check): what start would refuse, before the server exists. */
static int trace_check(const void *opts, rdl_error_t *err)
{
    const rdl_trace_part_opts_t *o = opts;
    rdl_tracer_opts_t to;
    rdl_propagators_t props;
    return o->enabled ? trace_opts_of(o, &to, &props, err) : 0;
}

static int trace_start(rdl_server_t *srv, void *state, rdl_error_t *err)
{
    rt_trace_t *tr = state;
    const rdl_trace_part_opts_t *o = tr->opts;
    if (!o->enabled || tr->tracer)
        return 0;
    rdl_tracer_opts_t to;
    int rc = trace_opts_of(o, &to, &tr->props, err);
    if (rc)
        return rc;
    /* OTEL_SERVICE_NAME, then service.name in OTEL_RESOURCE_ATTRIBUTES, then ours. */
    if (!to.service_name[0] && !strstr(to.resource_attrs, "service.name="))
        snprintf(to.service_name, sizeof(to.service_name), "%s", srv->opts.service);
    to.export = to.export && endpoint_configured(o);
    to.keep_errors = o->keep_errors;
    to.log = tracer_log;
    to.log_arg = srv;
    rc = rdl_tracer_new(&to, &tr->tracer);
    if (rc) {
        tr->tracer = NULL;
        return rdl_error_set(err, rc, 0, 0, "tracing", "cannot start the tracer: %s", rdl_strerror(rc));
    }
    tr->response_header = o->response_header;
    rdl_tracer_set_default(tr->tracer);
    tr->collector = rdl_collector_add(NULL, collect, tr);
    char sampler[96];
    rdl_sampler_describe(&to.sampler, sampler, sizeof(sampler));
    rdl_buf_t endpoint;         /* a URL's user:password is not for the log */
    rdl_buf_init(&endpoint);
    rdl_redact_put(&endpoint, to.export ? to.endpoint : "", to.export ? strlen(to.endpoint) : 0);
    rdl_log_field_t f[] = { rdl_lf_strn("endpoint", endpoint.data, endpoint.len),
                            rdl_lf_str("sampler", sampler) };
    rdl_log(srv->log, RDL_LOG_INFO,
            to.export ? "tracing: exporting spans" : "tracing: ids only (no OTLP endpoint)", f, 2);
    rdl_buf_close(&endpoint);
    return 0;
}

/* End of run: flushes within the deadline, before the server's last log lines. */
static void trace_stop(rdl_server_t *srv, void *state)
{
    rt_trace_t *tr = state;
    (void)srv;
    if (!tr->tracer)
        return;
    if (tr->collector >= 0)
        rdl_collector_remove(NULL, tr->collector);
    tr->collector = -1;
    rdl_tracer_free(tr->tracer);        /* exports what is queued within its deadline */
    tr->tracer = NULL;
}

static void trace_free(rdl_server_t *srv, void *state)
{
    if (state)
        trace_stop(srv, state);
    free(state);
}

const rdl_part_t rdl_part_trace = {
    .name = "trace",
    .opts_size = sizeof(rdl_trace_part_opts_t),
    .defaults = trace_defaults,
    .config = trace_config,
    .check = trace_check,
    .install = trace_install,
    .start = trace_start,
    .stop = trace_stop,
    .free = trace_free,
};
